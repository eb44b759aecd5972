package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	rpclocal "github.com/cometbft/cometbft/rpc/client/local"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/node"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/lightclient"
	"github.com/phala-go/phala/pruntime/system"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

// Targets of the verified sync benchmark (the issue's): Phala's own relayer
// is reported at about 10 blocks/s.
const (
	// SyncTargetBlocksPerSecond is the verified ingest rate to beat.
	SyncTargetBlocksPerSecond = 1000
	// SyncTargetRatio: verification must cost less than half the time of
	// the verified ingest, i.e. verified/unverified blocks per second > 0.5.
	SyncTargetRatio = 0.5
)

// SyncConfig is one verified-sync run. Zero fields take defaults.
type SyncConfig struct {
	// Blocks is how many blocks (heights 1..Blocks) pRuntime ingests.
	// Default 10,000.
	Blocks int
	// Validators of the recorded chain. Default 4.
	Validators int
	// Pushers is how many funded accounts each push one message
	// (MsgPushMessage, one worker event) per block. Default 3.
	Pushers int
	// BlockTime is CometBFT's timeout_commit while recording. Default 5 ms.
	BlockTime time.Duration
	// Fetchers is how many goroutines fetch sync blocks. Default 8.
	Fetchers int
	// Batch is how many blocks one SyncBlockchain call carries. Default
	// 500, what the host sends.
	Batch int
	// Rounds is how many times each ingest is measured. Default 5.
	Rounds int
	// GRPC also measures pRuntime's SyncBlockchain through its gRPC API
	// on a Unix socket (Listen, Serve, Dial).
	GRPC bool
	// Dir holds the recorded chain's nodes and the runtimes' data.
	// Default: a temporary directory.
	Dir string
	// BasePort for the validators' listeners (each takes 10). Default 29100,
	// below Linux's ephemeral ports, which outgoing connections take.
	BasePort int
	// ChainFile, if set, is where the recorded chain is kept: loaded if it
	// exists (and holds at least Blocks blocks), else recorded and saved.
	ChainFile string
	// CPUProfile, if set, receives a CPU profile of one more verified
	// (batched) ingest after the rounds (not counted in them).
	CPUProfile string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (c *SyncConfig) defaults() {
	if c.Blocks == 0 {
		c.Blocks = 10_000
	}
	if c.Validators == 0 {
		c.Validators = 4
	}
	if c.Pushers == 0 {
		c.Pushers = 3
	}
	if c.BlockTime == 0 {
		c.BlockTime = 5 * time.Millisecond
	}
	if c.Fetchers == 0 {
		c.Fetchers = 8
	}
	if c.Batch == 0 {
		c.Batch = 500
	}
	if c.Rounds == 0 {
		c.Rounds = 5
	}
	if c.BasePort == 0 {
		c.BasePort = 29100
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// RecordedChain is what a host feeds a pRuntime: the genesis document and
// the sync blocks of heights 1..len(Blocks), validators included only on the
// first block and where the set changes.
type RecordedChain struct {
	Genesis []byte // genesis.json
	Blocks  []*pruntimepb.SyncBlock
	// Fetch is how long fetching the blocks from the node took (0 for a
	// loaded chain).
	Fetch time.Duration
}

// Events counts the worker events the blocks carry.
func (rc *RecordedChain) Events() int {
	n := 0
	for _, b := range rc.Blocks {
		if b.EventLog != nil {
			n += len(b.EventLog.Events)
		}
	}
	return n
}

// Bytes is the encoded size of the blocks, as the host sends them.
func (rc *RecordedChain) Bytes() int {
	n := 0
	for _, b := range rc.Blocks {
		n += proto.Size(b)
	}
	return n
}

// SyncResult is one ingest of the recorded chain.
type SyncResult struct {
	Name   string
	Blocks int
	// Events is how many worker events the blocks carried (the baseline
	// counts those it applied; pRuntime does not report a count).
	Events   int
	Height   int64 // the height the ingest ended at
	Duration time.Duration
}

// BlocksPerSecond is the ingest rate.
func (r SyncResult) BlocksPerSecond() float64 { return float64(r.Blocks) / r.Duration.Seconds() }

// SyncRound is one unverified and one verified ingest of the same blocks,
// the verified one through lightclient.Client.IngestBatch, one call per
// SyncBlockchain batch; and for comparison pRuntime's own SyncBlockchain
// (Runtime), and with SyncConfig.GRPC the same through the gRPC API.
type SyncRound struct {
	Unverified, Verified SyncResult
	Runtime              SyncResult
	GRPC                 *SyncResult
}

// Ratio is verified over unverified blocks per second.
func (r SyncRound) Ratio() float64 {
	return r.Verified.BlocksPerSecond() / r.Unverified.BlocksPerSecond()
}

// VerificationShare is the share of the verified ingest's time spent on
// verification: 1 - Ratio.
func (r SyncRound) VerificationShare() float64 { return 1 - r.Ratio() }

// SyncComparison is the outcome of RunSync.
type SyncComparison struct {
	Blocks, Events, Bytes, Validators int
	// Record is how long recording the chain took (Fetch included), Fetch
	// how long fetching its sync blocks from the node took; both 0 if the
	// chain was loaded from SyncConfig.ChainFile.
	Record, Fetch time.Duration
	Rounds        []SyncRound
}

// Median returns the round with the median ratio.
func (c SyncComparison) Median() SyncRound {
	rs := slices.Clone(c.Rounds)
	slices.SortFunc(rs, func(a, b SyncRound) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return rs[len(rs)/2]
}

// RunSync records (or loads) a chain and measures its ingest.
func RunSync(ctx context.Context, c SyncConfig) (SyncComparison, error) {
	c.defaults()
	var rc *RecordedChain
	var took time.Duration
	if c.ChainFile != "" {
		loaded, err := LoadChain(c.ChainFile)
		switch {
		case err == nil && len(loaded.Blocks) >= c.Blocks:
			loaded.Blocks = loaded.Blocks[:c.Blocks]
			rc = loaded
			c.Log("loaded %d blocks from %s", len(rc.Blocks), c.ChainFile)
		case err == nil:
			return SyncComparison{}, fmt.Errorf("%s holds %d blocks, %d wanted: remove it to record a new chain", c.ChainFile, len(loaded.Blocks), c.Blocks)
		case !errors.Is(err, os.ErrNotExist):
			return SyncComparison{}, err
		}
	}
	if rc == nil {
		start := time.Now()
		var err error
		if rc, err = RecordChain(ctx, c); err != nil {
			return SyncComparison{}, fmt.Errorf("record: %w", err)
		}
		took = time.Since(start)
		if c.ChainFile != "" {
			if err := rc.Save(c.ChainFile); err != nil {
				return SyncComparison{}, err
			}
			c.Log("saved the chain to %s", c.ChainFile)
		}
	}
	out, err := MeasureSync(ctx, rc, c)
	out.Record = took
	return out, err
}

// syncTune is the CometBFT configuration of the recorded chain: fast blocks
// on loopback, nothing the recording does not need.
func syncTune(blockTime time.Duration) func(int, *cfg.Config) {
	return func(_ int, c *cfg.Config) {
		c.Consensus.TimeoutCommit = blockTime
		c.Consensus.TimeoutPropose = 500 * time.Millisecond
		c.Consensus.TimeoutProposeDelta = 100 * time.Millisecond
		c.Consensus.TimeoutPrevote = 50 * time.Millisecond
		c.Consensus.TimeoutPrevoteDelta = 50 * time.Millisecond
		c.Consensus.TimeoutPrecommit = 50 * time.Millisecond
		c.Consensus.TimeoutPrecommitDelta = 50 * time.Millisecond
		c.Consensus.PeerGossipSleepDuration = time.Millisecond
		// The maj23 queries only matter under a vote-withholding attack,
		// and CometBFT's query routine can read a node's closed block
		// store when the node stops (a known shutdown race); sleeping
		// past the benchmark keeps it from ever waking after Stop.
		c.Consensus.PeerQueryMaj23SleepDuration = 24 * time.Hour
		c.P2P.FlushThrottleTimeout = time.Millisecond
		c.P2P.PexReactor = false
		c.TxIndex.Indexer = "null"
		c.Instrumentation.Prometheus = false
	}
}

func pusherKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "bench sync pusher %d", i))
	return ed25519.NewKeyFromSeed(seed[:])
}

// RecordChain runs c.Validators validators in this process until block
// c.Blocks+1 is committed, pushing c.Pushers messages per block, then
// fetches sync blocks 1..c.Blocks as a host does (client.SyncBlock).
func RecordChain(ctx context.Context, c SyncConfig) (*RecordedChain, error) {
	c.defaults()
	dir, err := os.MkdirTemp(c.Dir, "phala-syncbench-chain")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	keys := make([]ed25519.PrivateKey, c.Pushers)
	var grants []bank.Grant
	for i := range keys {
		keys[i] = pusherKey(i)
		grants = append(grants, bank.Grant{Name: fmt.Sprintf("pusher%d", i), Category: "incentives",
			Address: crypto.AddressFromPubKey(keys[i].Public().(ed25519.PublicKey)), Amount: 10_000 * bank.UnitsPerPHA})
	}
	g, err := chain.DefaultGenesis(grants...)
	if err != nil {
		return nil, err
	}
	homes, err := node.InitNetwork(dir, node.NetworkSpec{
		ChainID: "bench-sync", Validators: c.Validators, BasePort: c.BasePort, BlockTime: c.BlockTime,
		Genesis: g, App: node.DefaultAppConfig(), Tune: syncTune(c.BlockTime),
	})
	if err != nil {
		return nil, err
	}
	genesis, err := os.ReadFile(filepath.Join(homes[0], "config", "genesis.json"))
	if err != nil {
		return nil, err
	}
	nodes := make([]*node.Node, len(homes))
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.Stop()
			}
		}
	}()
	for i, h := range homes {
		if nodes[i], err = node.Start(ctx, h, node.Options{Logger: quietLogger()}); err != nil {
			return nil, err
		}
	}
	target := int64(c.Blocks) + 1
	app := nodes[0].App()
	cl, err := client.New(nodes[0].RPCURL())
	if err != nil {
		return nil, err
	}

	// Push c.Pushers messages after each block node 0 commits.
	pctx, stopPush := context.WithCancel(ctx)
	var pushed, refused atomic.Int64
	pushDone := make(chan error, 1)
	go func() { pushDone <- push(pctx, cl, nodes[0], keys, &pushed, &refused) }()
	defer stopPush()

	c.Log("recording: %d validators, %d pushers, until block %d", c.Validators, c.Pushers, target)
	start, lastLog := time.Now(), time.Now()
	for app.Height() < target {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-pushDone:
			return nil, fmt.Errorf("push: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			h := app.Height()
			c.Log("  block %d/%d, %.0f blocks/s, %d messages pushed (%d refused)", h, target, float64(h)/time.Since(start).Seconds(), pushed.Load(), refused.Load())
		}
	}
	stopPush()
	if err := <-pushDone; err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("push: %w", err)
	}
	c.Log("recorded %d blocks in %s (%.0f blocks/s), %d messages pushed", app.Height(), time.Since(start).Round(time.Second), float64(app.Height())/time.Since(start).Seconds(), pushed.Load())
	// Halt consensus (node 0 alone has no quorum) and serve the fetch from
	// node 0, which stays up.
	for i := 1; i < len(nodes); i++ {
		nodes[i].Stop()
		nodes[i] = nil
	}
	fetchStart := time.Now()
	blocks, err := fetchChain(ctx, cl, c.Blocks, c.Fetchers, c.Log)
	if err != nil {
		return nil, err
	}
	return &RecordedChain{Genesis: genesis, Blocks: blocks, Fetch: time.Since(fetchStart)}, nil
}

