package pruntime

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

const testGenesis = `{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"a","initial_height":"1","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"mV8U0C1M1Xp6D2E4gVNR2wA0U6gmxuWbEFIWnkv4ni0="},"power":"10","name":"v"}],"app_state":{}}`

// applyEvent applies a verified event and publishes Info, as SyncBlockchain does.
func (r *Runtime) applyEvent(ev *chainpb.WorkerEvent) error {
	err := r.apply(ev, time.Time{})
	r.publishInfo()
	return err
}

func registered(key []byte, predecessor []byte) *chainpb.WorkerEvent {
	return &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerRegistered{WorkerRegistered: &chainpb.WorkerRegistered{
		Worker: &chainpb.Worker{SigningKey: key, Predecessor: predecessor}}}}
}

// TestRenewIdentity: a renewal prepares a successor inside pRuntime while
// the current identity keeps signing; quotes name the successor, its
// predecessor and carry the predecessor's signature over exactly that info;
// a pending renewal survives a restart; the verified registration of the
// successor switches identities, re-signs undelivered messages as the
// successor from sequence 0 and erases the old key. Renewal is refused
// where it cannot apply.
func TestRenewIdentity(t *testing.T) {
	cpu, _ := sim.OpenCPU(t.TempDir())
	p := sim.New(cpu, sim.Measure([]byte("b")))
	dir := t.TempDir()
	r, err := New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RenewIdentity(); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("renewal before init: %v", err)
	}
	if _, err := r.InitRuntime([]byte(testGenesis)); err != nil {
		t.Fatal(err)
	}
	old := r.Info().SigningKey
	if _, err := r.RenewIdentity(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("renewal of an identity not seen registered: %v", err)
	}
	if err := r.applyEvent(registered(old, nil)); err != nil || !r.Info().Registered {
		t.Fatalf("own registration: %v", err)
	}
	// A message signed before the renewal, not delivered yet.
	if err := r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: 7}}}); err != nil {
		t.Fatal(err)
	}
	next, err := r.RenewIdentity()
	if err != nil || bytes.Equal(next.SigningKey, old) {
		t.Fatalf("renewal: %v %v", next, err)
	}
	if in := r.Info(); !bytes.Equal(in.SigningKey, old) || !in.RenewalPending || !bytes.Equal(in.NextSigningKey, next.SigningKey) {
		t.Fatalf("while pending, the current identity stays: %v", in)
	}
	if again, err := r.RenewIdentity(); err != nil || !bytes.Equal(again.SigningKey, next.SigningKey) {
		t.Fatalf("a pending renewal must return the same successor: %v %v", again, err)
	}
	// Messages signed while pending are still the current identity's.
	if err := r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: 8}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.persist(); err != nil { // as SyncBlockchain does after applying
		t.Fatal(err)
	}
	checkQuote := func(r *Runtime) {
		t.Helper()
		q, err := r.GetRAQuote(make([]byte, 20), "e")
		if err != nil {
			t.Fatal(err)
		}
		var info chainpb.WorkerInfo
		if err := proto.Unmarshal(q.Info, &info); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(info.SigningKey, next.SigningKey) || !bytes.Equal(info.Predecessor, old) || !bytes.Equal(info.HpkeKey, next.HpkeKey) {
			t.Fatalf("renewal info names %X succeeding %X; want %X succeeding %X", info.SigningKey, info.Predecessor, next.SigningKey, old)
		}
		if !ed25519.Verify(old, crypto.RenewalBytes(q.Info), q.PredecessorSignature) {
			t.Fatal("the predecessor signature does not verify under the old key")
		}
		vq, err := sim.VerifyQuote(q.Quote)
		if err != nil || vq.ReportData != crypto.WorkerReportData(q.Info) {
			t.Fatalf("quote does not commit to the renewal info: %v", err)
		}
	}
	checkQuote(r)
	// Restarted from its sealed state, the renewal is still pending.
	r, err = New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if in := r.Info(); !bytes.Equal(in.SigningKey, old) || !bytes.Equal(in.NextSigningKey, next.SigningKey) || in.PendingMessages != 2 {
		t.Fatalf("restarted during a renewal: %v", in)
	}
	checkQuote(r)
	// A registration of the successor that names another predecessor is
	// not this renewal.
	if err := r.applyEvent(registered(next.SigningKey, bytes.Repeat([]byte{1}, 32))); err != nil || !r.Info().RenewalPending {
		t.Fatalf("foreign successor registration: %v %v", err, r.Info())
	}
	// The first message was delivered; then the successor registered.
	r.delivered(0)
	r.publishInfo()
	if err := r.applyEvent(registered(next.SigningKey, old)); err != nil {
		t.Fatal(err)
	}
	in := r.Info()
	if !bytes.Equal(in.SigningKey, next.SigningKey) || in.RenewalPending || !in.Registered || in.NextSequence != 1 || in.PendingMessages != 1 {
		t.Fatalf("after the switch: %v", in)
	}
	fx, _ := r.DumpSideEffects()
	m := fx.Messages[0]
	var wm chainpb.WorkerMessage
	proto.Unmarshal(m.Payload, &wm)
	if !bytes.Equal(m.Sender, next.SigningKey) || m.Sequence != 0 || wm.GetConfirm().GetRound() != 8 ||
		!ed25519.Verify(next.SigningKey, crypto.SignedMessageBytes("a", m.Sender, 0, m.Payload), m.Signature) {
		t.Fatalf("the undelivered message re-signed by the successor: %v", m)
	}
	if r.st.NextIdentitySeed != nil {
		t.Fatal("the sealed state still holds a successor seed")
	}
	// The old key is gone from the sealed state too.
	if err := r.persist(); err != nil { // as SyncBlockchain does after applying
		t.Fatal(err)
	}
	r, err = New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if in := r.Info(); !bytes.Equal(in.SigningKey, next.SigningKey) || in.RenewalPending {
		t.Fatalf("restarted after the switch: %v", in)
	}

	// The genesis worker retires rather than renewing.
	g := mustBootstrap(t, p)
	if _, err := g.RenewIdentity(); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("genesis worker renewal: %v", err)
	}
}

func mustBootstrap(t *testing.T, p tee.Platform) *Runtime {
	g, err := New(Config{Platform: p, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Bootstrap(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.InitRuntime([]byte(testGenesis)); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestBrokenRuntimeRefusesSync: after a verified event it could not apply,
// pRuntime's memory is ahead of its sealed state, so it refuses to sync on
// until a restart reloads that state.
func TestBrokenRuntimeRefusesSync(t *testing.T) {
	cpu, _ := sim.OpenCPU(t.TempDir())
	p := sim.New(cpu, sim.Measure([]byte("b")))
	dir := t.TempDir()
	r, err := New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitRuntime([]byte(testGenesis)); err != nil {
		t.Fatal(err)
	}
	r.broken = errors.New("apply event 0 of block 5: test")
	if _, err := r.SyncBlockchain(nil); err == nil || !strings.Contains(err.Error(), "restart it") {
		t.Fatalf("a broken pRuntime synced: %v", err)
	}
	r, err = New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SyncBlockchain(nil); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
}
