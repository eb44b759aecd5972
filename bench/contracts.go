package bench

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/querywire"
	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/vm"
)

// ContractConfig is one confidential-contract benchmark: a devnet with its
// workers, the token contract deployed to miner1, then (a) token transfers
// against plain PHA transfers through consensus and (b) queries to the
// miner, idle and under a stream of commands. Zero fields take defaults.
type ContractConfig struct {
	// Transfers is how many transfers each pipeline run carries. Default 2000.
	Transfers int
	// Senders is how many funded dev accounts sign them. Default 8.
	Senders int
	// Feeders is how many goroutines submit transactions. Default 4.
	Feeders int
	// Rounds of (PHA, token) runs; the median ratio is reported. Default 3.
	Rounds int
	// BlockTime of the devnet. Default 200 ms.
	BlockTime time.Duration
	// BasePort is the devnet's first port. Default 41000.
	BasePort int
	// Dir holds the devnet. Default: a temporary directory, removed after.
	Dir string
	// Repo is the module root the token is built from. Default: the
	// checkout this program was built from (wasmbuild.ModuleRoot).
	Repo string
	// QueryWorkers is how many goroutines query concurrently. Default 4.
	QueryWorkers int
	// QueryDuration is the length of each query measurement. Default 10 s.
	QueryDuration time.Duration
	// LoadRate is the command stream's rate (commands/s) during the loaded
	// query measurement. Default 100.
	LoadRate float64
	// Calls is how many sequential calls each step of the query cost
	// breakdown makes. Default 200.
	Calls int
	// CPUProfile, if set, receives a CPU profile of the last round's token
	// run, from the first submission until the miner executed it all.
	CPUProfile string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (c *ContractConfig) defaults() {
	if c.Transfers == 0 {
		c.Transfers = 2000
	}
	if c.Senders == 0 {
		c.Senders = 8
	}
	if c.Feeders == 0 {
		c.Feeders = 4
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.BlockTime == 0 {
		c.BlockTime = 200 * time.Millisecond
	}
	if c.BasePort == 0 {
		c.BasePort = 41000
	}
	if c.QueryWorkers == 0 {
		c.QueryWorkers = 4
	}
	if c.QueryDuration == 0 {
		c.QueryDuration = 10 * time.Second
	}
	if c.LoadRate == 0 {
		c.LoadRate = 100
	}
	if c.Calls == 0 {
		c.Calls = 200
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// PipelineResult is one run of transfers through consensus.
type PipelineResult struct {
	Name string
	Txs  int
	// Blocks is how many blocks held the run's transactions.
	Blocks int
	// Committed is from the first submission to the block holding the last
	// transaction being committed.
	Committed time.Duration
	// Executed is, for contract commands, from the first submission to the
	// miner having executed them all (its pRuntime synced past that block);
	// for plain transfers it equals Committed.
	Executed time.Duration
}

// CommittedTPS is transactions committed per second.
func (r PipelineResult) CommittedTPS() float64 { return float64(r.Txs) / r.Committed.Seconds() }

// ExecutedTPS is transactions committed and executed per second.
func (r PipelineResult) ExecutedTPS() float64 { return float64(r.Txs) / r.Executed.Seconds() }

// ContractRound is one plain PHA transfer run and the token run after it.
type ContractRound struct {
	PHA, Token PipelineResult
}

// Ratio is token transfers committed and executed per second over PHA
// transfers committed per second.
func (r ContractRound) Ratio() float64 { return r.Token.ExecutedTPS() / r.PHA.ExecutedTPS() }

// Latencies is one query measurement.
type Latencies struct {
	Name     string
	Calls    int
	Errors   int
	Duration time.Duration
	Mean     time.Duration
	P50, P99 time.Duration
	Max      time.Duration
}

// QPS is successful calls per second.
func (l Latencies) QPS() float64 { return float64(l.Calls) / l.Duration.Seconds() }

func summarize(name string, lat []time.Duration, errs int, d time.Duration) Latencies {
	l := Latencies{Name: name, Calls: len(lat), Errors: errs, Duration: d}
	if len(lat) == 0 {
		return l
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, x := range lat {
		sum += x
	}
	l.Mean = sum / time.Duration(len(lat))
	l.P50 = percentile(lat, 0.50)
	l.P99 = percentile(lat, 0.99)
	l.Max = lat[len(lat)-1]
	return l
}

// percentile of sorted, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// LoadStats describes the command stream of the loaded query measurement.
type LoadStats struct {
	Rate      float64 // asked
	Submitted int
	Blocks    int // blocks the chain made during the window
	// MaxLag is the most blocks the miner's pRuntime was behind the chain
	// when sampled during the window.
	MaxLag int64
	// Drain is how long after the window the miner took to execute every
	// command submitted in it.
	Drain time.Duration
}

// ContractReport is everything RunContracts measured.
type ContractReport struct {
	Rounds []ContractRound
	// Idle and Loaded are QueryContract from QueryWorkers goroutines.
	Idle, Loaded Latencies
	Load         LoadStats
	// Breakdown is the same query, sequential and idle, along ever longer
	// paths: the VM alone (the plain-call baseline), pRuntime's Query in
	// process (sealing, signing), QueryWorker (plus host HTTP and gRPC), and
	// QueryContract (plus the chain lookups of the miner's record).
	Breakdown  []Latencies
	CommandGas uint64
	Launch     time.Duration
}

// Median returns the round with the median ratio.
func (r ContractReport) Median() ContractRound {
	rs := slices.Clone(r.Rounds)
	slices.SortFunc(rs, func(a, b ContractRound) int { return cmp.Compare(a.Ratio(), b.Ratio()) })
	return rs[len(rs)/2]
}

type benchUser struct {
	name string
	key  ed25519.PrivateKey
	addr crypto.Address
}

// contractBench is the running devnet and the deployed token.
type contractBench struct {
	c       ContractConfig
	net     *devnet.Network
	cl      *client.Client
	miner   *pruntime.Runtime
	alice   benchUser
	senders []benchUser
	token   crypto.ContractID
	chainID string
	worker  *chainpb.Worker
	gas     uint64 // a transfer's gas, from a receipt
	profile string // CPU profile file of the next token run
	launch  time.Duration
}

// buildToken builds the token contract and picks the working directory:
// dir, or a fresh temporary one (named from prefix) that cleanup removes.
func buildToken(ctx context.Context, repo, dir, prefix string, log func(string, ...any)) (code []byte, workdir string, cleanup func(), err error) {
	cleanup = func() {}
	if repo == "" {
		if repo, err = wasmbuild.ModuleRoot(); err != nil {
			return nil, "", cleanup, err
		}
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, "", cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	t0 := time.Now()
	if code, err = wasmbuild.Code(ctx, repo, "./contracts/token"); err != nil {
		return nil, "", cleanup, err
	}
	log("built the token contract (%d KB) in %s", len(code)>>10, time.Since(t0).Round(time.Millisecond))
	return code, dir, cleanup, nil
}

// startContractBench starts a devnet with the default workers and the
// accounts alice, bob and c.Senders senders (dc adds home, logger and
// genesis tuning; the rest comes from c), waits for the launch, and
// returns the bench with alice and the senders loaded. The caller stops
// b.net.
func startContractBench(ctx context.Context, c ContractConfig, dc devnet.Config) (*contractBench, error) {
	accounts := []string{"alice", "bob"}
	for i := range c.Senders {
		accounts = append(accounts, fmt.Sprintf("sender%d", i+1))
	}
	dc.BasePort, dc.BlockTime, dc.Workers, dc.DevAccounts = c.BasePort, c.BlockTime, devnet.DefaultWorkers(), accounts
	t0 := time.Now()
	net, err := devnet.Start(ctx, dc)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	_, err = devnet.WaitLaunched(lctx, net.Client)
	cancel()
	if err != nil {
		net.Stop()
		return nil, err
	}
	b := &contractBench{c: c, net: net, cl: net.Client, miner: net.Workers.Runtimes["miner1"], launch: time.Since(t0)}
	c.Log("devnet launched in %s (at block %d)", b.launch.Round(time.Millisecond), net.Node.App().Height())
	user := func(name string) (benchUser, error) {
		k, err := net.Keyring.Get(name)
		return benchUser{name, k.PrivateKey(), k.Address}, err
	}
	if b.alice, err = user("alice"); err != nil {
		net.Stop()
		return nil, err
	}
	for _, name := range accounts[2:] {
		u, err := user(name)
		if err != nil {
			net.Stop()
			return nil, err
		}
		b.senders = append(b.senders, u)
	}
	return b, nil
}

// RunContracts builds the token, starts a devnet, and measures.
func RunContracts(ctx context.Context, c ContractConfig) (rep ContractReport, err error) {
	c.defaults()
	code, dir, cleanup, err := buildToken(ctx, c.Repo, c.Dir, "phala-contractbench", c.Log)
	if err != nil {
		return rep, err
	}
	defer cleanup()

	// The plain-call baseline's engine compiles while the devnet launches.
	type compiled struct {
		e    *vm.Engine
		code vm.CodeHash
		err  error
	}
	vmc := make(chan compiled, 1)
	go func() {
		t0 := time.Now()
		e, err := vm.NewEngine(ctx, vm.Config{})
		if err != nil {
			vmc <- compiled{err: err}
			return
		}
		h, err := e.Compile(ctx, code)
		c.Log("compiled the token for the plain-call baseline in %s", time.Since(t0).Round(time.Millisecond))
		vmc <- compiled{e, h, err}
	}()
	defer func() {
		if v := <-vmc; v.e != nil {
			v.e.Close(ctx)
		}
	}()

	b, err := startContractBench(ctx, c, devnet.Config{Home: filepath.Join(dir, "devnet")})
	if err != nil {
		return rep, err
	}
	defer b.net.Stop()
	rep.Launch = b.launch
	if err := b.deploy(ctx, code); err != nil {
		return rep, err
	}
	// Nothing of the setup may still run during the rounds.
	v := <-vmc
	vmc <- v // for the deferred Close
	if v.err != nil {
		return rep, fmt.Errorf("the plain-call baseline's VM: %w", v.err)
	}

	for r := range c.Rounds {
		if r == c.Rounds-1 {
			b.profile = c.CPUProfile
		}
		var round ContractRound
		if round.PHA, err = b.pipeline(ctx, false, c.Transfers); err != nil {
			return rep, fmt.Errorf("PHA transfers: %w", err)
		}
		if round.Token, err = b.pipeline(ctx, true, c.Transfers); err != nil {
			return rep, fmt.Errorf("token transfers: %w", err)
		}
		c.Log("round %d: PHA %.0f tx/s committed; token %.0f tx/s committed, %.0f executed; ratio %.2f",
			r+1, round.PHA.CommittedTPS(), round.Token.CommittedTPS(), round.Token.ExecutedTPS(), round.Ratio())
		rep.Rounds = append(rep.Rounds, round)
	}

	rep.CommandGas = b.gas
	if rep.Breakdown, err = b.breakdown(ctx, v.e, v.code); err != nil {
		return rep, err
	}
	c.Log("idle queries for %s from %d goroutines", c.QueryDuration, c.QueryWorkers)
	rep.Idle = b.queries(ctx, "idle", c.QueryDuration)
	c.Log("idle: %.0f q/s, p50 %s, p99 %s, %d errors", rep.Idle.QPS(), rep.Idle.P50.Round(time.Microsecond), rep.Idle.P99.Round(time.Microsecond), rep.Idle.Errors)
	rep.Loaded, rep.Load, err = b.loaded(ctx)
	if err != nil {
		return rep, err
	}
	c.Log("loaded: %.0f q/s, p50 %s, p99 %s, %d errors", rep.Loaded.QPS(), rep.Loaded.P50.Round(time.Microsecond), rep.Loaded.P99.Round(time.Microsecond), rep.Loaded.Errors)
	return rep, nil
}

// deploy deploys the token to miner1 and mints every sender a supply.
func (b *contractBench) deploy(ctx context.Context, code []byte) error {
	t0 := time.Now()
	minerKey := b.miner.Info().SigningKey
	id, _, err := b.cl.DeployContract(ctx, b.alice.key, code, [][]byte{minerKey}, []byte(`{"name":"Bench Token"}`), client.SendOptions{})
	if err != nil {
		return fmt.Errorf("deploy the token: %w", err)
	}
	if _, err := b.cl.WaitKeyed(ctx, id, time.Minute); err != nil {
		return err
	}
	b.token = id
	if b.chainID, err = b.cl.ChainID(ctx); err != nil {
		return err
	}
	if _, b.worker, err = b.cl.Miner(ctx, id); err != nil {
		return err
	}
	b.c.Log("deployed and keyed the token %s in %s", id, time.Since(t0).Round(time.Millisecond))
	// The miner instantiates it when it syncs the keying block; a mint
	// sent before then still runs after the instantiation (block order).
	acc, err := b.cl.Account(ctx, b.alice.addr)
	if err != nil {
		return err
	}
	for i, s := range b.senders {
		n := acc.Nonce + uint64(i)
		raw, _, err := b.cl.BuildCall(ctx, b.alice.key, id, fmt.Appendf(nil, `{"mint":{"to":%q,"amount":1000000000000}}`, s.addr), 0, client.SendOptions{Nonce: &n})
		if err != nil {
			return err
		}
		res, err := b.cl.RPC().BroadcastTxSync(ctx, raw)
		if err != nil {
			return err
		}
		if res.Code != 0 {
			return fmt.Errorf("mint refused: %s", res.Log)
		}
	}
	for i := range b.senders {
		rc, err := b.cl.WaitReceipt(ctx, b.alice.key, id, acc.Nonce+uint64(i), time.Minute)
		if err != nil {
			return err
		}
		if !rc.Ok {
			return fmt.Errorf("mint to %s failed: %s", b.senders[i].name, rc.Error)
		}
	}
	b.c.Log("minted tokens to %d senders (%s since deploy)", len(b.senders), time.Since(t0).Round(time.Millisecond))
	return nil
}

// build signs count transfers spread over the senders, from each sender's
// next nonce: token commands or plain PHA transfers. It returns them per
// sender in nonce order, and the last nonce used per sender.
func (b *contractBench) build(ctx context.Context, token bool, count int) (runs [][][]byte, last []uint64, err error) {
	k := len(b.senders)
	runs, last = make([][][]byte, k), make([]uint64, k)
	errc := make(chan error, k)
	for s, u := range b.senders {
		cnt := count / k
		if s < count%k {
			cnt++
		}
		go func() {
			acc, err := b.cl.Account(ctx, u.addr)
			if err != nil {
				errc <- err
				return
			}
			to := b.senders[(s+1)%k].addr
			run := make([][]byte, cnt)
			for i := range cnt {
				n := acc.Nonce + uint64(i)
				opts := client.SendOptions{Nonce: &n}
				if token {
					run[i], _, err = b.cl.BuildCall(ctx, u.key, b.token, fmt.Appendf(nil, `{"transfer":{"to":%q,"amount":1}}`, to), 0, opts)
				} else {
					run[i], err = b.cl.Build(ctx, u.key, &chainpb.TxBody{Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: to.Bytes(), Amount: 1}}}, opts)
				}
				if err != nil {
					errc <- err
					return
				}
			}
			runs[s], last[s] = run, acc.Nonce+uint64(cnt)-1
			errc <- nil
		}()
	}
	for range k {
		if e := <-errc; e != nil {
			err = e
		}
	}
	return runs, last, err
}

// feed splits per-sender runs over the feeders (sender s to feeder s mod
// Feeders, its senders interleaved round-robin, each in nonce order).
func (b *contractBench) feed(runs [][][]byte) [][][]byte {
	out := make([][][]byte, min(b.c.Feeders, len(runs)))
	for f := range out {
		var mine [][][]byte
		for s := f; s < len(runs); s += len(out) {
			mine = append(mine, runs[s])
		}
		out[f] = interleave(mine)
	}
	return out
}

// submit broadcasts one transaction through the node's RPC (CheckTx),
// waiting while the mempool is full.
func (b *contractBench) submit(ctx context.Context, tx []byte) error {
	for {
		res, err := b.cl.RPC().BroadcastTxSync(ctx, tx)
		if err != nil && strings.Contains(err.Error(), "mempool is full") {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		if res.Code != 0 {
			return fmt.Errorf("CheckTx refused a transaction (%s/%d): %s", res.Codespace, res.Code, res.Log)
		}
		return nil
	}
}

// txSet indexes transactions by hash (CometBFT's: SHA-256 of the bytes).
func txSet(runs [][][]byte) map[[32]byte]bool {
	set := map[[32]byte]bool{}
	for _, r := range runs {
		for _, tx := range r {
			set[sha256.Sum256(tx)] = true
		}
	}
	return set
}

// blockScanner counts the transactions of a set in committed blocks.
type blockScanner struct {
	b       *contractBench
	set     map[[32]byte]bool
	seen    int64 // last block scanned
	found   int
	heights []int64 // blocks holding some of the set
}

func (s *blockScanner) scan() error {
	h := s.b.net.Node.App().Height()
	bs := s.b.net.Node.Comet().BlockStore()
	for s.seen < h {
		s.seen++
		blk, _ := bs.LoadBlock(s.seen)
		if blk == nil {
			return fmt.Errorf("block %d is committed but not in the block store", s.seen)
		}
		n := 0
		for _, tx := range blk.Txs {
			if s.set[sha256.Sum256(tx)] {
				n++
			}
		}
		if n > 0 {
			s.found += n
			s.heights = append(s.heights, s.seen)
		}
	}
	return nil
}

// checkResults confirms every transaction of the set succeeded in its block.
func (s *blockScanner) checkResults(ctx context.Context) error {
	bs := s.b.net.Node.Comet().BlockStore()
	failed := 0
	var first string
	for _, h := range s.heights {
		blk, _ := bs.LoadBlock(h)
		res, err := s.b.cl.RPC().BlockResults(ctx, &h)
		if err != nil {
			return err
		}
		for i, tx := range blk.Txs {
			if s.set[sha256.Sum256(tx)] && res.TxResults[i].Code != 0 {
				failed++
				if first == "" {
					first = fmt.Sprintf("block %d tx %d: %s", h, i, res.TxResults[i].Log)
				}
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of the run's transactions failed in their blocks; the first: %s", failed, first)
	}
	return nil
}

// waitExecuted waits until the miner's pRuntime has synced past height
// (it applies block h's events when it syncs block h+1).
func (b *contractBench) waitExecuted(ctx context.Context, height int64) error {
	last, since := b.miner.Info().Height, time.Now()
	for {
		h := b.miner.Info().Height
		if h > height {
			return nil
		}
		if h != last {
			last, since = h, time.Now()
		} else if time.Since(since) > 30*time.Second {
			return fmt.Errorf("miner1's pRuntime is stuck at block %d for 30 s (chain at %d, waiting for %d)", h, b.net.Node.App().Height(), height+1)
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

// checkReceipts confirms the miner executed the last command of every
// sender and a random sample of the others successfully.
func (b *contractBench) checkReceipts(ctx context.Context, runs [][][]byte, last []uint64, sample int) error {
	type cmd struct {
		s     int
		nonce uint64
	}
	var cmds []cmd
	for s := range runs {
		if len(runs[s]) == 0 {
			continue
		}
		cmds = append(cmds, cmd{s, last[s]})
		for range sample / len(runs) {
			cmds = append(cmds, cmd{s, last[s] - uint64(rand.IntN(len(runs[s])))})
		}
	}
	for _, c := range cmds {
		rc, err := b.cl.WaitReceipt(ctx, b.senders[c.s].key, b.token, c.nonce, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%s's command %d: %w", b.senders[c.s].name, c.nonce, err)
		}
		if !rc.Ok {
			return fmt.Errorf("%s's command %d failed on the miner: %s", b.senders[c.s].name, c.nonce, rc.Error)
		}
		b.gas = rc.GasUsed
	}
	return nil
}

// pipeline runs count transfers (token commands or PHA transfers) through
// consensus and, for commands, the miner.
func (b *contractBench) pipeline(ctx context.Context, token bool, count int) (PipelineResult, error) {
	name := "PHA transfer"
	if token {
		name = "token transfer"
	}
	res := PipelineResult{Name: name}
	t0 := time.Now()
	runs, last, err := b.build(ctx, token, count)
	if err != nil {
		return res, err
	}
	set := txSet(runs)
	b.c.Log("  %s: signed %d in %s", name, len(set), time.Since(t0).Round(time.Millisecond))
	sc := &blockScanner{b: b, set: set, seen: b.net.Node.App().Height()}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if token && b.profile != "" {
		f, err := os.Create(b.profile)
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
	errc := make(chan error, b.c.Feeders)
	feeders := b.feed(runs)
	for _, txs := range feeders {
		go func() {
			for _, tx := range txs {
				if err := b.submit(ctx, tx); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	pending := len(feeders)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for sc.found < len(set) {
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%d of %d committed: %w", sc.found, len(set), ctx.Err())
		case err := <-errc:
			pending--
			if err != nil {
				return res, fmt.Errorf("submit: %w", err)
			}
			if pending == 0 {
				b.c.Log("  %s: all submitted after %s", name, time.Since(start).Round(time.Millisecond))
			}
		case <-tick.C:
			if err := sc.scan(); err != nil {
				return res, err
			}
		}
	}
	res.Committed = time.Since(start)
	res.Executed = res.Committed
	res.Txs, res.Blocks = sc.found, len(sc.heights)
	if token {
		if err := b.waitExecuted(ctx, sc.heights[len(sc.heights)-1]); err != nil {
			return res, err
		}
		res.Executed = time.Since(start)
		if b.profile != "" {
			pprof.StopCPUProfile()
		}
	}
	if err := sc.checkResults(ctx); err != nil {
		return res, err
	}
	if token {
		if err := b.checkReceipts(ctx, runs, last, 32); err != nil {
			return res, err
		}
	}
	b.c.Log("  %s: %d in %d blocks (%d..%d), committed in %s, executed in %s", name, res.Txs, res.Blocks,
		sc.heights[0], sc.heights[len(sc.heights)-1], res.Committed.Round(time.Millisecond), res.Executed.Round(time.Millisecond))
	return res, nil
}

// balanceQuery is the query measured: the holder reads its own balance.
var balanceQuery = []byte(`{"balance":{}}`)

func (b *contractBench) checkAnswer(ans *pruntimepb.QueryAnswer) error {
	if ans.Error != "" {
		return errors.New(ans.Error)
	}
	if _, err := strconv.ParseUint(string(ans.Output), 10, 64); err != nil {
		return fmt.Errorf("balance answer %q", ans.Output)
	}
	return nil
}

// queries runs QueryContract from QueryWorkers goroutines for d, each
// goroutine as its own sender (a holder reading its balance).
func (b *contractBench) queries(ctx context.Context, name string, d time.Duration) Latencies {
	var (
		mu    sync.Mutex
		all   []time.Duration
		errs  int
		first error
	)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for g := range b.c.QueryWorkers {
		u := b.senders[g%len(b.senders)]
		wg.Go(func() {
			var lat []time.Duration
			bad := 0
			var firstErr error
			for time.Now().Before(deadline) {
				t := time.Now()
				ans, err := b.cl.QueryContract(ctx, u.key, b.token, &pruntimepb.ContractQuery{Payload: balanceQuery})
				if err == nil {
					err = b.checkAnswer(ans)
				}
				if err != nil {
					bad++
					firstErr = cmp.Or(firstErr, err)
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all, errs, first = append(all, lat...), errs+bad, cmp.Or(first, firstErr)
			mu.Unlock()
		})
	}
	wg.Wait()
	if first != nil {
		b.c.Log("  %s queries: %d errors, the first: %v", name, errs, first)
	}
	return summarize(name, all, errs, time.Since(start))
}

// loaded measures queries while a stream of token transfers at LoadRate
// is submitted, and waits for the miner to execute it afterwards.
func (b *contractBench) loaded(ctx context.Context) (Latencies, LoadStats, error) {
	st := LoadStats{Rate: b.c.LoadRate}
	want := int(b.c.LoadRate*b.c.QueryDuration.Seconds()*1.1) + len(b.senders)
	t0 := time.Now()
	runs, _, err := b.build(ctx, true, want)
	if err != nil {
		return Latencies{}, st, err
	}
	set := txSet(runs)
	b.c.Log("loaded queries for %s from %d goroutines, %.0f commands/s (%d signed in %s)", b.c.QueryDuration, b.c.QueryWorkers,
		b.c.LoadRate, len(set), time.Since(t0).Round(time.Millisecond))
	feeders := b.feed(runs)
	interval := time.Duration(float64(len(feeders)) / b.c.LoadRate * float64(time.Second))
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var submitted atomic.Int64
	var submitErr atomic.Value
	var wg sync.WaitGroup
	h0 := b.net.Node.App().Height()
	start := time.Now()
	for f, txs := range feeders {
		wg.Go(func() {
			// Feeders are staggered over one interval.
			next := start.Add(interval * time.Duration(f) / time.Duration(len(feeders)))
			for _, tx := range txs {
				select {
				case <-lctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				if err := b.submit(lctx, tx); err != nil {
					if lctx.Err() == nil {
						submitErr.Store(err)
					}
					return
				}
				submitted.Add(1)
				next = next.Add(interval)
			}
		})
	}
	// The miner's lag, sampled through the window.
	lagDone := make(chan struct{})
	go func() {
		defer close(lagDone)
		for lctx.Err() == nil {
			if lag := b.net.Node.App().Height() - b.miner.Info().Height; lag > st.MaxLag {
				st.MaxLag = lag
			}
			select {
			case <-lctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	lat := b.queries(ctx, "loaded", b.c.QueryDuration)
	stop()
	wg.Wait()
	<-lagDone
	end := time.Now()
	st.Submitted = int(submitted.Load())
	st.Blocks = int(b.net.Node.App().Height() - h0)
	if err, _ := submitErr.Load().(error); err != nil {
		return lat, st, fmt.Errorf("command stream: %w", err)
	}
	// Every submitted command must be committed and executed. The
	// scanner counts the submitted ones among the signed set.
	sc := &blockScanner{b: b, set: set, seen: h0}
	for {
		if err := sc.scan(); err != nil {
			return lat, st, err
		}
		if sc.found >= st.Submitted {
			break
		}
		if time.Since(end) > time.Minute {
			return lat, st, fmt.Errorf("only %d of %d streamed commands committed a minute after the stream", sc.found, st.Submitted)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(sc.heights) > 0 {
		if err := b.waitExecuted(ctx, sc.heights[len(sc.heights)-1]); err != nil {
			return lat, st, err
		}
	}
	st.Drain = time.Since(end)
	if err := sc.checkResults(ctx); err != nil {
		return lat, st, err
	}
	return lat, st, nil
}

// breakdown times the query sequentially along ever longer paths.
func (b *contractBench) breakdown(ctx context.Context, e *vm.Engine, code vm.CodeHash) ([]Latencies, error) {
	u := b.senders[0]
	n := b.c.Calls
	var out []Latencies
	timeIt := func(name string, call func() error) error {
		for range 5 { // warm up
			if err := call(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for range n {
			t := time.Now()
			if err := call(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			lat = append(lat, time.Since(t))
		}
		l := summarize(name, lat, 0, time.Since(start))
		b.c.Log("  %-38s p50 %8s  mean %8s", name, l.P50.Round(time.Microsecond), l.Mean.Round(time.Microsecond))
		out = append(out, l)
		return nil
	}
	b.c.Log("query cost breakdown (%d sequential calls each, idle)", n)

	// The plain call: the same query in the VM, no sealing, signing, HTTP.
	store := vm.NewMemStore()
	env := vm.Env{Contract: b.token.String(), Caller: u.addr.String(), Height: 1, Time: time.Unix(1_800_000_000, 0), Seed: make([]byte, 32)}
	for _, step := range []struct {
		entry vm.Entry
		msg   string
	}{{vm.EntryInit, `{"name":"Bench Token"}`}, {vm.EntryCommand, fmt.Sprintf(`{"mint":{"to":%q,"amount":1000000000000}}`, u.addr)}} {
		res, err := e.Execute(ctx, code, step.entry, env, store, []byte(step.msg))
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return nil, fmt.Errorf("plain-call baseline setup %s: %w", step.entry, err)
		}
	}
	if err := timeIt("plain call (vm.Engine.Execute)", func() error {
		res, err := e.Execute(ctx, code, vm.EntryQuery, env, store, balanceQuery)
		if err != nil {
			return err
		}
		if res.Err != nil {
			return res.Err
		}
		if string(res.Output) != "1000000000000" {
			return fmt.Errorf("balance %q", res.Output)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Where the plain call's time goes: the same query in an instance
	// kept across calls (as commands run in a block's session) skips the
	// contract's language runtime start-up that every fresh instance pays.
	sess := e.NewSession(code)
	defer sess.Close(ctx)
	if err := timeIt("  same, instance reused (vm.Session)", func() error {
		res, err := sess.Execute(ctx, vm.EntryQuery, env, store, balanceQuery)
		if err != nil {
			return err
		}
		return res.Err
	}); err != nil {
		return nil, err
	}
	q := func() *pruntimepb.ContractQuery {
		return &pruntimepb.ContractQuery{Contract: b.token.Bytes(), Payload: balanceQuery}
	}
	if err := timeIt("pRuntime Query in process", func() error {
		p, err := querywire.NewRequest(b.chainID, b.worker, u.key, q())
		if err != nil {
			return err
		}
		resp, err := b.miner.Query(ctx, p.Request)
		if err != nil {
			return err
		}
		ans, err := p.Open(resp)
		if err != nil {
			return err
		}
		return b.checkAnswer(ans)
	}); err != nil {
		return nil, err
	}
	if err := timeIt("QueryWorker (+ host HTTP, gRPC)", func() error {
		ans, err := client.QueryWorker(ctx, b.worker.Endpoint, b.chainID, b.worker, u.key, q())
		if err != nil {
			return err
		}
		return b.checkAnswer(ans)
	}); err != nil {
		return nil, err
	}
	if err := timeIt("QueryContract (+ chain lookups)", func() error {
		ans, err := b.cl.QueryContract(ctx, u.key, b.token, q())
		if err != nil {
			return err
		}
		return b.checkAnswer(ans)
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// WriteContractReport prints rep for c.
func WriteContractReport(w *bufio.Writer, c ContractConfig, rep ContractReport, procs int) {
	c.defaults()
	m := rep.Median()
	fmt.Fprintf(w, "confidential contracts: devnet with %d workers, block time %s, GOMAXPROCS %d, launch took %s\n",
		len(devnet.DefaultWorkers()), c.BlockTime, procs, rep.Launch.Round(time.Millisecond))
	fmt.Fprintf(w, "(a) transfers committed and executed per second, %d per run from %d senders via %d feeders, %d rounds\n",
		c.Transfers, c.Senders, c.Feeders, len(rep.Rounds))
	for i, r := range rep.Rounds {
		fmt.Fprintf(w, "  round %d: PHA %6.0f tx/s  token %6.0f tx/s committed, %6.0f executed  ratio %.2f\n",
			i+1, r.PHA.CommittedTPS(), r.Token.CommittedTPS(), r.Token.ExecutedTPS(), r.Ratio())
	}
	fmt.Fprintf(w, "  median round:\n")
	fmt.Fprintf(w, "    PHA transfer   %6.0f tx/s committed                       (%d txs in %d blocks, %s)\n",
		m.PHA.CommittedTPS(), m.PHA.Txs, m.PHA.Blocks, m.PHA.Committed.Round(time.Millisecond))
	fmt.Fprintf(w, "    token transfer %6.0f tx/s committed, %6.0f committed+executed (%d txs in %d blocks, %s committed, %s executed)\n",
		m.Token.CommittedTPS(), m.Token.ExecutedTPS(), m.Token.Txs, m.Token.Blocks, m.Token.Committed.Round(time.Millisecond), m.Token.Executed.Round(time.Millisecond))
	if rep.CommandGas > 0 {
		fmt.Fprintf(w, "    (a token transfer uses %d gas)\n", rep.CommandGas)
	}
	fmt.Fprintf(w, "  ratio token executed / PHA committed (median): %.2f\n", m.Ratio())

	fmt.Fprintf(w, "(b) queries to miner1 through client.QueryContract (%s), %d goroutines, %s each\n", string(balanceQuery), c.QueryWorkers, c.QueryDuration)
	for _, l := range []Latencies{rep.Idle, rep.Loaded} {
		fmt.Fprintf(w, "  %-6s %6.0f q/s  p50 %8s  p99 %8s  max %8s  (%d queries, %d errors)\n", l.Name, l.QPS(),
			l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond), l.Calls, l.Errors)
	}
	ld := rep.Load
	fmt.Fprintf(w, "  load: %d token transfers submitted at %.0f/s asked (%.0f/s achieved) over %d blocks; miner lag up to %d blocks; drained %s after\n",
		ld.Submitted, ld.Rate, float64(ld.Submitted)/rep.Loaded.Duration.Seconds(), ld.Blocks, ld.MaxLag, ld.Drain.Round(time.Millisecond))
	ratio := float64(rep.Loaded.P99) / float64(rep.Idle.P99)
	verdict := "met"
	if ratio > 2 {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "  ratio loaded p99 / idle p99: %.2f (target <= 2: %s)\n", ratio, verdict)
	fmt.Fprintf(w, "  query cost, sequential, idle (%d calls each), against the plain call:\n", c.Calls)
	if len(rep.Breakdown) > 0 {
		base := rep.Breakdown[0]
		for _, l := range rep.Breakdown {
			fmt.Fprintf(w, "    %-38s p50 %8s  mean %8s  ratio %.2f (p50)\n", l.Name, l.P50.Round(time.Microsecond), l.Mean.Round(time.Microsecond), float64(l.P50)/float64(base.P50))
		}
		fmt.Fprintf(w, "  ratio idle concurrent p50 / plain call p50: %.1f\n", float64(rep.Idle.P50)/float64(base.P50))
	}
}