// push submits one MsgPushMessage per key after each block node 0 commits.
// A refused transaction (a nonce gone stale) re-reads the account's nonce.
func push(ctx context.Context, cl *client.Client, n *node.Node, keys []ed25519.PrivateKey, pushed, refused *atomic.Int64) error {
	rpc := rpclocal.New(n.Comet())
	nonces := make([]uint64, len(keys))
	payload := make([]byte, 64)
	var last int64
	for ctx.Err() == nil {
		h := n.App().Height()
		if h == last {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		last = h
		for i, k := range keys {
			binary.BigEndian.PutUint64(payload, uint64(h))
			binary.BigEndian.PutUint64(payload[8:], uint64(i))
			nonce := nonces[i]
			raw, err := cl.Build(ctx, k, &chainpb.TxBody{Msg: &chainpb.TxBody_PushMessage{PushMessage: &chainpb.MsgPushMessage{
				Topic: "bench-sync", Payload: payload}}}, client.SendOptions{Nonce: &nonce})
			if err != nil {
				return err
			}
			res, err := rpc.BroadcastTxSync(ctx, raw)
			if err == nil && res.Code == 0 {
				nonces[i]++
				pushed.Add(1)
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			refused.Add(1)
			addr := crypto.AddressFromPubKey(k.Public().(ed25519.PublicKey))
			if nonces[i], err = accountNonce(ctx, n, addr); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// fetchChain fetches sync blocks 1..count as the host does: validators on
// the first block and on each block whose set differs from its parent's.
func fetchChain(ctx context.Context, cl *client.Client, count, fetchers int, log func(string, ...any)) ([]*pruntimepb.SyncBlock, error) {
	blocks := make([]*pruntimepb.SyncBlock, count)
	valHashes := make([][]byte, count)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heights := make(chan int64)
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err; cancel() }) }
	var wg sync.WaitGroup
	for range fetchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range heights {
				b, err := cl.SyncBlock(ctx, h, h == 1)
				if err != nil {
					fail(err)
					continue
				}
				sb, err := lightclient.EncodeBlock(b)
				if err != nil {
					fail(err)
					continue
				}
				blocks[h-1], valHashes[h-1] = sb, b.SignedHeader.ValidatorsHash
				if d := done.Add(1); d%2000 == 0 {
					log("  fetched %d/%d sync blocks", d, count)
				}
			}
		}()
	}
	start := time.Now()
feed:
	for h := int64(1); h <= int64(count); h++ {
		select {
		case heights <- h:
		case <-ctx.Done():
			break feed
		}
	}
	close(heights)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The validator set changes where a header names another set than its
	// parent: send it with that block.
	for i := 1; i < count; i++ {
		if bytes.Equal(valHashes[i], valHashes[i-1]) {
			continue
		}
		b, err := lightclient.DecodeBlock(blocks[i])
		if err != nil {
			return nil, err
		}
		if b.Validators, err = cl.ValidatorSet(ctx, int64(i+1)); err != nil {
			return nil, err
		}
		if blocks[i], err = lightclient.EncodeBlock(b); err != nil {
			return nil, err
		}
	}
	log("fetched %d sync blocks in %s", count, time.Since(start).Round(time.Millisecond))
	return blocks, nil
}

