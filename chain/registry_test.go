package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

// attestFixture is a simulated CPU running build "A", an attestation
// service that knows it, and a chain whose genesis trusts the service and
// allows build A.
type attestFixture struct {
	*harness
	cpu      *sim.CPU
	platform tee.Platform
	svc      *attest.Service
	now      time.Time // the service's clock
	genHash  []byte
}

var genesisTime = time.Unix(1_700_000_000, 0)

func newAttestFixture(t *testing.T) *attestFixture { return newAttestFixtureWith(t, nil) }

// newAttestFixtureWith lets tune adjust the genesis.
func newAttestFixtureWith(t *testing.T, tune func(*Genesis)) *attestFixture {
	t.Helper()
	cpu, err := sim.OpenCPU(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &attestFixture{cpu: cpu, platform: sim.New(cpu, sim.Measure([]byte("build A"))), now: genesisTime}
	svcKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	f.svc, err = attest.NewService(attest.ServiceConfig{SigningKey: svcKey, KnownCPUs: []ed25519.PublicKey{cpu.PublicKey()}, Clock: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	// Registrations carry kilobytes of keys and evidence: fees are higher.
	h := &harness{t: t, dir: t.TempDir(), keys: map[string]ed25519.PrivateKey{}, fee: 100_000}
	for _, n := range []string{"alice", "bob", "alice"} {
		h.keys[n] = testKey(n)
	}
	h.gen = testGenesis(t)
	h.gen.Registry.Params.AttestationServices = []string{hex.EncodeToString(svcKey.Public().(ed25519.PublicKey))}
	h.gen.Registry.Measurements = []registry.Measurement{{Platform: "sim", Measurement: hex.EncodeToString(f.platform.Measurement())}}
	if tune != nil {
		tune(&h.gen)
	}
	h.open()
	raw, err := jsonMarshal(h.gen)
	if err != nil {
		t.Fatal(err)
	}
	req := &abci.InitChainRequest{ChainId: testChainID, AppStateBytes: raw, InitialHeight: 1, Time: genesisTime}
	if _, err := h.app.InitChain(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	f.harness, f.genHash = h, GenesisHash(req)
	return f
}

// identity is a worker identity as a pRuntime would generate it.
type identity struct {
	sign ed25519.PrivateKey
	hpke *crypto.HPKEKey
}

func newIdentity(t *testing.T, seed byte) identity {
	k, err := crypto.NewHPKEKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return identity{sign: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)), hpke: k}
}

func (id identity) pub() []byte { return id.sign.Public().(ed25519.PublicKey) }

func (f *attestFixture) info(id identity, operator string, genHash []byte) []byte {
	a := addr(f.keys[operator])
	b, err := proto.Marshal(&chainpb.WorkerInfo{SigningKey: id.pub(), HpkeKey: id.hpke.PublicKey(), Operator: a[:], GenesisHash: genHash, Endpoint: "127.0.0.1:1"})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// evidence quotes info's report data and has the service sign a report.
func (f *attestFixture) evidence(info []byte) []byte {
	f.t.Helper()
	q, err := f.platform.Quote(crypto.WorkerReportData(info))
	if err != nil {
		f.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"quote": base64.StdEncoding.EncodeToString(q)})
	rec := httptest.NewRecorder()
	f.svc.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/report", bytes.NewReader(body)))
	if rec.Code != 200 {
		f.t.Fatalf("attestation service: %d %s", rec.Code, rec.Body)
	}
	var resp struct{ Evidence string }
	json.Unmarshal(rec.Body.Bytes(), &resp)
	ev, _ := base64.StdEncoding.DecodeString(resp.Evidence)
	return ev
}

func (f *attestFixture) worker(key []byte) *chainpb.Worker {
	f.t.Helper()
	res, err := f.app.Query(context.Background(), &abci.QueryRequest{Path: QueryWorker, Data: key})
	if err != nil || res.Code != 0 {
		f.t.Fatalf("query worker: %v %s", err, res.Log)
	}
	var w chainpb.Worker
	if err := proto.Unmarshal(res.Value, &w); err != nil {
		f.t.Fatal(err)
	}
	return &w
}

func TestRegistration(t *testing.T) {
	f := newAttestFixture(t)
	f.block()
	id := newIdentity(t, 1)
	info := f.info(id, "bob", f.genHash)
	ev := f.evidence(info)
	reg := &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: ev}

	// Each forgery is refused with its own code, and changes nothing.
	other := newIdentity(t, 2)
	otherInfo := f.info(other, "bob", f.genHash)
	forged := bytes.Clone(ev)
	forged[len(forged)-1] ^= 1
	cases := []struct {
		name string
		from string
		msg  *chainpb.MsgRegisterWorker
		want string
	}{
		{"forged report signature", "bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: forged}, "registry/6"},
		{"report reused for other keys", "bob", &chainpb.MsgRegisterWorker{Info: otherInfo, Platform: "sim", Evidence: ev}, "registry/8"},
		{"report for another chain", "bob", &chainpb.MsgRegisterWorker{Info: f.info(other, "bob", bytes.Repeat([]byte{7}, 32)), Platform: "sim", Evidence: f.evidence(f.info(other, "bob", bytes.Repeat([]byte{7}, 32)))}, "registry/4"},
		{"signer is not the operator", "alice", reg, "registry/3"},
		{"unknown platform", "bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "tdx", Evidence: ev}, "registry/5"},
		{"garbage evidence", "bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: []byte("not a report")}, "registry/6"},
		{"malformed info", "bob", &chainpb.MsgRegisterWorker{Info: []byte{0xff}, Platform: "sim", Evidence: ev}, "registry/2"},
	}
	for i, c := range cases {
		res := f.checkTx(f.sign(c.from, c.msg, 0))
		if got := res.Codespace + "/" + itoa(res.Code); got != c.want {
			t.Errorf("%d %s: got %s (%s), want %s", i, c.name, got, res.Log, c.want)
		}
	}

	// Stale: the same genuine report, a block time past max_report_age.
	stale := newIdentity(t, 3)
	staleInfo := f.info(stale, "bob", f.genHash)
	f.now = genesisTime.Add(-time.Duration(f.gen.Registry.Params.MaxReportAge+60) * time.Second)
	staleEv := f.evidence(staleInfo)
	f.now = genesisTime
	res := f.block(f.sign("bob", &chainpb.MsgRegisterWorker{Info: staleInfo, Platform: "sim", Evidence: staleEv}, 0))
	if r := res.TxResults[0]; r.Codespace != "registry" || r.Code != 7 {
		t.Fatalf("stale report: %s/%d %s", r.Codespace, r.Code, r.Log)
	}

	// The genuine registration passes; its report cannot be replayed.
	res = f.block(f.sign("bob", reg, 1))
	if r := res.TxResults[0]; r.Code != 0 {
		t.Fatalf("registration refused: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
	w := f.worker(id.pub())
	bob := addr(f.keys["bob"])
	if !bytes.Equal(w.Operator, bob[:]) || w.Platform != "sim" || !bytes.Equal(w.Measurement, f.platform.Measurement()) || w.ExpiresAt != w.RegisteredAt+f.gen.Registry.Params.RegistrationTTL {
		t.Fatalf("worker record %+v", w)
	}
	if r := f.checkTx(f.sign("bob", reg, 2)); r.Codespace != "registry" || r.Code != 10 {
		t.Fatalf("second registration of the same identity: %s/%d %s", r.Codespace, r.Code, r.Log)
	}

	// No account changes the allowlist: MsgSetMeasurement is refused
	// before it runs (referenda do it, governance_test.go).
	if r := f.checkTx(f.sign("alice", &chainpb.MsgSetMeasurement{Platform: "sim", Measurement: f.platform.Measurement()}, 0)); r.Codespace != "tx" || r.Code != 9 || !strings.Contains(r.Log, "phala gov propose set-measurement") {
		t.Fatalf("MsgSetMeasurement: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
	// A build off the allowlist is refused (registry/9).
	f.platform = sim.New(f.cpu, sim.Measure([]byte("build B")))
	n := newIdentity(t, 4)
	nInfo := f.info(n, "bob", f.genHash)
	if r := f.checkTx(f.sign("bob", &chainpb.MsgRegisterWorker{Info: nInfo, Platform: "sim", Evidence: f.evidence(nInfo)}, 2)); r.Codespace != "registry" || r.Code != 9 {
		t.Fatalf("wrong measurement: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
}

func TestSignedMessages(t *testing.T) {
	f := newAttestFixture(t)
	f.block()
	id := newIdentity(t, 1)
	info := f.info(id, "bob", f.genHash)
	if r := f.block(f.sign("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}, 0)).TxResults[0]; r.Code != 0 {
		t.Fatal(r.Log)
	}
	msg := func(key ed25519.PrivateKey, seq uint64) *chainpb.MsgSubmitMessage {
		payload, _ := proto.Marshal(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: seq}}})
		pub := key.Public().(ed25519.PublicKey)
		return &chainpb.MsgSubmitMessage{Message: &chainpb.SignedMessage{Sender: pub, Sequence: seq, Payload: payload,
			Signature: ed25519.Sign(key, crypto.SignedMessageBytes(testChainID, pub, seq, payload))}}
	}
	// Anyone may relay (carol pays); the sequence must be the next.
	if r := f.checkTx(f.sign("alice", msg(id.sign, 1), 0)); r.Codespace != "mq" || r.Code != 7 {
		t.Fatalf("skipped sequence: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
	res := f.block(f.sign("alice", msg(id.sign, 0), 0), f.sign("alice", msg(id.sign, 1), 1))
	for _, r := range res.TxResults {
		if r.Code != 0 {
			t.Fatalf("in-order messages: %s", r.Log)
		}
	}
	tampered := msg(id.sign, 2)
	tampered.Message.Payload[len(tampered.Message.Payload)-1] ^= 1
	stranger := newIdentity(t, 9)
	for name, c := range map[string]struct {
		m    *chainpb.MsgSubmitMessage
		want string
	}{
		"replayed":         {msg(id.sign, 0), "mq/6"},
		"replayed latest":  {msg(id.sign, 1), "mq/6"},
		"out of order":     {msg(id.sign, 3), "mq/7"},
		"tampered payload": {tampered, "mq/5"},
		"unregistered":     {msg(stranger.sign, 0), "registry/14"},
		"no signature":     {&chainpb.MsgSubmitMessage{Message: &chainpb.SignedMessage{Sender: id.pub()}}, "mq/4"},
		"empty":            {&chainpb.MsgSubmitMessage{}, "mq/4"},
	} {
		if r := f.checkTx(f.sign("alice", c.m, 2)); r.Codespace+"/"+itoa(r.Code) != c.want {
			t.Errorf("%s: got %s/%d %s, want %s", name, r.Codespace, r.Code, r.Log, c.want)
		}
	}
	seq, err := mq.NextSequence(f.app.view, id.pub())
	if err != nil || seq != 2 {
		t.Fatalf("next sequence %d %v, want 2", seq, err)
	}
	// The delivered messages are in the event log, in order.
	log := f.eventLog(f.height)
	if len(log) != 2 || log[0].GetWorkerMessage().GetSequence() != 0 || log[1].GetWorkerMessage().GetSequence() != 1 {
		t.Fatalf("event log %v", log)
	}
	// After expiry the worker's messages are refused.
	f.blockAt(time.Unix(f.worker(id.pub()).ExpiresAt, 0))
	if r := f.checkTx(f.sign("alice", msg(id.sign, 2), 2)); r.Codespace != "registry" || r.Code != 15 {
		t.Fatalf("expired worker: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
}

func itoa(c uint32) string { return strconv.FormatUint(uint64(c), 10) }
