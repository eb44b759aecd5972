// Package bench measures Phala-Go against baselines run in the same process
// and configuration, and reports ratios: machines are noisy, ratios hold.
package bench

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/mempool"
	rpclocal "github.com/cometbft/cometbft/rpc/client/local"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/node"
	"github.com/phala-go/phala/proto/chainpb"
)

// Config is one throughput run. Zero fields take defaults.
type Config struct {
	// Txs is how many transactions each chain must commit. Default 200,000.
	Txs int
	// Senders is how many funded accounts sign Phala transfers. Default 64.
	Senders int
	// BlockTime is CometBFT's timeout_commit for both chains. Default 100 ms.
	BlockTime time.Duration
	// Feeders is how many goroutines submit transactions. Default 4.
	Feeders int
	// Dir holds both chains' data. Default: a temporary directory.
	Dir string
	// BasePort for the two nodes' listeners (each takes 10). Default 39000.
	BasePort int
	// CPUProfile, if set, receives a CPU profile of the Phala run.
	CPUProfile string
	// Rounds is how many times both chains are measured. Default 3.
	Rounds int
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Txs == 0 {
		c.Txs = 200_000
	}
	if c.Senders == 0 {
		c.Senders = 64
	}
	if c.BlockTime == 0 {
		c.BlockTime = 100 * time.Millisecond
	}
	if c.Feeders == 0 {
		c.Feeders = 4
	}
	if c.BasePort == 0 {
		c.BasePort = 39000
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// Result is one chain's measured throughput.
type Result struct {
	Name     string
	Txs      int
	Blocks   int
	Duration time.Duration
}

// TPS is committed transactions per second.
func (r Result) TPS() float64 { return float64(r.Txs) / r.Duration.Seconds() }

// Round is one kvstore run and the Phala run right after it.
type Round struct {
	KVStore, Phala Result
}

// Ratio is Phala's committed tx/s over kvstore's in this round.
func (r Round) Ratio() float64 { return r.Phala.TPS() / r.KVStore.TPS() }

// Comparison is the outcome of Run: rounds alternate the two chains so
// that a noisy stretch of the machine hits both.
type Comparison struct {
	Rounds []Round
}

// Median returns the round with the median ratio.
func (c Comparison) Median() Round {
	rs := slices.Clone(c.Rounds)
	slices.SortFunc(rs, func(a, b Round) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return rs[len(rs)/2]
}

// tune is the CometBFT configuration both chains share.
func tune(blockTime time.Duration) func(int, *cfg.Config) {
	return func(_ int, c *cfg.Config) {
		c.Consensus.TimeoutCommit = blockTime
		c.TxIndex.Indexer = "null"
		c.Instrumentation.Prometheus = false
		c.Mempool.Size = 200_000
		c.Mempool.MaxTxsBytes = 1 << 30
		c.Mempool.CacheSize = 200_000
	}
}

func benchKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(fmt.Sprintf("bench sender %d", i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Run measures kvstore, then Phala transfers, with the same CometBFT
// configuration, transaction count and submission path, c.Rounds times.
// Every run starts from a fresh chain.
func Run(ctx context.Context, c Config) (Comparison, error) {
	c.defaults()
	var out Comparison
	for r := range c.Rounds {
		dir, err := os.MkdirTemp(c.Dir, "phala-bench")
		if err != nil {
			return out, err
		}
		rc := c
		rc.Dir = dir
		var round Round
		round.KVStore, err = runKVStore(ctx, rc)
		if err != nil {
			os.RemoveAll(dir)
			return out, fmt.Errorf("kvstore: %w", err)
		}
		if r > 0 {
			rc.CPUProfile = "" // profile the first Phala run only
		}
		round.Phala, err = runPhala(ctx, rc)
		os.RemoveAll(dir)
		if err != nil {
			return out, fmt.Errorf("phala: %w", err)
		}
		c.Log("round %d: kvstore %.0f tx/s, phala %.0f tx/s, ratio %.2f", r+1, round.KVStore.TPS(), round.Phala.TPS(), round.Ratio())
		out.Rounds = append(out.Rounds, round)
	}
	return out, nil
}

func initHome(c Config, name string, port int, g chain.Genesis) (string, error) {
	homes, err := node.InitNetwork(filepath.Join(c.Dir, name), node.NetworkSpec{
		ChainID: "bench-" + name, Validators: 1, BasePort: port, BlockTime: c.BlockTime,
		Genesis: g, App: node.DefaultAppConfig(), Tune: tune(c.BlockTime),
	})
	if err != nil {
		return "", err
	}
	return homes[0], nil
}

func runKVStore(ctx context.Context, c Config) (Result, error) {
	g, err := chain.DefaultGenesis()
	if err != nil {
		return Result{}, err
	}
	home, err := initHome(c, "kvstore", c.BasePort, g)
	if err != nil {
		return Result{}, err
	}
	app := kvstore.NewPersistentApplication(filepath.Join(home, "data", "kvstore"))
	defer app.Close()
	n, err := node.Start(ctx, home, node.Options{App: app, Logger: quietLogger()})
	if err != nil {
		return Result{}, err
	}
	defer n.Stop()
	txs := make([][]byte, c.Txs)
	for i := range txs {
		txs[i] = fmt.Appendf(nil, "bench-key-%08d=value-%08d", i, i)
	}
	// Round-robin over the feeders; kvstore has no ordering rule.
	return measure(ctx, n, "kvstore", split(txs, c.Feeders))
}

func runPhala(ctx context.Context, c Config) (Result, error) {
	var grants []bank.Grant
	keys := make([]ed25519.PrivateKey, c.Senders)
	addrs := make([]crypto.Address, c.Senders)
	for i := range keys {
		keys[i] = benchKey(i)
		addrs[i] = crypto.AddressFromPubKey(keys[i].Public().(ed25519.PublicKey))
		grants = append(grants, bank.Grant{
			Name: fmt.Sprintf("sender%d", i), Category: "incentives", Address: addrs[i], Amount: 10_000 * bank.UnitsPerPHA,
		})
	}
	g, err := chain.DefaultGenesis(grants...)
	if err != nil {
		return Result{}, err
	}
	home, err := initHome(c, "phala", c.BasePort+node.PortStride, g)
	if err != nil {
		return Result{}, err
	}
	chainID := "bench-phala"
	fee := auth.DefaultParams().MinFee(200)
	// Pre-sign every transfer; sender i's transfers go, in nonce order,
	// through the feeder that owns sender i.
	runs := make([][][]byte, len(keys)) // per sender, in nonce order
	perSender := (c.Txs + c.Senders - 1) / c.Senders
	var wg sync.WaitGroup
	total := 0
	for s := range keys {
		cnt := min(perSender, c.Txs-total)
		if cnt <= 0 {
			break
		}
		total += cnt
		wg.Add(1)
		go func() {
			defer wg.Done()
			signed := make([][]byte, cnt)
			for n := range cnt {
				to := addrs[(s+n+1)%c.Senders]
				raw, err := auth.Sign(keys[s], &chainpb.TxBody{ChainId: chainID, Nonce: uint64(n), Fee: fee,
					Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: to[:], Amount: 1 + int64(n)}}})
				if err != nil {
					panic(err)
				}
				signed[n] = raw
			}
			runs[s] = signed
		}()
	}
	wg.Wait()
	// Sender s belongs to feeder s mod Feeders, which interleaves its
	// senders round-robin: each sender stays in nonce order, and no
	// account's burst waits for another's.
	perFeeder := make([][][]byte, c.Feeders)
	for f := range perFeeder {
		var mine [][][]byte
		for s := f; s < len(runs); s += c.Feeders {
			mine = append(mine, runs[s])
		}
		perFeeder[f] = interleave(mine)
	}
	n, err := node.Start(ctx, home, node.Options{Logger: quietLogger()})
	if err != nil {
		return Result{}, err
	}
	defer n.Stop()
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return Result{}, err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	res, err := measure(ctx, n, "phala", perFeeder)
	if err != nil {
		return res, err
	}
	// Every transfer must have succeeded, not merely been included.
	for s, a := range addrs {
		want := uint64(len(runs[s]))
		got, err := accountNonce(ctx, n, a)
		if err != nil {
			return res, err
		}
		if got != want {
			return res, fmt.Errorf("sender %d has nonce %d, want %d: some transfers failed", s, got, want)
		}
	}
	return res, nil
}

// interleave merges per-sender runs into rounds of one transaction per
// sender, keeping each run's order.
func interleave(runs [][][]byte) [][]byte {
	total := 0
	for _, r := range runs {
		total += len(r)
	}
	out := make([][]byte, 0, total)
	for r := 0; len(out) < total; r++ {
		for _, run := range runs {
			if r < len(run) {
				out = append(out, run[r])
			}
		}
	}
	return out
}

func split(txs [][]byte, parts int) [][][]byte {
	out := make([][][]byte, parts)
	for i, tx := range txs {
		out[i%parts] = append(out[i%parts], tx)
	}
	return out
}

// measure submits every batch concurrently (each batch in order) through
// CometBFT's RPC and returns when all transactions are committed.
func measure(ctx context.Context, n *node.Node, name string, batches [][][]byte) (Result, error) {
	want := 0
	for _, b := range batches {
		want += len(b)
	}
	rpc := rpclocal.New(n.Comet())
	bs := n.Comet().BlockStore()
	env, err := n.Comet().ConfigureRPC()
	if err != nil {
		return Result{}, err
	}
	committedHeight := func() (int64, error) {
		st, err := env.StateStore.Load()
		return st.LastBlockHeight, err
	}
	h0, err := committedHeight()
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	errc := make(chan error, len(batches))
	for _, b := range batches {
		go func() {
			for _, tx := range b {
				for {
					_, err := rpc.BroadcastTxAsync(ctx, tx)
					var full mempool.ErrMempoolIsFull
					if errors.As(err, &full) || errors.Is(err, mempool.ErrRecheckFull) {
						time.Sleep(2 * time.Millisecond)
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					break
				}
			}
			errc <- nil
		}()
	}
	// Count transactions of blocks the state store records as committed,
	// polling: a subscription would add event-bus work to the run measured.
	committed, blocks, seen := 0, 0, h0
	tick := time.NewTicker(3 * time.Millisecond)
	defer tick.Stop()
	for committed < want {
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("%d of %d txs committed: %w", committed, want, ctx.Err())
		case err := <-errc:
			if err != nil {
				return Result{}, fmt.Errorf("submit: %w", err)
			}
		case <-tick.C:
			h, err := committedHeight()
			if err != nil {
				return Result{}, err
			}
			for seen < h {
				seen++
				m := bs.LoadBlockMeta(seen)
				if m == nil {
					return Result{}, fmt.Errorf("block %d has no meta", seen)
				}
				committed += m.NumTxs
				if m.NumTxs > 0 {
					blocks++
				}
			}
		}
	}
	return Result{Name: name, Txs: committed, Blocks: blocks, Duration: time.Since(start)}, nil
}

func accountNonce(ctx context.Context, n *node.Node, a crypto.Address) (uint64, error) {
	res, err := rpclocal.New(n.Comet()).ABCIQuery(ctx, chain.QueryAccount, a[:])
	if err != nil {
		return 0, err
	}
	var acc chainpb.Account
	if err := proto.Unmarshal(res.Response.Value, &acc); err != nil {
		return 0, err
	}
	return acc.Nonce, nil
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