// MeasureSync ingests rc c.Rounds times each way, in batches of c.Batch:
// verified (replicaIngest: pRuntime's SyncBlockchain with each batch handed
// to the light client's IngestBatch in one call), the same with no
// verification (replicaIngest's baseline), then a fresh pRuntime's own
// Runtime.SyncBlockchain (runtimeIngest), and with c.GRPC that through the
// gRPC API. Rounds alternate which of the first two goes first.
func MeasureSync(ctx context.Context, rc *RecordedChain, c SyncConfig) (SyncComparison, error) {
	c.defaults()
	out := SyncComparison{Blocks: len(rc.Blocks), Events: rc.Events(), Bytes: rc.Bytes(), Fetch: rc.Fetch}
	doc, err := types.GenesisDocFromJSON(rc.Genesis)
	if err != nil {
		return out, err
	}
	out.Validators = len(doc.Validators)
	dir, err := os.MkdirTemp(c.Dir, "phala-syncbench")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	cpu, err := sim.OpenCPU(filepath.Join(dir, "cpu"))
	if err != nil {
		return out, err
	}
	platform := sim.New(cpu, sim.Measure([]byte("bench")))
	for r := range c.Rounds {
		var round SyncRound
		rdir := filepath.Join(dir, fmt.Sprintf("round%d", r+1))
		unverified := func() (err error) {
			round.Unverified, err = replicaIngest(filepath.Join(rdir, "unverified"), platform, rc, c.Batch, false, "")
			return err
		}
		verified := func() (err error) {
			round.Verified, err = replicaIngest(filepath.Join(rdir, "verified"), platform, rc, c.Batch, true, "")
			return err
		}
		steps := []func() error{unverified, verified}
		if r%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		steps = append(steps, func() (err error) {
			round.Runtime, err = runtimeIngest(filepath.Join(rdir, "runtime"), platform, rc, c.Batch)
			return err
		})
		if c.GRPC {
			steps = append(steps, func() error {
				g, err := grpcIngest(ctx, filepath.Join(rdir, "grpc"), platform, rc, c.Batch)
				round.GRPC = &g
				return err
			})
		}
		for _, s := range steps {
			runtime.GC()
			if err := s(); err != nil {
				return out, err
			}
		}
		os.RemoveAll(rdir)
		line := fmt.Sprintf("round %d: unverified %.0f blocks/s, verified %.0f blocks/s, ratio %.2f; pRuntime's SyncBlockchain %.0f blocks/s", r+1,
			round.Unverified.BlocksPerSecond(), round.Verified.BlocksPerSecond(), round.Ratio(), round.Runtime.BlocksPerSecond())
		if round.GRPC != nil {
			line += fmt.Sprintf(", over gRPC %.0f blocks/s", round.GRPC.BlocksPerSecond())
		}
		c.Log("%s", line)
		out.Rounds = append(out.Rounds, round)
	}
	if c.CPUProfile != "" {
		// One more verified ingest, profiled and not counted: profiling
		// slows what it measures.
		if _, err := replicaIngest(filepath.Join(dir, "profiled"), platform, rc, c.Batch, true, c.CPUProfile); err != nil {
			return out, err
		}
		c.Log("wrote a CPU profile of a verified ingest to %s", c.CPUProfile)
	}
	return out, nil
}

