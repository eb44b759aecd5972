package proof_test

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/cometbft/cometbft/light"
	lightprovider "github.com/cometbft/cometbft/light/provider"
	lighthttp "github.com/cometbft/cometbft/light/provider/http"
	lightdb "github.com/cometbft/cometbft/light/store/db"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
)

// chainFixture is a running devnet with a block H holding three pushed
// messages, and the header of H+1 as a CometBFT light client accepted it.
type chainFixture struct {
	net    *devnet.Network
	height int64
	header *cmttypes.Header
	log    *chainpb.EventLog
	alice  ed25519.PrivateKey
}

func newChainFixture(t *testing.T) *chainFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	net, err := devnet.Start(ctx, devnet.Config{Home: t.TempDir(), BasePort: testutil.FreePorts(t, 3), BlockTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitHeight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	alice, err := net.Keyring.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	// Three pushes in one block.
	f := &chainFixture{net: net, alice: alice.PrivateKey()}
	if f.height, err = net.PushInOneBlock(ctx, "alice", "proof-test", []byte("a"), []byte("b"), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := net.WaitHeight(ctx, f.height+1); err != nil {
		t.Fatal(err)
	}
	f.header = lightVerifiedHeader(t, ctx, net, f.height+1)
	if f.log, err = net.Client.EventLog(ctx, f.height); err != nil {
		t.Fatal(err)
	}
	return f
}

// lightVerifiedHeader runs CometBFT's light client from the genesis block
// and returns the header at height once it verified it.
func lightVerifiedHeader(t *testing.T, ctx context.Context, net *devnet.Network, height int64) *cmttypes.Header {
	t.Helper()
	chainID := net.Endpoints.ChainID
	primary, err := lighthttp.New(chainID, net.Endpoints.RPC)
	if err != nil {
		t.Fatal(err)
	}
	witness, err := lighthttp.New(chainID, net.Endpoints.RPC)
	if err != nil {
		t.Fatal(err)
	}
	first, err := net.Client.RPC().Commit(ctx, ptr(int64(1)))
	if err != nil {
		t.Fatal(err)
	}
	lc, err := light.NewClient(ctx, chainID,
		light.TrustOptions{Period: time.Hour, Height: 1, Hash: first.Hash()},
		primary, []lightprovider.Provider{witness}, lightdb.New(dbm.NewMemDB(), chainID), light.SequentialVerification())
	if err != nil {
		t.Fatal(err)
	}
	lb, err := lc.VerifyLightBlockAtHeight(ctx, height, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return lb.Header
}

func ptr[T any](v T) *T { return &v }

func cloneLog(l *chainpb.EventLog) *chainpb.EventLog { return proto.Clone(l).(*chainpb.EventLog) }

func TestEventLogVerification(t *testing.T) {
	f := newChainFixture(t)
	evs, err := proof.VerifyEventLog(f.header, f.log)
	if err != nil {
		t.Fatalf("genuine log refused: %v", err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if got := ev.GetIngress().Payload; string(got) != string(rune('a'+i)) {
			t.Fatalf("event %d payload %q", i, got)
		}
	}

	forged := func(mut func(l *chainpb.EventLog)) *chainpb.EventLog {
		l := cloneLog(f.log)
		mut(l)
		return l
	}
	reencode := func(l *chainpb.EventLog, i int, mut func(*chainpb.WorkerEvent)) {
		var ev chainpb.WorkerEvent
		proto.Unmarshal(l.Events[i], &ev)
		mut(&ev)
		l.Events[i], _ = proto.MarshalOptions{Deterministic: true}.Marshal(&ev)
	}
	cases := []struct {
		name   string
		log    *chainpb.EventLog
		header *cmttypes.Header
		want   error
	}{
		{"forged payload", forged(func(l *chainpb.EventLog) {
			reencode(l, 1, func(ev *chainpb.WorkerEvent) { ev.GetIngress().Payload = []byte("forged") })
		}), f.header, proof.ErrMismatch},
		{"forged sender", forged(func(l *chainpb.EventLog) {
			reencode(l, 0, func(ev *chainpb.WorkerEvent) { ev.GetIngress().Sender = make([]byte, 20) })
		}), f.header, proof.ErrMismatch},
		{"reordered", forged(func(l *chainpb.EventLog) { l.Events[0], l.Events[2] = l.Events[2], l.Events[0] }), f.header, proof.ErrMismatch},
		{"event dropped", forged(func(l *chainpb.EventLog) { l.Events = l.Events[:2] }), f.header, proof.ErrMismatch},
		{"event added", forged(func(l *chainpb.EventLog) { l.Events = append(l.Events, l.Events[0]) }), f.header, proof.ErrMismatch},
		{"state root swapped", forged(func(l *chainpb.EventLog) { l.StateRoot[0] ^= 1 }), f.header, proof.ErrMismatch},
		{"log of another block", forged(func(l *chainpb.EventLog) { l.Height-- }), f.header, proof.ErrHeight},
		{"short state root", forged(func(l *chainpb.EventLog) { l.StateRoot = l.StateRoot[:31] }), f.header, proof.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := cloneLog(c.log)
			evs, err := proof.VerifyEventLog(c.header, c.log)
			if !errors.Is(err, c.want) || evs != nil {
				t.Fatalf("got %v (%d events), want %v", err, len(evs), c.want)
			}
			if !proto.Equal(before, c.log) {
				t.Fatal("verification modified its input")
			}
		})
	}
}

func TestStateVerification(t *testing.T) {
	f := newChainFixture(t)
	ctx := context.Background()
	alice := crypto.AddressFromPubKey(f.alice.Public().(ed25519.PublicKey))
	key := bank.BalanceKey(alice)
	sp, err := f.net.Client.StateProof(ctx, key, f.height)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyState(f.header, sp); err != nil {
		t.Fatalf("genuine state proof refused: %v", err)
	}
	bal := binary.BigEndian.Uint64(sp.Value)
	if bal == 0 || bal >= 1_000_000*bank.UnitsPerPHA {
		t.Fatalf("alice's proven balance %d: she has paid three fees out of 1,000,000 PHA", bal)
	}

	absentKey := bank.BalanceKey(crypto.ModuleAddress("nobody"))
	absent, err := f.net.Client.StateProof(ctx, absentKey, f.height)
	if err != nil {
		t.Fatal(err)
	}
	if absent.Value != nil {
		t.Fatalf("absent key has value %X", absent.Value)
	}
	if err := proof.VerifyState(f.header, absent); err != nil {
		t.Fatalf("genuine absence proof refused: %v", err)
	}

	with := func(p *proof.StateProof, mut func(*proof.StateProof)) *proof.StateProof {
		c := *p
		c.LogRoot = append([]byte(nil), p.LogRoot...)
		mut(&c)
		return &c
	}
	wrongValue := binary.BigEndian.AppendUint64(nil, bal+1)
	cases := []struct {
		name string
		p    *proof.StateProof
		want error
	}{
		{"wrong value", with(sp, func(p *proof.StateProof) { p.Value = wrongValue }), proof.ErrMismatch},
		{"present key claimed absent", with(sp, func(p *proof.StateProof) { p.Value = nil }), proof.ErrMismatch},
		{"absent key claimed present", with(absent, func(p *proof.StateProof) { p.Value = wrongValue }), proof.ErrMismatch},
		{"proof for another key", with(sp, func(p *proof.StateProof) { p.Key = bank.BalanceKey(crypto.ModuleAddress("x")) }), proof.ErrMismatch},
		{"wrong event log root", with(sp, func(p *proof.StateProof) { p.LogRoot[5] ^= 0x80 }), proof.ErrMismatch},
		{"wrong height", with(sp, func(p *proof.StateProof) { p.Height++ }), proof.ErrHeight},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := proof.VerifyState(f.header, c.p); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A proof from the previous block does not verify against this header.
	old, err := f.net.Client.StateProof(ctx, key, f.height-1)
	if err != nil {
		t.Fatal(err)
	}
	old.Height = f.height
	if err := proof.VerifyState(f.header, old); !errors.Is(err, proof.ErrMismatch) {
		t.Fatalf("stale proof: got %v", err)
	}
}
