package pruntime_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/lightclient"
	"github.com/phala-go/phala/tee/sim"
)

// TestMaliciousHostIsRefused feeds a pRuntime blocks of a real chain through
// its API, with a host that forges, alters, reorders and skips. Each bad
// block is refused, and pRuntime's state (height, sealed file) is unchanged;
// the honest block is accepted afterwards.
func TestMaliciousHostIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	net, err := devnet.Start(ctx, devnet.Config{Home: home, BasePort: testutil.FreePorts(t, 3), BlockTime: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Stop()
	if err := net.WaitHeight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// A block with two ingress events.
	target, err := net.PushInOneBlock(ctx, "alice", "t", []byte{0}, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := net.WaitHeight(ctx, target+2); err != nil {
		t.Fatal(err)
	}
	// The honest blocks 1..target+1 (block target+1 carries target's log).
	var blocks []lightclient.Block
	for h := int64(1); h <= target+2; h++ {
		b, err := net.Client.SyncBlock(ctx, h, false)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	enc := func(b lightclient.Block) *pruntimepb.SyncBlock {
		sb, err := lightclient.EncodeBlock(b)
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	genesis, err := os.ReadFile(filepath.Join(home, "node0", "config", "genesis.json"))
	if err != nil {
		t.Fatal(err)
	}
	cpu, _ := sim.OpenCPU(t.TempDir())
	dir := t.TempDir()
	rt, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, sim.Measure([]byte("test build"))), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.InitRuntime(genesis); err != nil {
		t.Fatal(err)
	}
	var honest []*pruntimepb.SyncBlock
	for _, b := range blocks[:target] { // headers 1..target
		honest = append(honest, enc(b))
	}
	if res, err := rt.SyncBlockchain(honest); err != nil || res.Height != target {
		t.Fatalf("honest sync: %v %v", res, err)
	}
	good := blocks[target] // header target+1 with block target's log
	if n := len(good.EventLog.Events); n != 2 {
		t.Fatalf("block %d has %d events, want 2", target, n)
	}
	sealed := func() []byte { b, _ := os.ReadFile(filepath.Join(dir, "pruntime.sealed")); return b }
	before := sealed()

	withLog := func(edit func(l *chainpb.EventLog)) *pruntimepb.SyncBlock {
		l := proto.Clone(good.EventLog).(*chainpb.EventLog)
		edit(l)
		b := good
		b.EventLog = l
		return enc(b)
	}
	forged, _ := proto.Marshal(&chainpb.WorkerEvent{Height: target, Index: 2, Kind: &chainpb.WorkerEvent_Ingress{Ingress: &chainpb.IngressMessage{Topic: "t", Payload: []byte("forged")}}})
	skipped := enc(blocks[target+1])
	minority := enc(good)
	minority.SignedHeader = minority.SignedHeader[:len(minority.SignedHeader)-3]
	for name, bad := range map[string]*pruntimepb.SyncBlock{
		"forged event": withLog(func(l *chainpb.EventLog) { l.Events = append(l.Events, forged) }),
		"altered event": withLog(func(l *chainpb.EventLog) {
			l.Events[1] = bytes.Clone(l.Events[1])
			l.Events[1][len(l.Events[1])-1] ^= 1
		}),
		"reordered":       withLog(func(l *chainpb.EventLog) { l.Events[0], l.Events[1] = l.Events[1], l.Events[0] }),
		"dropped event":   withLog(func(l *chainpb.EventLog) { l.Events = l.Events[:1] }),
		"skipped block":   skipped,
		"damaged header":  minority,
		"no event log":    withLog(func(l *chainpb.EventLog) { *l = chainpb.EventLog{} }),
		"replayed header": honest[target-1],
	} {
		res, err := rt.SyncBlockchain([]*pruntimepb.SyncBlock{bad})
		if err == nil || !errors.Is(err, pruntime.ErrRefusedBlock) && !errors.Is(err, pruntime.ErrBadRequest) {
			t.Errorf("%s: accepted (%v, %v)", name, res, err)
		}
		if h := rt.Info().Height; h != target {
			t.Errorf("%s: height moved to %d", name, h)
		}
		if !bytes.Equal(sealed(), before) {
			t.Errorf("%s: sealed state changed", name)
		}
	}
	// The honest block still goes through, and its events with it.
	if res, err := rt.SyncBlockchain([]*pruntimepb.SyncBlock{enc(good)}); err != nil || res.Height != target+1 {
		t.Fatalf("honest block after the refusals: %v %v", res, err)
	}
	// A batch stops at the first bad block and keeps the good ones before it.
	res, err := rt.SyncBlockchain([]*pruntimepb.SyncBlock{enc(blocks[target+1]), enc(blocks[target+1])})
	if !errors.Is(err, pruntime.ErrRefusedBlock) || res.Height != target+2 || res.Accepted != 1 {
		t.Fatalf("batch with a replay: %v %v", res, err)
	}
}