func newRuntime(dir string, platform tee.Platform, genesis []byte, batch int) (*pruntime.Runtime, error) {
	rt, err := pruntime.New(pruntime.Config{Platform: platform, DataDir: dir, MaxBatch: max(batch, 2000)})
	if err != nil {
		return nil, err
	}
	if _, err := rt.InitRuntime(genesis); err != nil {
		return nil, err
	}
	return rt, nil
}

// runtimeIngest feeds every block to a fresh pRuntime through its
// SyncBlockchain: decode, verify (IngestBatch), apply, seal the state after
// each batch.
func runtimeIngest(dir string, platform tee.Platform, rc *RecordedChain, batch int) (SyncResult, error) {
	res := SyncResult{Name: "pRuntime", Blocks: len(rc.Blocks), Events: rc.Events()}
	rt, err := newRuntime(dir, platform, rc.Genesis, batch)
	if err != nil {
		return res, err
	}
	start := time.Now()
	for i := 0; i < len(rc.Blocks); i += batch {
		part := rc.Blocks[i:min(i+batch, len(rc.Blocks))]
		resp, err := rt.SyncBlockchain(part)
		if err != nil {
			return res, err
		}
		if int(resp.Accepted) != len(part) {
			return res, fmt.Errorf("pRuntime accepted %d of %d blocks", resp.Accepted, len(part))
		}
	}
	res.Duration = time.Since(start)
	res.Height = rt.Info().Height
	if res.Height != int64(len(rc.Blocks)) {
		return res, fmt.Errorf("pRuntime is at height %d after %d blocks", res.Height, len(rc.Blocks))
	}
	return res, nil
}

