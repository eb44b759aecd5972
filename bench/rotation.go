package bench

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/pruntime/vm"
)

// RotationConfig is the root key rotation benchmark (docs/eras.md): for
// each gatekeeper count N, a fresh devnet whose N gatekeeper candidates
// are all seated (so the election at the era's end seats the same N) and
// one miner. Keys contracts are deployed and keyed during the first era;
// the rotation at its last block (k_r^(0) to k_r^(1)) is timed from its
// start to Rotation Ready. A key request (a deploy, whose key the
// gatekeepers must serve) sent right at the start measures the pause in
// miner to gatekeeper key traffic, against the same request outside a
// rotation. Zero fields take defaults.
type RotationConfig struct {
	// Gatekeepers are the gatekeeper counts, one devnet each. Default 3,
	// 10 and 30; the ratios between counts are against the first.
	Gatekeepers []int
	// Keys is how many contracts have a stored (wrapped) key when the
	// rotation starts: the state the outgoing leader re-encrypts and every
	// member checks. Default 1,000.
	Keys int
	// Probes is how many of the Keys are deployed one at a time, outside a
	// rotation, to time a key request: the baseline. Default 5.
	Probes int
	// BlockTime of the devnets. Default 300 ms.
	BlockTime time.Duration
	// EraBlocks is the era length. It must hold the launch and the keying
	// of Keys contracts, which the gatekeepers' hosts relay at about one
	// key per block. Default: an estimate from Keys and Gatekeepers.
	EraBlocks int64
	// RotationBlocks is a rotation attempt's deadline. Default 100, far
	// beyond the best case, so an attempt expires only if stuck.
	RotationBlocks int64
	// Deployers is how many funded dev accounts sign the deploys. Default 4.
	Deployers int
	// BasePort is the first devnet's first port; each next devnet takes
	// ports 100 higher. Default 30300 (below Linux's ephemeral ports, which
	// outgoing connections take).
	BasePort int
	// Dir holds the devnets. Default: a temporary directory, removed after.
	Dir string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (c *RotationConfig) defaults() {
	if len(c.Gatekeepers) == 0 {
		c.Gatekeepers = []int{3, 10, 30}
	}
	if c.Keys == 0 {
		c.Keys = 1000
	}
	if c.Probes == 0 {
		c.Probes = 5
	}
	if c.BlockTime == 0 {
		c.BlockTime = 300 * time.Millisecond
	}
	if c.RotationBlocks == 0 {
		c.RotationBlocks = 100
	}
	if c.Deployers == 0 {
		c.Deployers = 4
	}
	if c.BasePort == 0 {
		c.BasePort = 30300
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// eraBlocks is the era length used for a devnet of n gatekeepers.
func (c *RotationConfig) eraBlocks(n int) int64 {
	if c.EraBlocks > 0 {
		return c.EraBlocks
	}
	// The launch (registration, bonding, the handover to n members); the
	// keys, which each gatekeeper's host relays one message per block,
	// waiting for each to be committed (1.01 to 1.08 blocks per key
	// measured; a quarter more as margin); the gatekeepers catching up
	// afterwards, each syncing the n copies of every key (at 300 ms
	// blocks about 20, 70 and 460 blocks for 3, 10 and 30 gatekeepers
	// and 1,000 keys); a few blocks per probe; and a margin.
	return int64(60+2*n) + int64(c.Keys)*5/4 + int64(n*n*c.Keys)/1800 + int64(c.Probes)*6 + 60
}

// rotationContract is the contract deployed Keys times: a wasm module
// exporting phala_init, phala_command and phala_query, each returning 0
// (success) and doing nothing. A gatekeeper's work for a contract key does
// not depend on the code, but every deploy carries it: the smallest Go
// contract (contracts/token) is 0.9 MB compressed, so 1,000 deploys of it
// would be a gigabyte of transactions and event logs.
var rotationContract = []byte{
	0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00,
	0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // types: () -> i32
	0x03, 0x04, 0x03, 0x00, 0x00, 0x00, // three functions of that type
	0x07, 0x2c, 0x03, // exports
	0x0a, 'p', 'h', 'a', 'l', 'a', '_', 'i', 'n', 'i', 't', 0x00, 0x00,
	0x0d, 'p', 'h', 'a', 'l', 'a', '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0x00, 0x01,
	0x0b, 'p', 'h', 'a', 'l', 'a', '_', 'q', 'u', 'e', 'r', 'y', 0x00, 0x02,
	0x0a, 0x10, 0x03, // code: each body "i32.const 0"
	0x04, 0x00, 0x41, 0x00, 0x0b,
	0x04, 0x00, 0x41, 0x00, 0x0b,
	0x04, 0x00, 0x41, 0x00, 0x0b,
}

// checkRotationContract runs the contract's init in a fresh VM engine, as
// the miner will.
func checkRotationContract(ctx context.Context) error {
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		return err
	}
	defer e.Close(ctx)
	h, err := e.Compile(ctx, rotationContract)
	if err != nil {
		return fmt.Errorf("the benchmark's contract does not compile: %w", err)
	}
	res, err := e.Execute(ctx, h, vm.EntryInit, vm.Env{Contract: "c", Caller: "a", Height: 1, Time: time.Unix(1_800_000_000, 0), Seed: make([]byte, 32)}, vm.NewMemStore(), nil)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("the benchmark's contract does not initialise: %w", err)
	}
	return nil
}

// KeyRequest is one contract key request: a deploy committed in block
// Deployed, keyed (the first gatekeeper copy accepted) in block Keyed.
// Latency is between the two blocks' commits as seen in the node.
type KeyRequest struct {
	Deployed, Keyed int64
	Latency         time.Duration
}

// Blocks is the request's latency in blocks.
func (k KeyRequest) Blocks() int64 { return k.Keyed - k.Deployed }

// RotationRun is one devnet: its setup and the rotation measured.
type RotationRun struct {
	Gatekeepers int
	EraBlocks   int64
	// Launch is from the devnet's start to the launch (block
	// LaunchHeight).
	Launch       time.Duration
	LaunchHeight int64
	// Setup is the bulk of the keys: from the first deploy's submission
	// until all were keyed, over SetupBlocks blocks.
	Setup       time.Duration
	SetupBlocks int64
	// Baseline are the key requests outside a rotation.
	Baseline []KeyRequest
	// Interval is the mean block interval over the IntervalBlocks blocks
	// before the rotation: the run's own block time.
	Interval       time.Duration
	IntervalBlocks int64
	// The rotation: the era it makes the key for, started at the end of
	// block Start, Ready in block Ready. Seconds is between those blocks'
	// commits. Attempt is the attempt that became ready (1 if none
	// expired).
	Era          uint64
	Start, Ready int64
	Seconds      time.Duration
	Attempt      uint64
	Incoming     int
	KeysExpected uint64
	Parts        uint32
	// The blocks in which both shares were in, the new root key was
	// distributed, the state was complete, and the first confirmation
	// landed (the last one is Ready).
	SharesHeight, KeysHeight, StateHeight, FirstConfirm int64
	// ReadyEvent: block Ready's event log holds RotationReady for Era.
	ReadyEvent bool
	// Paused is the key request sent as soon as block Start was committed.
	Paused KeyRequest
	Notes  []string
	Wall   time.Duration
}

// Blocks is the rotation's length in blocks, from its start to Ready.
func (r RotationRun) Blocks() int64 { return r.Ready - r.Start }

// Done reports whether the run measured a rotation and the paused request.
func (r RotationRun) Done() bool { return r.Ready > 0 && r.Paused.Keyed > 0 }

// NormalLatency is the baseline requests' median.
func (r RotationRun) NormalLatency() KeyRequest {
	if len(r.Baseline) == 0 {
		return KeyRequest{}
	}
	bs := slices.Clone(r.Baseline)
	slices.SortFunc(bs, func(a, b KeyRequest) int { return cmp.Compare(a.Latency, b.Latency) })
	return bs[(len(bs)-1)/2]
}

// RotationReport is everything RunRotation measured.
type RotationReport struct {
	Runs []RotationRun
	// Load is the machine's load average when the benchmark started.
	Load string
}

// intervalWindow is how many blocks before the rotation's start give the
// run's block interval.
const intervalWindow = 50

// BestCaseBlocks is the rotation's best case from docs/eras.md: shares,
// then distribution with re-encryption, then confirmations.
const BestCaseBlocks = 3

// FloorBlocks is the fewest blocks a rotation whose state comes in parts
// parts can take here: each round of the best case costs two blocks,
// because a pRuntime learns of block h's events only with header h+1
// (whose app hash commits to them), so its answer lands in block h+2 at
// the earliest; and the outgoing leader's host relays the parts one block
// apart.
func FloorBlocks(parts uint32) int64 { return 2*BestCaseBlocks + int64(max(parts, 1)) - 1 }

// RunRotation measures one devnet per gatekeeper count. A failed run's
// report holds what was measured before the failure.
func RunRotation(ctx context.Context, c RotationConfig) (rep RotationReport, err error) {
	c.defaults()
	rep.Load = loadAverage()
	if c.Probes >= c.Keys {
		return rep, fmt.Errorf("%d probes leave none of the %d keys to deploy in bulk", c.Probes, c.Keys)
	}
	if err := checkRotationContract(ctx); err != nil {
		return rep, err
	}
	dir := c.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "phala-rotationbench"); err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
	}
	for i, n := range c.Gatekeepers {
		run, err := runRotation(ctx, c, filepath.Join(dir, fmt.Sprintf("devnet-%d", n)), c.BasePort+100*i, n)
		rep.Runs = append(rep.Runs, run)
		if err != nil {
			return rep, fmt.Errorf("%d gatekeepers: %w", n, err)
		}
	}
	return rep, nil
}

