package chain

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// renewal is a registration of next as the successor of prev, operated by
// operator and signed by signer's key (prev's, for a genuine renewal).
func (f *launchFixture) renewal(prev, next identity, operator string, signer ed25519.PrivateKey) *chainpb.MsgRegisterWorker {
	a := addr(f.keys[operator])
	info, err := proto.Marshal(&chainpb.WorkerInfo{SigningKey: next.pub(), HpkeKey: next.hpke.PublicKey(), Operator: a[:], GenesisHash: f.genHash, Predecessor: prev.pub()})
	if err != nil {
		f.t.Fatal(err)
	}
	return &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info), PredecessorSignature: ed25519.Sign(signer, crypto.RenewalBytes(info))}
}

// TestIdentityRenewal: a worker renews its identity with a fresh attestation
// signed by its old key; the bond, the gatekeeper seat and its confirmation
// pass to the new identity, the old one may send nothing more, and every
// invalid renewal is refused with its own code and changes nothing.
func TestIdentityRenewal(t *testing.T) {
	f := newLaunchFixture(t)
	f.block()
	a := f.candidate(1, 30*1_000_000)
	b := f.candidate(2, 20*1_000_000)
	st := f.launch()
	if len(st.Elected) != 2 || st.Phase != "pre-launch" {
		t.Fatalf("election: %+v", st)
	}
	a2 := newIdentity(t, 11)
	// Elected in an open round: the genesis worker seals the root key to
	// a's current keys, so a may not renew until the round ends.
	if r := f.checkTx(f.sign("bob", f.renewal(a, a2, "bob", a.sign), f.nonces["bob"])); code(r) != "gatekeeper/2" {
		t.Fatalf("renewal in an open round: %s %s", code(r), r.Log)
	}
	res := f.block(f.message(f.genesis, f.handover(1, a, b)), f.message(a, confirm(1, crypto.RootPublicKey(f.root))), f.message(b, confirm(1, crypto.RootPublicKey(f.root))))
	for _, r := range res.TxResults {
		if r.Code != 0 || effect(r) != "applied" {
			t.Fatalf("launch: %d %q %s", r.Code, effect(r), r.Log)
		}
	}
	if f.launch().Phase != "launched" {
		t.Fatal("not launched")
	}

	stranger := newIdentity(t, 99)
	noSig := f.renewal(a, a2, "bob", a.sign)
	noSig.PredecessorSignature = nil
	shortSig := f.renewal(a, a2, "bob", a.sign)
	shortSig.PredecessorSignature = shortSig.PredecessorSignature[:10]
	tampered := f.renewal(a, a2, "bob", a.sign)
	tampered.PredecessorSignature[0] ^= 1
	for _, c := range []struct {
		name string
		from string
		msg  *chainpb.MsgRegisterWorker
		want string
	}{
		{"signed by another key", "bob", f.renewal(a, a2, "bob", b.sign), "registry/17"},
		{"tampered signature", "bob", tampered, "registry/17"},
		{"unknown predecessor", "bob", f.renewal(stranger, a2, "bob", stranger.sign), "registry/17"},
		{"another operator takes the seat", "alice", f.renewal(a, a2, "alice", a.sign), "registry/17"},
		{"the retired genesis worker", "bob", f.renewal(f.genesis, a2, "bob", f.genesis.sign), "registry/17"},
		{"predecessor without signature", "bob", noSig, "registry/2"},
		{"short signature", "bob", shortSig, "registry/2"},
	} {
		if r := f.checkTx(f.sign(c.from, c.msg, f.nonces[c.from])); code(r) != c.want {
			t.Errorf("%s: got %s (%s), want %s", c.name, code(r), r.Log, c.want)
		}
	}
	if w := f.worker(a.pub()); len(w.Successor) != 0 {
		t.Fatalf("a refused renewal changed a: %+v", w)
	}

	// The genuine renewal.
	res = f.block(f.tx("bob", f.renewal(a, a2, "bob", a.sign)))
	if r := res.TxResults[0]; r.Code != 0 {
		t.Fatalf("renewal refused: %s", r.Log)
	}
	if w := f.worker(a.pub()); !bytes.Equal(w.Successor, a2.pub()) {
		t.Fatalf("old record: %+v", w)
	}
	if w := f.worker(a2.pub()); !bytes.Equal(w.Predecessor, a.pub()) || w.ExpiresAt <= w.RegisteredAt {
		t.Fatalf("new record: %+v", w)
	}
	var announced bool
	for _, ev := range f.eventLog(f.height) {
		if w := ev.GetWorkerRegistered().GetWorker(); w != nil && bytes.Equal(w.SigningKey, a2.pub()) && bytes.Equal(w.Predecessor, a.pub()) {
			announced = true
		}
	}
	if !announced {
		t.Fatal("the event log does not announce the successor with its predecessor")
	}
	st = f.launch()
	if !bytes.Equal(st.Elected[0].SigningKey, a2.pub()) || !bytes.Equal(st.Elected[0].HpkeKey, a2.hpke.PublicKey()) || !bytes.Equal(st.Confirmed[0], a2.pub()) && !bytes.Equal(st.Confirmed[1], a2.pub()) {
		t.Fatalf("gatekeeper seat after renewal: %+v", st)
	}
	if s, _ := staking.SelfStake(f.app.view, a2.pub()); s != 30*1_000_000 {
		t.Fatalf("bond of the successor: %d", s)
	}
	if s, _ := staking.SelfStake(f.app.view, a.pub()); s != 0 {
		t.Fatalf("bond left on the predecessor: %d", s)
	}
	// The old identity may send nothing more; the new one starts at 0.
	if r := f.checkTx(f.message(a, confirm(9, nil))); code(r) != "registry/18" {
		t.Fatalf("message from the renewed identity: %s %s", code(r), r.Log)
	}
	f.nonces["alice"]--
	if r := f.block(f.message(a2, confirm(9, nil))).TxResults[0]; r.Code != 0 {
		t.Fatalf("first message of the successor: %s", r.Log)
	}
	// A predecessor renews once.
	if r := f.checkTx(f.sign("bob", f.renewal(a, newIdentity(t, 12), "bob", a.sign), f.nonces["bob"])); code(r) != "registry/17" {
		t.Fatalf("second renewal of one identity: %s %s", code(r), r.Log)
	}
	// An expired registration may still renew: its keys never left pRuntime.
	f.blockAt(time.Unix(f.worker(b.pub()).ExpiresAt, 0))
	b2 := newIdentity(t, 13)
	f.now = time.Unix(f.worker(b.pub()).ExpiresAt, 0)
	if r := f.blockAt(f.now.Add(time.Second), f.tx("bob", f.renewal(b, b2, "bob", b.sign))).TxResults[0]; r.Code != 0 {
		t.Fatalf("renewal of an expired registration: %s", r.Log)
	}
	if s, _ := staking.SelfStake(f.app.view, b2.pub()); s != 20*1_000_000 {
		t.Fatalf("bond of b's successor: %d", s)
	}
}