// grpcIngest is runtimeIngest through pRuntime's API on a Unix socket.
func grpcIngest(ctx context.Context, dir string, platform tee.Platform, rc *RecordedChain, batch int) (SyncResult, error) {
	res := SyncResult{Name: "pRuntime (gRPC)", Blocks: len(rc.Blocks), Events: rc.Events()}
	rt, err := pruntime.New(pruntime.Config{Platform: platform, DataDir: dir, MaxBatch: max(batch, 2000)})
	if err != nil {
		return res, err
	}
	sock := filepath.Join(dir, "pruntime.sock")
	ln, err := pruntime.Listen("unix://" + sock)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- pruntime.Serve(ctx, ln, rt) }()
	defer func() { cancel(); <-served }()
	pc, err := pruntime.Dial("unix://" + sock)
	if err != nil {
		return res, err
	}
	defer pc.Close()
	if _, err := pc.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: rc.Genesis}); err != nil {
		return res, err
	}
	start := time.Now()
	for i := 0; i < len(rc.Blocks); i += batch {
		part := rc.Blocks[i:min(i+batch, len(rc.Blocks))]
		resp, err := pc.SyncBlockchain(ctx, &pruntimepb.SyncRequest{Blocks: part})
		if err != nil {
			return res, err
		}
		if int(resp.Accepted) != len(part) {
			return res, fmt.Errorf("pRuntime accepted %d of %d blocks", resp.Accepted, len(part))
		}
	}
	res.Duration = time.Since(start)
	info, err := pc.Info(ctx, &pruntimepb.InfoRequest{})
	if err != nil {
		return res, err
	}
	if res.Height = info.Height; res.Height != int64(len(rc.Blocks)) {
		return res, fmt.Errorf("pRuntime is at height %d after %d blocks", res.Height, len(rc.Blocks))
	}
	return res, nil
}