// heightClock records when the node was first seen to have committed each
// height, sampled every millisecond in process.
type heightClock struct {
	mu   sync.Mutex
	seen []time.Time // by height
}

func trackHeights(ctx context.Context, net *devnet.Network) (*heightClock, func()) {
	hc := &heightClock{}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			h, now := net.Node.App().Height(), time.Now()
			hc.mu.Lock()
			for int64(len(hc.seen)) <= h {
				hc.seen = append(hc.seen, now)
			}
			hc.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return hc, func() { stop(); <-done }
}

// at is when height was first seen committed (zero if not yet).
func (hc *heightClock) at(h int64) time.Time {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if h < 0 || h >= int64(len(hc.seen)) {
		return time.Time{}
	}
	return hc.seen[h]
}

// wait waits until block h's commit has been seen: a record read from
// the node may name a block before the clock's next sample (a loaded
// machine delays it).
func (hc *heightClock) wait(ctx context.Context, h int64) error {
	for hc.at(h).IsZero() {
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// between is the time from block a's commit to block b's.
func (hc *heightClock) between(a, b int64) time.Duration {
	ta, tb := hc.at(a), hc.at(b)
	if ta.IsZero() || tb.IsZero() {
		return -1
	}
	return tb.Sub(ta)
}

// rotationBench is one devnet of the benchmark.
type rotationBench struct {
	rc        RotationConfig
	net       *devnet.Network
	cl        *client.Client
	clock     *heightClock
	n         int
	boundary  int64 // the era boundary whose rotation is measured
	miner     []byte
	alice     ed25519.PrivateKey
	deployers []ed25519.PrivateKey
	gks       []string
}

func runRotation(ctx context.Context, c RotationConfig, home string, port, n int) (run RotationRun, err error) {
	start := time.Now()
	run.Gatekeepers = n
	defer func() { run.Wall = time.Since(start) }()
	workers := []devnet.WorkerSpec{{Name: "genesis", Role: "genesis"}}
	var gks []string
	for i := range n {
		name := fmt.Sprintf("gatekeeper%d", i+1)
		gks = append(gks, name)
		workers = append(workers, devnet.WorkerSpec{Name: name, Role: "gatekeeper"})
	}
	workers = append(workers, devnet.WorkerSpec{Name: "miner1", Role: "miner"})
	accounts := []string{"alice"}
	for i := range c.Deployers {
		accounts = append(accounts, fmt.Sprintf("deployer%d", i+1))
	}
	era := c.eraBlocks(n)
	run.EraBlocks = era
	// A generous handover: with many members, a slow confirmation must not
	// expire the launch round and exclude the member for good.
	launch := gatekeeper.Params{NGatekeepers: n, ElectionHeight: 5, HandoverBlocks: 100 + 5*int64(n), EraBlocks: era, RotationBlocks: c.RotationBlocks}
	c.Log("%d gatekeepers: starting a devnet in %s (eras of %d blocks)", n, home, era)
	net, err := devnet.Start(ctx, devnet.Config{Home: home, BasePort: port, BlockTime: c.BlockTime, DevAccounts: accounts,
		Workers: workers, Launch: launch, TuneGenesis: func(g *chain.Genesis) {
			// No checkpoints: each keyed contract would take one, a
			// thousand miner messages unrelated to the rotation.
			p := contracts.DefaultParams()
			p.CheckpointInterval = 1_000_000
			g.Contracts = &p
		}})
	if err != nil {
		return run, err
	}
	defer net.Stop()
	clock, stopClock := trackHeights(ctx, net)
	defer stopClock()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	_, err = devnet.WaitLaunched(lctx, net.Client)
	cancel()
	if err != nil {
		return run, err
	}
	run.Launch, run.LaunchHeight = time.Since(start), net.Node.App().Height()
	c.Log("%d gatekeepers: launched in %s (block %d)", n, run.Launch.Round(time.Millisecond), run.LaunchHeight)

	b := &rotationBench{rc: c, net: net, cl: net.Client, clock: clock, n: n, boundary: era,
		miner: net.Workers.Runtimes["miner1"].Info().SigningKey, gks: gks}
	k, err := net.Keyring.Get("alice")
	if err != nil {
		return run, err
	}
	b.alice = k.PrivateKey()
	for _, name := range accounts[1:] {
		k, err := net.Keyring.Get(name)
		if err != nil {
			return run, err
		}
		b.deployers = append(b.deployers, k.PrivateKey())
	}
	es, err := b.cl.Era(ctx)
	if err != nil {
		return run, err
	}
	if es == nil || len(es.Gatekeepers) != n {
		return run, fmt.Errorf("launched with %d gatekeepers seated, not %d", len(es.GetGatekeepers()), n)
	}
	if err := b.bulk(ctx, &run, c.Keys-c.Probes); err != nil {
		return run, err
	}
	for i := range c.Probes {
		kr, err := b.probe(ctx, nil, 0)
		if err != nil {
			return run, fmt.Errorf("baseline key request %d: %w", i+1, err)
		}
		run.Baseline = append(run.Baseline, kr)
		c.Log("%d gatekeepers: key request %d outside a rotation: deployed in block %d, keyed in %d, %s", n, i+1, kr.Deployed, kr.Keyed, ms(kr.Latency))
	}
	if err := b.rotation(ctx, &run); err != nil {
		return run, err
	}
	return run, nil
}

// guard fails once the chain is within margin blocks of the measured era
// boundary: the setup must be over before the rotation starts.
func (b *rotationBench) guard(what string) error {
	const margin = 5
	if h := b.net.Node.App().Height(); h >= b.boundary-margin {
		return fmt.Errorf("%s was not done at block %d, %d blocks before the era boundary %d; give the era more blocks (-era-blocks)", what, h, b.boundary-h, b.boundary)
	}
	return nil
}

// deployBody is a deploy of the benchmark's contract to the miner.
func (b *rotationBench) deployBody() *chainpb.TxBody {
	return &chainpb.TxBody{Msg: &chainpb.TxBody_DeployContract{DeployContract: &chainpb.MsgDeployContract{
		CodeGzip: wasmcode.Gzip(rotationContract), Miners: [][]byte{b.miner},
	}}}
}

// bulk deploys count contracts from the deployers, pre-signed and
// submitted together, and waits until every one is keyed and the
// gatekeepers have relayed everything they owed.
func (b *rotationBench) bulk(ctx context.Context, run *RotationRun, count int) error {
	k := len(b.deployers)
	runs := make([][][]byte, k)
	for d, key := range b.deployers {
		addr := crypto.AddressFromPubKey(key.Public().(ed25519.PublicKey))
		acc, err := b.cl.Account(ctx, addr)
		if err != nil {
			return err
		}
		cnt := count / k
		if d < count%k {
			cnt++
		}
		for i := range cnt {
			n := acc.Nonce + uint64(i)
			raw, err := b.cl.Build(ctx, key, b.deployBody(), client.SendOptions{Nonce: &n})
			if err != nil {
				return err
			}
			runs[d] = append(runs[d], raw)
		}
	}
	cb := &contractBench{net: b.net, cl: b.cl}
	sc := &blockScanner{b: cb, set: txSet(runs), seen: b.net.Node.App().Height()}
	t0, h0 := time.Now(), b.net.Node.App().Height()
	for _, tx := range interleave(runs) {
		if err := cb.submit(ctx, tx); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	for sc.found < len(sc.set) {
		if err := sc.scan(); err != nil {
			return err
		}
		if err := b.guard(fmt.Sprintf("committing the %d deploys", count)); err != nil {
			return err
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sc.checkResults(ctx); err != nil {
		return fmt.Errorf("deploys: %w", err)
	}
	b.rc.Log("%d gatekeepers: %d deploys committed in blocks %d..%d; waiting for their keys", b.n, count, sc.heights[0], sc.heights[len(sc.heights)-1])
	said := time.Now()
	for {
		all, err := b.cl.Contracts(ctx)
		if err != nil {
			return err
		}
		keyed := 0
		for _, ct := range all {
			if len(ct.WrappedKey) > 0 {
				keyed++
			}
		}
		h := b.net.Node.App().Height()
		if keyed == count {
			run.Setup, run.SetupBlocks = time.Since(t0), h-h0
			b.rc.Log("%d gatekeepers: %d contracts keyed by block %d, %s after the first deploy (%.2f blocks per key)",
				b.n, count, h, run.Setup.Round(time.Millisecond), float64(run.SetupBlocks)/float64(count))
			break
		}
		if err := b.guard(fmt.Sprintf("keying the %d contracts (%d keyed)", count, keyed)); err != nil {
			return err
		}
		if time.Since(said) > 15*time.Second {
			said = time.Now()
			b.rc.Log("%d gatekeepers: %d of %d keyed at block %d (era boundary at %d)", b.n, keyed, count, h, b.boundary)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	return b.waitIdle(ctx)
}

// waitIdle waits until every gatekeeper's pRuntime has synced to the tip
// and has at most one message (a heartbeat) left to relay: a rotation
// message must not queue behind a backlog of keys.
func (b *rotationBench) waitIdle(ctx context.Context) error {
	for {
		tip := b.net.Node.App().Height()
		busy := ""
		for _, g := range b.gks {
			in := b.net.Workers.Runtimes[g].Info()
			if in.PendingMessages > 1 || in.Height < tip-2 {
				busy = fmt.Sprintf("%s at block %d with %d messages to relay", g, in.Height, in.PendingMessages)
				break
			}
		}
		if busy == "" {
			return nil
		}
		if err := b.guard("waiting for the gatekeepers to go idle (" + busy + ")"); err != nil {
			return err
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitNewBlock waits until a block above height after is committed:
// requests go out right after a commit, as the paused one does after the
// rotation's start.
func (b *rotationBench) waitNewBlock(ctx context.Context, after int64) error {
	for b.net.Node.App().Height() <= after {
		if err := sleep(ctx, 500*time.Microsecond); err != nil {
			return err
		}
	}
	return nil
}

// probe times one key request: tx (a deploy of alice's pre-signed with
// nonce; nil to sign one now and send it right after the next commit) is
// broadcast and its contract polled until keyed.
func (b *rotationBench) probe(ctx context.Context, tx []byte, nonce uint64) (KeyRequest, error) {
	var kr KeyRequest
	alice := crypto.AddressFromPubKey(b.alice.Public().(ed25519.PublicKey))
	if tx == nil {
		if err := b.waitIdle(ctx); err != nil {
			return kr, err
		}
		acc, err := b.cl.Account(ctx, alice)
		if err != nil {
			return kr, err
		}
		nonce = acc.Nonce
		if tx, err = b.cl.Build(ctx, b.alice, b.deployBody(), client.SendOptions{Nonce: &nonce}); err != nil {
			return kr, err
		}
		if err := b.waitNewBlock(ctx, b.net.Node.App().Height()); err != nil {
			return kr, err
		}
	}
	res, err := b.cl.RPC().BroadcastTxSync(ctx, tx)
	if err != nil {
		return kr, err
	}
	if res.Code != 0 {
		return kr, fmt.Errorf("deploy refused (%s/%d): %s", res.Codespace, res.Code, res.Log)
	}
	tr, err := b.cl.WaitTx(ctx, res.Hash, time.Minute)
	if err != nil {
		return kr, err
	}
	kr.Deployed = tr.Height
	id := crypto.NewContractID(alice, nonce)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ct, err := b.cl.Contract(ctx, id)
		if err != nil {
			return kr, err
		}
		if ct == nil {
			return kr, fmt.Errorf("deployed contract %s has no record", id)
		}
		if ct.PublicKey != nil {
			kr.Keyed = ct.KeyedHeight
			break
		}
		if time.Now().After(deadline) {
			return kr, fmt.Errorf("contract %s deployed in block %d not keyed within 5 minutes", id, kr.Deployed)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return kr, err
		}
	}
	if err := b.clock.wait(ctx, kr.Keyed); err != nil {
		return kr, err
	}
	kr.Latency = b.clock.between(kr.Deployed, kr.Keyed)
	return kr, nil
}

// eraAt reads the era record as of block height.
func (b *rotationBench) eraAt(ctx context.Context, height int64) (*chainpb.EraState, error) {
	var es chainpb.EraState
	return &es, queryAt(ctx, b.cl, chain.QueryEra, nil, height, &es)
}

// rotation waits for the era boundary, sends the paused key request as
// soon as the rotation's first block is committed, and times the rotation
// to Ready and the request to its key.
func (b *rotationBench) rotation(ctx context.Context, run *RotationRun) error {
	if err := b.guard("the setup"); err != nil {
		return err
	}
	alice := crypto.AddressFromPubKey(b.alice.Public().(ed25519.PublicKey))
	acc, err := b.cl.Account(ctx, alice)
	if err != nil {
		return err
	}
	paused, err := b.cl.Build(ctx, b.alice, b.deployBody(), client.SendOptions{Nonce: &acc.Nonce})
	if err != nil {
		return err
	}
	b.rc.Log("%d gatekeepers: setup done at block %d; waiting for the era boundary %d", b.n, b.net.Node.App().Height(), b.boundary)
	if err := b.waitNewBlock(ctx, b.boundary-1); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pc := make(chan KeyRequest, 1)
	pe := make(chan error, 1)
	go func() {
		kr, err := b.probe(pctx, paused, acc.Nonce)
		pc <- kr
		pe <- err
	}()
	es, err := b.eraAt(ctx, b.boundary)
	if err != nil {
		return err
	}
	rot := es.Rotation
	if rot == nil || rot.Started != b.boundary {
		return fmt.Errorf("no rotation started at the era boundary %d (era record %v)", b.boundary, es)
	}
	run.Start, run.Era, run.KeysExpected, run.Incoming = rot.Started, rot.Era, rot.KeysExpected, len(rot.Incoming)
	if int(rot.KeysExpected) != b.rc.Keys {
		run.Notes = append(run.Notes, fmt.Sprintf("the rotation re-encrypts %d keys, not %d", rot.KeysExpected, b.rc.Keys))
	}
	if len(rot.Incoming) != b.n {
		run.Notes = append(run.Notes, fmt.Sprintf("the election seated %d gatekeepers, not %d", len(rot.Incoming), b.n))
	}
	if err := b.clock.wait(ctx, run.Start); err != nil {
		return err
	}
	from := max(run.LaunchHeight, run.Start-intervalWindow)
	run.IntervalBlocks = run.Start - from
	run.Interval = b.clock.between(from, run.Start) / time.Duration(max(1, run.IntervalBlocks))
	b.rc.Log("%d gatekeepers: rotation to era %d started in block %d (%d keys, %d incoming; blocks every %s before it)",
		b.n, rot.Era, run.Start, rot.KeysExpected, len(rot.Incoming), ms(run.Interval))

	deadline := time.Now().Add(time.Duration(4*b.rc.RotationBlocks)*max(b.rc.BlockTime, run.Interval) + time.Minute)
	for {
		es, err := b.cl.Era(ctx)
		if err != nil {
			return err
		}
		if es.Era >= run.Era && es.Rotation == nil {
			run.Ready = es.Since
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the rotation to era %d started in block %d is not ready at block %d (record %v)", run.Era, run.Start, b.net.Node.App().Height(), es.Rotation)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	if err := b.clock.wait(ctx, run.Ready); err != nil {
		return err
	}
	run.Seconds = b.clock.between(run.Start, run.Ready)
	// The rotation's progress block by block (the record is dropped at
	// Ready, so up to the block before).
	for h := run.Start; h < run.Ready; h++ {
		es, err := b.eraAt(ctx, h)
		if err != nil {
			return err
		}
		r := es.Rotation
		if r == nil {
			return fmt.Errorf("no rotation in the era record at block %d, between its start %d and Ready %d", h, run.Start, run.Ready)
		}
		if len(r.Confirmed) > 0 && run.FirstConfirm == 0 {
			run.FirstConfirm = h
		}
		run.Attempt, run.Parts, run.SharesHeight, run.KeysHeight, run.StateHeight = r.Attempt, r.Parts, r.SharesHeight, r.KeysHeight, r.StateHeight
	}
	if run.FirstConfirm == 0 {
		run.FirstConfirm = run.Ready // every confirmation landed in Ready's block
	}
	if run.Attempt != 1 {
		run.Notes = append(run.Notes, fmt.Sprintf("Ready came in attempt %d: %d attempts expired", run.Attempt, run.Attempt-1))
	}
	log, err := b.cl.EventLog(ctx, run.Ready)
	if err != nil {
		return err
	}
	for _, raw := range log.Events {
		var ev chainpb.WorkerEvent
		if err := proto.Unmarshal(raw, &ev); err != nil {
			return err
		}
		if r := ev.GetRotationReady(); r != nil && r.Era == run.Era && len(r.Gatekeepers) == run.Incoming {
			run.ReadyEvent = true
		}
	}
	if !run.ReadyEvent {
		run.Notes = append(run.Notes, fmt.Sprintf("block %d's event log has no RotationReady for era %d", run.Ready, run.Era))
	}
	b.rc.Log("%d gatekeepers: rotation ready in block %d: %d blocks, %s (shares in %d, key in %d, state in %d, confirmations %d..%d)",
		b.n, run.Ready, run.Blocks(), ms(run.Seconds), run.SharesHeight, run.KeysHeight, run.StateHeight, run.FirstConfirm, run.Ready)

	run.Paused = <-pc
	if err := <-pe; err != nil {
		return fmt.Errorf("the key request at the rotation's start: %w", err)
	}
	if run.Paused.Deployed <= run.Start || run.Paused.Deployed >= run.Ready {
		run.Notes = append(run.Notes, fmt.Sprintf("the key request at the rotation's start was deployed in block %d, outside the rotation %d..%d", run.Paused.Deployed, run.Start, run.Ready))
	}
	if run.Paused.Keyed <= run.Ready {
		return fmt.Errorf("the contract deployed in block %d during the rotation was keyed in block %d, before Ready in %d: key traffic was not paused", run.Paused.Deployed, run.Paused.Keyed, run.Ready)
	}
	b.rc.Log("%d gatekeepers: key request at the rotation's start: deployed in block %d, keyed in %d, %s", b.n, run.Paused.Deployed, run.Paused.Keyed, ms(run.Paused.Latency))
	return nil
}

// WriteRotationReport prints rep for c.
func WriteRotationReport(w *bufio.Writer, c RotationConfig, rep RotationReport, procs int) {
	c.defaults()
	fmt.Fprintf(w, "root key rotation: one devnet per gatekeeper count (N candidates, all seated, and 1 miner), block time %s, GOMAXPROCS %d\n", c.BlockTime, procs)
	fmt.Fprintf(w, "  %d stored contract keys when the rotation starts: %d contracts deployed in bulk, then %d key requests one at a time outside a rotation (the baseline);\n",
		c.Keys, c.Keys-c.Probes, c.Probes)
	fmt.Fprintf(w, "  each a deploy of a %d-byte wasm contract to the miner; the rotation measured is the first era's (k_r^(0) -> k_r^(1)), deadline %d blocks;\n", len(rotationContract), c.RotationBlocks)
	fmt.Fprintf(w, "  rotation = from its start (the era's last block) to the block with Rotation Ready; paused key request = a deploy broadcast as soon as the start block is committed;\n")
	fmt.Fprintf(w, "  key latency = from the deploy's block to the block that keyed it (times: the blocks' commits seen in the node); best case %d blocks (docs/eras.md);\n", BestCaseBlocks)
	fmt.Fprintf(w, "  floor here = 2 blocks per round (a pRuntime sees block h's events with header h+1) plus 1 per state part after the first (relayed a block apart)\n")
	if rep.Load != "" {
		fmt.Fprintf(w, "  (load average of the machine, 1/5/15 min: %s at the start, %s at the end)\n", rep.Load, loadAverage())
	}
	for _, r := range rep.Runs {
		status := ""
		if !r.Done() {
			status = " (did not complete)"
		}
		fmt.Fprintf(w, "  %d gatekeepers: era %d blocks; launched in %s (block %d); %d keys in bulk keyed in %s over %d blocks (%.2f blocks per key); wall %s%s\n",
			r.Gatekeepers, r.EraBlocks, r.Launch.Round(time.Millisecond), r.LaunchHeight, c.Keys-c.Probes, r.Setup.Round(time.Millisecond), r.SetupBlocks,
			float64(r.SetupBlocks)/float64(max(1, c.Keys-c.Probes)), r.Wall.Round(time.Second), status)
	}
	fmt.Fprintf(w, "  %-3s %5s %5s %7s %7s %7s %6s %8s %8s %-28s %-22s %-22s\n",
		"N", "keys", "parts", "attempt", "start", "ready", "blocks", "seconds", "interval", "shares/key/state/confirms", "key request normal", "key request paused")
	for _, r := range rep.Runs {
		if r.Ready == 0 {
			continue
		}
		norm := r.NormalLatency()
		rel := func(h int64) string { return fmt.Sprintf("+%d", h-r.Start) }
		steps := fmt.Sprintf("%s/%s/%s/%s..%s", rel(r.SharesHeight), rel(r.KeysHeight), rel(r.StateHeight), rel(r.FirstConfirm), rel(r.Ready))
		paused := "-"
		if r.Paused.Keyed > 0 {
			paused = fmt.Sprintf("%d blocks %s", r.Paused.Blocks(), ms(r.Paused.Latency))
		}
		fmt.Fprintf(w, "  %-3d %5d %5d %7d %7d %7d %6d %8s %8s %-28s %-22s %-22s\n",
			r.Gatekeepers, r.KeysExpected, r.Parts, r.Attempt, r.Start, r.Ready, r.Blocks(), ms(r.Seconds), ms(r.Interval), steps,
			fmt.Sprintf("%d blocks %s", norm.Blocks(), ms(norm.Latency)), paused)
		var bl []string
		for _, k := range r.Baseline {
			bl = append(bl, fmt.Sprintf("%d/%s", k.Blocks(), ms(k.Latency)))
		}
		fmt.Fprintf(w, "      baseline requests (blocks/time): %v; paused request deployed in block %d, keyed in %d\n", bl, r.Paused.Deployed, r.Paused.Keyed)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "      NOTE: %s\n", n)
		}
	}
	fmt.Fprintf(w, "  (shares/key/state/confirms: blocks after the start in which both shares were in, the new root key was distributed, the re-encrypted state\n")
	fmt.Fprintf(w, "   was complete, and the first to the last confirmation landed; interval: the mean block interval over the %d blocks before the start)\n", intervalWindow)
	var first *RotationRun
	for i := range rep.Runs {
		r := &rep.Runs[i]
		if !r.Done() {
			fmt.Fprintf(w, "  %d gatekeepers: no ratios (the run did not complete)\n", r.Gatekeepers)
			continue
		}
		norm := r.NormalLatency()
		fmt.Fprintf(w, "  %d gatekeepers: rotation %d blocks / best case %d = %.2f (/ floor here %d = %.2f); %s / block interval %s = %.2f; paused key request / normal: %s / %s = %.2f (blocks %d / %d = %.2f)\n",
			r.Gatekeepers, r.Blocks(), BestCaseBlocks, float64(r.Blocks())/BestCaseBlocks, FloorBlocks(r.Parts), float64(r.Blocks())/float64(FloorBlocks(r.Parts)),
			ms(r.Seconds), ms(r.Interval), float64(r.Seconds)/float64(r.Interval),
			ms(r.Paused.Latency), ms(norm.Latency), float64(r.Paused.Latency)/float64(norm.Latency),
			r.Paused.Blocks(), norm.Blocks(), float64(r.Paused.Blocks())/float64(max(1, norm.Blocks())))
		if first == nil {
			first = r
			continue
		}
		fmt.Fprintf(w, "  %d / %d gatekeepers: rotation blocks %d / %d = %.2f, seconds %s / %s = %.2f\n",
			r.Gatekeepers, first.Gatekeepers, r.Blocks(), first.Blocks(), float64(r.Blocks())/float64(first.Blocks()),
			ms(r.Seconds), ms(first.Seconds), float64(r.Seconds)/float64(first.Seconds))
	}
}