// replicaState mirrors the sealed state pRuntime persists after each batch
// (pruntime.sealedState), so the replicas seal as much.
type replicaState struct {
	Version      int    `json:"version"`
	IdentitySeed []byte `json:"identity_seed,omitempty"`
	Genesis      []byte `json:"genesis,omitempty"`
	LightClient  []byte `json:"light_client,omitempty"`
	Role         string `json:"role"`
	NextSequence uint64 `json:"next_sequence"`
}

// replica is pRuntime's SyncBlockchain, rebuilt here so that the two
// ingests the ratio compares run the same code but for verification:
// verified (lc set), with the call's blocks decoded and handed to the light
// client's IngestBatch in one call, as SyncBlockchain does; and the
// baseline (lc nil), with every check that needs a signature, a hash or the
// trusted header taken out. pRuntime's own SyncBlockchain is measured too
// (runtimeIngest), to show the replica costs what the real thing does.
type replica struct {
	lc       *lightclient.Client // nil: unverified
	chainID  string
	valsHash []byte
	initial  int64
	identity []byte
	st       replicaState
	store    *system.SealedFile

	// The unverified replica's light-client state.
	header *types.SignedHeader
	vals   *types.ValidatorSet

	ingress, others int
}

// replicaIngest ingests rc as pRuntime does in batches of batch blocks,
// verified or not. Both decode every block (lightclient.DecodeBlock, which
// parses and bounds the header, commit, validators and event log), decode
// every event with proof.VerifyEventLog's per-event consistency checks,
// apply each event (the same dispatch as pRuntime), adopt the header as the
// latest and seal the state after each batch. Verified also does
// everything else lightclient.Client.IngestBatch does: the commit's
// signatures, the header, commit and validator-set hashes and the
// light-client rules (light.VerifyAdjacent, VerifyCommitLight), the link to
// the previous block, and the event log's Merkle root against the app hash.
// The unverified baseline keeps only the next-height rule of all that.
func replicaIngest(dir string, platform tee.Platform, rc *RecordedChain, batch int, verify bool, cpuProfile string) (SyncResult, error) {
	res := SyncResult{Name: "unverified", Blocks: len(rc.Blocks)}
	if verify {
		res.Name = "verified"
	}
	doc, err := types.GenesisDocFromJSON(rc.Genesis)
	if err != nil {
		return res, err
	}
	lcfg, err := lightclient.ConfigFromGenesis(doc)
	if err != nil {
		return res, err
	}
	key, err := platform.SealingKey()
	if err != nil {
		return res, err
	}
	store, err := system.NewSealedFile(filepath.Join(dir, res.Name+".sealed"), key, "phala/bench/"+res.Name+"/v1")
	if err != nil {
		return res, err
	}
	seed := make([]byte, 32)
	rand.Read(seed)
	u := &replica{
		chainID: doc.ChainID, valsHash: lcfg.GenesisValidators.Hash(), initial: max(doc.InitialHeight, 1),
		identity: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), store: store,
		vals: lcfg.GenesisValidators,
		st:   replicaState{Version: 1, IdentitySeed: seed, Genesis: rc.Genesis, Role: pruntime.RoleWorker},
	}
	if verify {
		if u.lc, err = lightclient.New(lcfg); err != nil {
			return res, err
		}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for i := 0; i < len(rc.Blocks); i += batch {
		part := rc.Blocks[i:min(i+batch, len(rc.Blocks))]
		if verify {
			err = u.syncVerified(part)
		} else {
			err = u.sync(part)
		}
		if err != nil {
			return res, err
		}
	}
	res.Duration = time.Since(start)
	res.Height = u.height()
	res.Events = u.ingress + u.others
	if res.Height != int64(len(rc.Blocks)) || res.Events != rc.Events() {
		return res, fmt.Errorf("%s ingest ended at height %d with %d events, want %d and %d", res.Name, res.Height, res.Events, len(rc.Blocks), rc.Events())
	}
	return res, nil
}

func (u *replica) height() int64 {
	if u.lc != nil {
		return u.lc.Height()
	}
	if u.header == nil {
		return u.initial - 1
	}
	return u.header.Height
}

// syncVerified is SyncBlockchain with IngestBatch: decode the blocks (up
// to the first that does not decode), verify them in one IngestBatch call,
// apply the events of those it adopted, seal.
func (u *replica) syncVerified(blocks []*pruntimepb.SyncBlock) error {
	bs := make([]lightclient.Block, 0, len(blocks))
	var verr error
	for _, sb := range blocks {
		b, err := lightclient.DecodeBlock(sb)
		if err != nil {
			verr = err
			break
		}
		bs = append(bs, b)
	}
	evss, err := u.lc.IngestBatch(bs)
	if err != nil {
		verr = err
	}
	for _, evs := range evss {
		for _, ev := range evs {
			u.apply(ev)
		}
	}
	if len(evss) > 0 {
		if u.st.LightClient, err = u.lc.Marshal(); err != nil {
			return err
		}
		raw, err := json.Marshal(u.st)
		if err != nil {
			return err
		}
		if err := u.store.Store(raw); err != nil {
			return err
		}
	}
	return verr
}

// sync is the unverified baseline.
func (u *replica) sync(blocks []*pruntimepb.SyncBlock) error {
	for _, sb := range blocks {
		b, err := lightclient.DecodeBlock(sb)
		if err != nil {
			return err
		}
		if b.SignedHeader.Height != u.height()+1 {
			return fmt.Errorf("block %d is not the next block, %d", b.SignedHeader.Height, u.height()+1)
		}
		if b.Validators != nil {
			u.vals = b.Validators
		}
		if l := b.EventLog; l != nil {
			for i, raw := range l.Events {
				var ev chainpb.WorkerEvent
				if err := proto.Unmarshal(raw, &ev); err != nil {
					return fmt.Errorf("event %d of block %d: %w", i, l.Height, err)
				}
				if ev.Height != l.Height || ev.Index != uint32(i) || ev.Kind == nil {
					return fmt.Errorf("event %d of block %d is inconsistent", i, l.Height)
				}
				u.apply(&ev)
			}
		}
		u.header = b.SignedHeader
	}
	// Seal the state, as pRuntime does after each call.
	sh, err := u.header.ToProto().Marshal()
	if err != nil {
		return err
	}
	vp, err := u.vals.ToProto()
	if err != nil {
		return err
	}
	vb, err := vp.Marshal()
	if err != nil {
		return err
	}
	if u.st.LightClient, err = (proto.MarshalOptions{Deterministic: true}).Marshal(&pruntimepb.LightClientState{
		Version: 1, ChainId: u.chainID, GenesisValidatorsHash: u.valsHash, InitialHeight: u.initial,
		SignedHeader: sh, Validators: vb,
	}); err != nil {
		return err
	}
	raw, err := json.Marshal(u.st)
	if err != nil {
		return err
	}
	return u.store.Store(raw)
}

// apply dispatches an event as pRuntime's apply does; the benchmark's
// events are ingress messages, which pRuntime's roles do not act on.
func (u *replica) apply(ev *chainpb.WorkerEvent) {
	switch k := ev.Kind.(type) {
	case *chainpb.WorkerEvent_WorkerMessage:
		if bytes.Equal(k.WorkerMessage.Sender, u.identity) {
			u.st.NextSequence = max(u.st.NextSequence, k.WorkerMessage.Sequence+1)
		}
		u.others++
	case *chainpb.WorkerEvent_Ingress:
		u.ingress++
	default:
		u.others++
	}
}

// Recorded chain file: magic, then uvarint-length-prefixed genesis.json and
// SyncBlock encodings.
var chainMagic = []byte("PHALA-SYNCBENCH-CHAIN-1\n")

// Save writes rc to path.
func (rc *RecordedChain) Save(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.Write(chainMagic)
	put := func(b []byte) {
		w.Write(binary.AppendUvarint(nil, uint64(len(b))))
		w.Write(b)
	}
	put(rc.Genesis)
	w.Write(binary.AppendUvarint(nil, uint64(len(rc.Blocks))))
	for _, b := range rc.Blocks {
		raw, err := proto.Marshal(b)
		if err != nil {
			f.Close()
			return err
		}
		put(raw)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadChain reads a chain Save wrote.
func LoadChain(path string) (*RecordedChain, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(chainMagic))
	if _, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, chainMagic) {
		return nil, fmt.Errorf("%s is not a recorded chain", path)
	}
	get := func() ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if n > 256<<20 {
			return nil, fmt.Errorf("record of %d bytes", n)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return b, err
	}
	rc := &RecordedChain{}
	if rc.Genesis, err = get(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for range n {
		raw, err := get()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var sb pruntimepb.SyncBlock
		if err := proto.Unmarshal(raw, &sb); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rc.Blocks = append(rc.Blocks, &sb)
	}
	return rc, nil
}
