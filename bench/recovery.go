package bench

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/vm"
)

// RecoveryConfig is the contract recovery benchmark: for each history
// length, a fresh devnet with its workers, the token deployed to miner1
// and given that many commands (the owner's mints to the senders, then
// transfers of 1 from the senders to holders cycling through Holders
// generated addresses); once the chain stores a checkpoint covering them
// all, Distance more transfers land right after a checkpoint boundary and
// the deployer moves the token to miner2. The time from the reassignment's
// commit to the first query miner2 answers with the expected balance is
// the recovery time. Zero fields take defaults.
type RecoveryConfig struct {
	// Histories are the history lengths in commands, one devnet each; the
	// ratio is the last one's recovery time over the first one's.
	// Default 1,000 and 100,000.
	Histories []int
	// Distance is how many commands the chain orders between the last
	// stored checkpoint and the reassignment. Default 200.
	Distance int
	// Holders is how many generated addresses the history's transfers
	// cycle through. Default 10,000.
	Holders int
	// Interval is the genesis' contracts CheckpointInterval (blocks).
	// Default 20.
	Interval uint64
	// Rounds of reassignments per devnet (miner1 to miner2, back, ...);
	// each one after the previous one's Distance commands are
	// checkpointed, so round r's history is Distance×(r-1) longer. The
	// median is reported. Default 3.
	Rounds int
	// Senders is how many funded dev accounts sign the commands. Default 8.
	Senders int
	// Feeders is how many goroutines submit transactions. Default 4.
	Feeders int
	// QueryEvery is the pause between the queries to the new miner.
	// Default 20 ms.
	QueryEvery time.Duration
	// BlockTime of the devnets. Default 150 ms.
	BlockTime time.Duration
	// BasePort is the first devnet's first port; each next devnet takes
	// ports 50 higher. Default 27100 (below the ephemeral ports).
	BasePort int
	// Dir holds the devnets. Default: a temporary directory, removed after.
	Dir string
	// Repo is the module root the token is built from. Default: the
	// checkout this program was built from.
	Repo string
	// CPUProfile, if set, is where CPU profiles go: one per devnet, of its
	// last round from the reassignment's commit to the answer, in
	// CPUProfile-HISTORY.pprof.
	CPUProfile string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

func (c *RecoveryConfig) defaults() {
	if len(c.Histories) == 0 {
		c.Histories = []int{1000, 100000}
	}
	if c.Distance == 0 {
		c.Distance = 200
	}
	if c.Holders == 0 {
		c.Holders = 10000
	}
	if c.Interval == 0 {
		c.Interval = 20
	}
	if c.Rounds == 0 {
		c.Rounds = 3
	}
	if c.Senders == 0 {
		c.Senders = 8
	}
	if c.Feeders == 0 {
		c.Feeders = 4
	}
	if c.QueryEvery == 0 {
		c.QueryEvery = 20 * time.Millisecond
	}
	if c.BlockTime == 0 {
		c.BlockTime = 150 * time.Millisecond
	}
	if c.BasePort == 0 {
		c.BasePort = 27100
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
}

// RecoveryRound is one reassignment and the new miner's recovery.
type RecoveryRound struct {
	From, To string
	// Cold: To never ran the token before, so it compiles the code
	// during the recovery.
	Cold bool
	// History is how many commands the token had run before the Distance
	// commands of this round (mints and transfers).
	History int
	// Holders is how many accounts hold tokens in the checkpointed state,
	// as the benchmark counts them; LoadedPairs is how many store entries
	// the new miner loaded from the checkpoint (its log; the holders and
	// the token's info), -1 if it did not say.
	Holders     int
	LoadedPairs int
	// Checkpoint is the record's checkpoint at the reassignment's block;
	// Inputs and InboxStart are the record's there. Distance is Inputs -
	// Checkpoint.Inputs: the inputs the new miner replays.
	Checkpoint *chainpb.Checkpoint
	Inputs     uint64
	InboxStart uint64
	Distance   uint64
	// Boundary is the checkpoint boundary the Distance commands followed;
	// they landed in blocks FirstCmd..LastCmd, the reassignment in
	// Reassigned.
	Boundary, FirstCmd, LastCmd, Reassigned int64
	// Since the reassignment's commit (seen in the node): the new miner's
	// pRuntime lists the recovery (it synced the reassignment), holds k_c
	// (a gatekeeper's copy reached it), has loaded the checkpoint (its
	// log; after compiling the code if it had not yet), runs the instance
	// live (the inputs after the checkpoint replayed), and answered the
	// first query with the expected balance (Recovery). -1: not seen.
	Listed, Keyed, Loaded, Live, Recovery time.Duration
	// Queries is how many queries were sent until then; Wrong how many
	// were answered with another balance (the first in FirstWrong).
	Queries, Wrong int
	FirstWrong     string
	// Expected is the probe holder's balance the answer carried.
	Expected uint64
	// Notes are deviations from the method, if any.
	Notes []string
}

// RecoveryRun is one devnet: its history and its rounds.
type RecoveryRun struct {
	History int
	Launch  time.Duration
	// Signed, Committed and Checkpointed are the history's: signing the
	// transfers, from the first submission to the last one's block, and
	// from there to the chain storing a checkpoint covering them all.
	Signed, Committed, Checkpointed time.Duration
	Blocks                          int
	Rounds                          []RecoveryRound
	Wall                            time.Duration
}

// Median returns the round with the median recovery time (the lower of
// the middle two for an even count).
func (r RecoveryRun) Median() RecoveryRound {
	rs := slices.Clone(r.Rounds)
	slices.SortFunc(rs, func(a, b RecoveryRound) int { return cmp.Compare(a.Recovery, b.Recovery) })
	return rs[(len(rs)-1)/2]
}

// RecoveryReport is everything RunRecovery measured.
type RecoveryReport struct {
	Runs []RecoveryRun
	// Compile is how long a fresh VM engine (no compilation cache) takes
	// to compile the token, on its own before the devnets start: what a
	// miner that never ran the code pays during its first recovery.
	Compile  time.Duration
	CodeSize int
	// Load is the machine's load average when the benchmark started.
	Load string
}

// Ratio is the last run's median recovery time over the first run's (0
// without two complete runs).
func (r RecoveryReport) Ratio() float64 {
	if len(r.Runs) < 2 || len(r.Runs[0].Rounds) == 0 || len(r.Runs[len(r.Runs)-1].Rounds) == 0 {
		return 0
	}
	return float64(r.Runs[len(r.Runs)-1].Median().Recovery) / float64(r.Runs[0].Median().Recovery)
}

// recoveryEvent is a pRuntime or host log line about a recovery.
type recoveryEvent struct {
	at    time.Time
	msg   string
	attrs map[string]string
}

// recoveryLog passes log records on to a file and keeps the ones about
// contract recoveries.
type recoveryLog struct {
	next  slog.Handler
	attrs []slog.Attr
	sink  *recoverySink
}

type recoverySink struct {
	mu     sync.Mutex
	events []recoveryEvent
}

var recoveryMessages = map[string]bool{
	"loaded a contract's checkpoint":                true,
	"recovered a contract; running it live":         true,
	"refused a contract recovery step":              true,
	"contract recovery step failed; retrying":       true,
	"recovering a contract":                         true,
	"pRuntime recovered a contract it was assigned": true,
}

func (h *recoveryLog) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *recoveryLog) Handle(ctx context.Context, r slog.Record) error {
	if recoveryMessages[r.Message] {
		m := map[string]string{}
		for _, a := range h.attrs {
			m[a.Key] = a.Value.String()
		}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		h.sink.mu.Lock()
		h.sink.events = append(h.sink.events, recoveryEvent{r.Time, r.Message, m})
		h.sink.mu.Unlock()
	}
	return h.next.Handle(ctx, r)
}

func (h *recoveryLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &recoveryLog{next: h.next.WithAttrs(as), attrs: append(slices.Clip(h.attrs), as...), sink: h.sink}
}

func (h *recoveryLog) WithGroup(name string) slog.Handler {
	return &recoveryLog{next: h.next.WithGroup(name), attrs: h.attrs, sink: h.sink}
}

// since returns the events logged from t on.
func (s *recoverySink) since(t time.Time) []recoveryEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []recoveryEvent
	for _, e := range s.events {
		if !e.at.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// compileTime times compiling code in a fresh engine.
func compileTime(ctx context.Context, code []byte) (time.Duration, error) {
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		return 0, err
	}
	defer e.Close(ctx)
	t0 := time.Now()
	if _, err := e.Compile(ctx, code); err != nil {
		return 0, fmt.Errorf("compile the token: %w", err)
	}
	return time.Since(t0), nil
}

// holderKey is generated holder i's key: a fixed seed, so runs agree.
func holderKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(fmt.Appendf(nil, "phala recoverybench holder %d", i))
	return ed25519.NewKeyFromSeed(seed[:])
}

// recoveryBench is one devnet of the benchmark.
type recoveryBench struct {
	*contractBench
	rc      RecoveryConfig
	log     *recoverySink
	holders []crypto.Address
	probe   ed25519.PrivateKey // holder 0's key: the queried balance's holder
	// balance is the probe holder's balance after every command so far.
	balance uint64
	// received counts the holders that received any transfer.
	received int
	commands int // run so far (mints and transfers)
	miner    string
	ran      map[string]bool // workers that have run the token
}

// RunRecovery builds the token and measures each history on its own devnet.
// A failed run's report holds what was measured before the failure.
func RunRecovery(ctx context.Context, c RecoveryConfig) (rep RecoveryReport, err error) {
	c.defaults()
	rep.Load = loadAverage()
	code, dir, cleanup, err := buildToken(ctx, c.Repo, c.Dir, "phala-recoverybench", c.Log)
	if err != nil {
		return rep, err
	}
	defer cleanup()
	rep.CodeSize = len(code)
	if rep.Compile, err = compileTime(ctx, code); err != nil {
		return rep, err
	}
	c.Log("a fresh VM engine compiles the token in %s", rep.Compile.Round(time.Millisecond))
	holders := make([]crypto.Address, c.Holders)
	var probe ed25519.PrivateKey
	for i := range holders {
		k := holderKey(i)
		if i == 0 {
			probe = k
		}
		holders[i] = crypto.AddressFromPubKey(k.Public().(ed25519.PublicKey))
	}
	for i, h := range c.Histories {
		run, err := runRecovery(ctx, c, code, holders, probe, filepath.Join(dir, fmt.Sprintf("devnet-%d", h)), c.BasePort+50*i, h)
		rep.Runs = append(rep.Runs, run)
		if err != nil {
			return rep, fmt.Errorf("history of %d commands: %w", h, err)
		}
	}
	return rep, nil
}

func runRecovery(ctx context.Context, c RecoveryConfig, code []byte, holders []crypto.Address, probe ed25519.PrivateKey, home string, port, history int) (run RecoveryRun, err error) {
	start := time.Now()
	run.History = history
	defer func() { run.Wall = time.Since(start) }()
	if history < c.Senders {
		return run, fmt.Errorf("a history of %d commands is shorter than the %d mints to the senders", history, c.Senders)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return run, err
	}
	logFile, err := os.Create(filepath.Join(home, "node.log"))
	if err != nil {
		return run, err
	}
	defer logFile.Close()
	sink := &recoverySink{}
	logger := slog.New(&recoveryLog{next: slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}), sink: sink})

	c.Log("history of %d commands: starting a devnet in %s", history, home)
	cb, err := startContractBench(ctx, ContractConfig{Senders: c.Senders, Feeders: c.Feeders, BlockTime: c.BlockTime, BasePort: port, Log: c.Log},
		devnet.Config{Home: home, Logger: logger, TuneGenesis: func(g *chain.Genesis) {
			p := contracts.DefaultParams()
			p.CheckpointInterval = c.Interval
			// Recovery alone is measured: no contract key rotation (which
			// the reassignment would make due) holds the commands.
			p.KeyRotationBlocks = 0
			g.Contracts = &p
		}})
	if err != nil {
		return run, err
	}
	defer cb.net.Stop()
	run.Launch = cb.launch
	// deploy mints to every sender: the history's first commands.
	if err := cb.deploy(ctx, code); err != nil {
		return run, err
	}
	b := &recoveryBench{contractBench: cb, rc: c, log: sink, holders: holders, probe: probe, commands: c.Senders, miner: "miner1", ran: map[string]bool{"miner1": true}}
	if err := b.history(ctx, &run, history-c.Senders); err != nil {
		return run, err
	}
	for r := range c.Rounds {
		if r == c.Rounds-1 && c.CPUProfile != "" {
			b.profile = fmt.Sprintf("%s-%d.pprof", c.CPUProfile, history)
		}
		to := map[string]string{"miner1": "miner2", "miner2": "miner1"}[b.miner]
		round, err := b.round(ctx, to)
		if err != nil {
			return run, fmt.Errorf("round %d: %w", r+1, err)
		}
		run.Rounds = append(run.Rounds, round)
		c.Log("round %d: %s -> %s after %d commands, distance %d: recovered in %s (listed %s, keyed %s, live %s; %d queries)",
			r+1, round.From, round.To, round.History, round.Distance, round.Recovery.Round(time.Millisecond),
			round.Listed.Round(time.Millisecond), round.Keyed.Round(time.Millisecond), round.Live.Round(time.Millisecond), round.Queries)
	}
	return run, nil
}

// buildCommands signs count token commands over the senders, each from its
// account's next nonce: command j is sender j mod k's, with msg(j) as its
// JSON. Like build, per sender in nonce order with the last nonces.
func (b *recoveryBench) buildCommands(ctx context.Context, count int, msg func(j int) []byte) (runs [][][]byte, last []uint64, err error) {
	ct, err := b.cl.Contract(ctx, b.token)
	if err != nil {
		return nil, nil, err
	}
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
			run := make([][]byte, cnt)
			for i := range cnt {
				n := acc.Nonce + uint64(i)
				env, err := client.SealCommand(b.chainID, ct, u.addr, n, msg(i*k+s))
				if err == nil {
					run[i], err = b.cl.Build(ctx, u.key, &chainpb.TxBody{Msg: &chainpb.TxBody_ContractCommand{ContractCommand: &chainpb.MsgContractCommand{
						Contract: b.token.Bytes(), Envelope: env, GasLimit: client.DefaultGas, KeyEpoch: ct.KeyEpoch,
					}}}, client.SendOptions{Nonce: &n})
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

// send submits per-sender runs through the feeders and returns once every
// transaction is in a committed block (sc.checkResults checks them).
func (b *recoveryBench) send(ctx context.Context, runs [][][]byte, timeout time.Duration, progress bool) (*blockScanner, error) {
	set := txSet(runs)
	sc := &blockScanner{b: b.contractBench, set: set, seen: b.net.Node.App().Height()}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	feeders := b.feed(runs)
	errc := make(chan error, len(feeders))
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
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start, said := time.Now(), time.Now()
	for sc.found < len(set) {
		select {
		case <-ctx.Done():
			return sc, fmt.Errorf("%d of %d committed: %w", sc.found, len(set), ctx.Err())
		case err := <-errc:
			if err != nil {
				return sc, fmt.Errorf("submit: %w", err)
			}
		case <-tick.C:
			if err := sc.scan(); err != nil {
				return sc, err
			}
			if progress && time.Since(said) > 10*time.Second {
				said = time.Now()
				b.rc.Log("  %d of %d committed after %s (chain at block %d, %s's pRuntime at %d)", sc.found, len(set),
					time.Since(start).Round(time.Second), b.net.Node.App().Height(), b.miner, b.runtime(b.miner).Info().Height)
			}
		}
	}
	return sc, nil
}

func (b *recoveryBench) runtime(name string) *pruntime.Runtime { return b.net.Workers.Runtimes[name] }

// history sends the transfers of the history: transfer j moves 1 token
// from sender j mod k to holder j mod Holders. It returns once the chain
// stores a checkpoint covering them.
func (b *recoveryBench) history(ctx context.Context, run *RecoveryRun, transfers int) error {
	c := b.rc
	t0 := time.Now()
	runs, last, err := b.buildCommands(ctx, transfers, func(j int) []byte {
		return fmt.Appendf(nil, `{"transfer":{"to":%q,"amount":1}}`, b.holders[j%len(b.holders)].String())
	})
	if err != nil {
		return err
	}
	run.Signed = time.Since(t0)
	c.Log("history: signed %d transfers in %s", transfers, run.Signed.Round(time.Millisecond))
	b.balance = uint64((transfers + len(b.holders) - 1) / len(b.holders)) // holder 0 gets j = 0, N, 2N, ...
	b.received = min(transfers, len(b.holders))
	t0 = time.Now()
	sc, err := b.send(ctx, runs, 30*time.Minute, true)
	if err == nil {
		err = sc.checkResults(ctx)
	}
	if err != nil {
		return fmt.Errorf("the history: %w", err)
	}
	run.Committed, run.Blocks = time.Since(t0), len(sc.heights)
	b.commands += transfers
	c.Log("history: %d transfers committed in %d blocks (%d..%d) in %s", sc.found, len(sc.heights), sc.heights[0], sc.heights[len(sc.heights)-1], run.Committed.Round(time.Millisecond))
	t0 = time.Now()
	if _, err := b.waitCovered(ctx, 30*time.Minute); err != nil {
		return err
	}
	run.Checkpointed = time.Since(t0)
	// Every sender's last transfer and a sample of the others ran ok.
	if err := b.checkReceipts(ctx, runs, last, 32); err != nil {
		return err
	}
	return nil
}

// waitCovered waits until the chain stores a checkpoint covering every
// input the token has (1 + the commands run: its init is input 0).
func (b *recoveryBench) waitCovered(ctx context.Context, timeout time.Duration) (*chainpb.Contract, error) {
	want := uint64(1 + b.commands)
	deadline := time.Now().Add(timeout)
	said := time.Now()
	for waited := false; ; waited = true {
		ct, err := b.cl.Contract(ctx, b.token)
		if err != nil {
			return nil, err
		}
		if ct.Inputs != want {
			return nil, fmt.Errorf("the chain ordered %d inputs to the token, %d expected", ct.Inputs, want)
		}
		if ct.Checkpoint != nil && ct.Checkpoint.Inputs == ct.Inputs {
			if !waited {
				return ct, nil
			}
			b.rc.Log("checkpoint of %d inputs stored at block %d (taken at %d by %X): %d bytes in %d chunks",
				ct.Checkpoint.Inputs, ct.Checkpoint.StoredHeight, ct.Checkpoint.Height, ct.Checkpoint.Miner[:4], ct.Checkpoint.Size, ct.Checkpoint.Chunks)
			return ct, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no checkpoint covering the token's %d inputs after %s (stored: %v)", want, timeout, ct.Checkpoint)
		}
		if time.Since(said) > 10*time.Second {
			said = time.Now()
			var ck uint64
			if ct.Checkpoint != nil {
				ck = ct.Checkpoint.Inputs
			}
			b.rc.Log("  waiting for a checkpoint of %d inputs: stored %d (chain at block %d, %s's pRuntime at %d)", want, ck,
				b.net.Node.App().Height(), b.miner, b.runtime(b.miner).Info().Height)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// contractAt reads the token's record as of block height.
func (b *recoveryBench) contractAt(ctx context.Context, height int64) (*chainpb.Contract, error) {
	var ct chainpb.Contract
	return &ct, queryAt(ctx, b.cl, chain.QueryContract, b.token.Bytes(), height, &ct)
}

// waitBoundary waits for the next checkpoint boundary to be committed and
// returns its height.
func (b *recoveryBench) waitBoundary(ctx context.Context) (int64, error) {
	h0 := b.net.Node.App().Height()
	for {
		h := b.net.Node.App().Height()
		if h > h0 && h%int64(b.rc.Interval) == 0 {
			return h, nil
		}
		if err := sleep(ctx, 500*time.Microsecond); err != nil {
			return 0, err
		}
	}
}

// recoveryTrack samples a pRuntime's recovery of the token.
type recoveryTrack struct {
	listed, keyed, live time.Time
	errs                []string
}

func (b *recoveryBench) track(ctx context.Context, rt *pruntime.Runtime) (*recoveryTrack, func()) {
	tr := &recoveryTrack{}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			now := time.Now()
			var rc *pruntimepb.Recovery
			for _, x := range rt.Info().Recovering {
				if string(x.Contract) == string(b.token.Bytes()) {
					rc = x
				}
			}
			switch {
			case rc != nil:
				if tr.listed.IsZero() {
					tr.listed = now
				}
				if rc.Keyed && tr.keyed.IsZero() {
					tr.keyed = now
				}
				if rc.Error != "" && !slices.Contains(tr.errs, rc.Error) {
					tr.errs = append(tr.errs, rc.Error)
				}
			case !tr.listed.IsZero() && tr.live.IsZero():
				tr.live = now
			}
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return tr, func() { stop(); <-done }
}

// round sends Distance transfers to the probe holder right after a
// checkpoint boundary, moves the token to miner to as soon as they are
// committed, and times the recovery.
func (b *recoveryBench) round(ctx context.Context, to string) (RecoveryRound, error) {
	c := b.rc
	r := RecoveryRound{From: b.miner, To: to, Cold: !b.ran[to], History: b.commands, LoadedPairs: -1, Loaded: -1}
	// The senders plus the holders that received any transfer.
	r.Holders = len(b.senders) + b.received
	ck, err := b.waitCovered(ctx, 10*time.Minute)
	if err != nil {
		return r, err
	}
	// Everything the round sends is signed beforehand.
	probe := crypto.AddressFromPubKey(b.probe.Public().(ed25519.PublicKey))
	runs, _, err := b.buildCommands(ctx, c.Distance, func(int) []byte {
		return fmt.Appendf(nil, `{"transfer":{"to":%q,"amount":1}}`, probe.String())
	})
	if err != nil {
		return r, err
	}
	target := b.runtime(to).Info().SigningKey
	reassign, err := b.cl.Build(ctx, b.alice.key, &chainpb.TxBody{Msg: &chainpb.TxBody_ReassignContract{ReassignContract: &chainpb.MsgReassignContract{
		Contract: b.token.Bytes(), Miners: [][]byte{target},
	}}}, client.SendOptions{})
	if err != nil {
		return r, err
	}
	wk, err := b.cl.Worker(ctx, target)
	if err != nil {
		return r, err
	}
	if wk == nil || wk.Endpoint == "" {
		return r, fmt.Errorf("%s has no registered query endpoint", to)
	}
	r.Expected = b.balance + uint64(c.Distance)
	want := strconv.FormatUint(r.Expected, 10)
	tr, stopTrack := b.track(ctx, b.runtime(to))
	defer stopTrack()
	mark := time.Now()

	// The burst, right after a boundary.
	if r.Boundary, err = b.waitBoundary(ctx); err != nil {
		return r, err
	}
	sc, err := b.send(ctx, runs, 2*time.Minute, false)
	if err != nil {
		return r, fmt.Errorf("the %d commands: %w", c.Distance, err)
	}
	r.FirstCmd, r.LastCmd = sc.heights[0], sc.heights[len(sc.heights)-1]
	// The reassignment, as soon as they are committed.
	if err := b.submit(ctx, reassign); err != nil {
		return r, fmt.Errorf("reassign: %w", err)
	}
	rs := &blockScanner{b: b.contractBench, set: txSet([][][]byte{{reassign}}), seen: r.LastCmd}
	for rs.found == 0 {
		if err := rs.scan(); err != nil {
			return r, err
		}
		if rs.found > 0 {
			break
		}
		if err := sleep(ctx, 500*time.Microsecond); err != nil {
			return r, err
		}
	}
	committed := time.Now()
	r.Reassigned = rs.heights[0]
	if b.profile != "" {
		f, err := os.Create(b.profile)
		if err != nil {
			return r, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return r, err
		}
		defer pprof.StopCPUProfile()
	}

	// Ask the new miner until it answers with the probe's balance.
	q := func() *pruntimepb.ContractQuery {
		return &pruntimepb.ContractQuery{Contract: b.token.Bytes(), Payload: balanceQuery}
	}
	deadline := committed.Add(5 * time.Minute)
	for {
		next := time.Now().Add(c.QueryEvery)
		r.Queries++
		ans, err := client.QueryWorker(ctx, wk.Endpoint, b.chainID, wk, b.probe, q())
		if err == nil && ans.Error == "" {
			if string(ans.Output) == want {
				r.Recovery = time.Since(committed)
				break
			}
			r.Wrong++
			if r.FirstWrong == "" {
				r.FirstWrong = fmt.Sprintf("%q after %s", ans.Output, time.Since(committed).Round(time.Millisecond))
			}
		}
		if time.Now().After(deadline) {
			stopTrack()
			detail := fmt.Sprint(err)
			if err == nil {
				detail = fmt.Sprintf("answer %q, error %q", ans.Output, ans.Error)
			}
			return r, fmt.Errorf("%s did not answer the probe's balance %s within 5 minutes of the reassignment (last: %s; recovery errors: %q)", to, want, detail, tr.errs)
		}
		time.Sleep(time.Until(next))
	}
	stopTrack()
	if b.profile != "" {
		pprof.StopCPUProfile()
	}
	rel := func(t time.Time) time.Duration {
		if t.IsZero() {
			return -1
		}
		return t.Sub(committed)
	}
	r.Listed, r.Keyed, r.Live = rel(tr.listed), rel(tr.keyed), rel(tr.live)
	for _, e := range tr.errs {
		r.Notes = append(r.Notes, fmt.Sprintf("%s refused a recovery step: %s", to, e))
	}
	for _, e := range b.log.since(mark) {
		if e.attrs["worker"] != to {
			continue
		}
		switch e.msg {
		case "loaded a contract's checkpoint":
			if n, err := strconv.Atoi(e.attrs["pairs"]); err == nil {
				r.LoadedPairs = n
			}
			r.Loaded = e.at.Sub(committed)
		case "refused a contract recovery step", "contract recovery step failed; retrying":
			r.Notes = append(r.Notes, fmt.Sprintf("%s %s after the reassignment: %s: %s", to, e.at.Sub(committed).Round(time.Millisecond), e.msg, e.attrs["err"]))
		}
	}

	// The commands' and the reassignment's results, and the record as of
	// the reassignment's block.
	if err := sc.checkResults(ctx); err != nil {
		return r, fmt.Errorf("the %d commands: %w", c.Distance, err)
	}
	if err := rs.checkResults(ctx); err != nil {
		return r, fmt.Errorf("the reassignment: %w", err)
	}
	rec, err := b.contractAt(ctx, r.Reassigned)
	if err != nil {
		return r, err
	}
	if len(rec.Miners) != 1 || string(rec.Miners[0]) != string(target) {
		return r, fmt.Errorf("after the reassignment's block the token's miners are %X, not %s", rec.Miners, to)
	}
	r.Checkpoint, r.Inputs, r.InboxStart = rec.Checkpoint, rec.Inputs, rec.InboxStart
	if rec.Checkpoint != nil {
		r.Distance = rec.Inputs - rec.Checkpoint.Inputs
	} else {
		r.Distance = rec.Inputs
	}
	if r.Distance != uint64(c.Distance) {
		r.Notes = append(r.Notes, fmt.Sprintf("distance %d, not the %d asked", r.Distance, c.Distance))
	}
	if rec.Checkpoint == nil || rec.Checkpoint.Inputs != ck.Checkpoint.Inputs {
		r.Notes = append(r.Notes, fmt.Sprintf("the checkpoint at the reassignment (%v) is not the one covering the history (%d inputs)", rec.Checkpoint, ck.Checkpoint.Inputs))
	}
	if r.FirstCmd <= r.Boundary || r.Reassigned >= r.Boundary+int64(c.Interval) {
		r.Notes = append(r.Notes, fmt.Sprintf("commands in blocks %d..%d and the reassignment in %d are not all between the boundaries %d and %d",
			r.FirstCmd, r.LastCmd, r.Reassigned, r.Boundary, r.Boundary+int64(c.Interval)))
	}
	if r.Wrong > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d answers carried another balance before the expected one (first %s)", r.Wrong, r.FirstWrong))
	}
	if r.LoadedPairs >= 0 && r.LoadedPairs != r.Holders+1 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s loaded %d store entries, %d holders and the token's info expected", to, r.LoadedPairs, r.Holders))
	}
	b.commands += c.Distance
	b.balance = r.Expected
	b.received = max(b.received, 1) // the probe holder
	b.miner, b.ran[to] = to, true
	b.contractBench.miner = b.runtime(to)
	return r, nil
}

// WriteRecoveryReport prints rep for c.
func WriteRecoveryReport(w *bufio.Writer, c RecoveryConfig, rep RecoveryReport, procs int) {
	c.defaults()
	fmt.Fprintf(w, "contract recovery: one devnet per history, %d workers, block time %s, checkpoint interval %d blocks, GOMAXPROCS %d\n",
		len(devnet.DefaultWorkers()), c.BlockTime, c.Interval, procs)
	fmt.Fprintf(w, "  the token on miner1; history = %d mints to the senders, then transfers of 1 from them to holders cycling through %d addresses;\n",
		c.Senders, c.Holders)
	fmt.Fprintf(w, "  once a checkpoint covers it, %d transfers right after a checkpoint boundary, then the deployer reassigns the token;\n", c.Distance)
	fmt.Fprintf(w, "  recovery = from the reassignment's commit to the new miner's first answer (QueryWorker every %s) with the probe holder's expected balance\n", c.QueryEvery)
	if rep.Load != "" {
		fmt.Fprintf(w, "  (load average of the machine, 1/5/15 min: %s at the start, %s at the end)\n", rep.Load, loadAverage())
	}
	if rep.Compile > 0 {
		fmt.Fprintf(w, "  (compiling the token's %d KB of wasm in a fresh VM engine, alone: %s; a miner that never ran it pays this in its first recovery)\n", rep.CodeSize>>10, ms(rep.Compile))
	}
	for _, run := range rep.Runs {
		if run.Committed == 0 {
			fmt.Fprintf(w, "  history %d: did not complete (devnet launched in %s; wall %s)\n", run.History, run.Launch.Round(time.Millisecond), run.Wall.Round(time.Second))
			continue
		}
		fmt.Fprintf(w, "  history %d: devnet launched in %s; %d transfers signed in %s, committed in %s (%d blocks, %.0f tx/s), a checkpoint covering them stored %s later; wall %s\n",
			run.History, run.Launch.Round(time.Millisecond), run.History-c.Senders, run.Signed.Round(time.Millisecond), run.Committed.Round(time.Millisecond), run.Blocks,
			float64(run.History-c.Senders)/run.Committed.Seconds(), run.Checkpointed.Round(time.Millisecond), run.Wall.Round(time.Second))
	}
	fmt.Fprintf(w, "  %-8s %-5s %-17s %-8s %7s %8s %-24s %6s %8s %7s %7s %7s %7s %8s %7s\n",
		"devnet", "round", "move", "history", "holders", "distance", "checkpoint height/inputs", "chunks", "bytes",
		"listed", "keyed", "loaded", "live", "recovery", "queries")
	for _, run := range rep.Runs {
		for i, r := range run.Rounds {
			cp := "none"
			var chunks uint32
			var size uint64
			if r.Checkpoint != nil {
				cp = fmt.Sprintf("%d/%d", r.Checkpoint.Height, r.Checkpoint.Inputs)
				chunks, size = r.Checkpoint.Chunks, r.Checkpoint.Size
			}
			move := r.From + " -> " + r.To
			if r.Cold {
				move += "*"
			}
			fmt.Fprintf(w, "  %-8d %-5d %-17s %-8d %7d %8d %-24s %6d %8d %7s %7s %7s %7s %8s %7d\n",
				run.History, i+1, move, r.History, r.Holders, r.Distance, cp, chunks, size,
				ms(r.Listed), ms(r.Keyed), ms(r.Loaded), ms(r.Live), ms(r.Recovery), r.Queries)
			fmt.Fprintf(w, "  %-8s       the %d commands in blocks %d..%d after boundary %d, reassigned in block %d (record: %d inputs, inbox from %d); %s loaded %d store entries; answer %d\n",
				"", r.Distance, r.FirstCmd, r.LastCmd, r.Boundary, r.Reassigned, r.Inputs, r.InboxStart, r.To, r.LoadedPairs, r.Expected)
			for _, n := range r.Notes {
				fmt.Fprintf(w, "  %-8s       NOTE: %s\n", "", n)
			}
		}
	}
	fmt.Fprintf(w, "  (* the new miner never ran the token: it compiles the code during the recovery; listed/keyed/loaded/live: the new miner's\n")
	fmt.Fprintf(w, "   pRuntime lists the recovery, holds k_c, has loaded the checkpoint, runs the token live, as seen since the reassignment's commit)\n")
	// The checkpoint of the run whose holders reach c.Holders.
	for _, run := range rep.Runs {
		if len(run.Rounds) == 0 {
			continue
		}
		r := run.Rounds[0]
		if r.Checkpoint != nil && r.Holders-c.Senders >= c.Holders {
			fmt.Fprintf(w, "  checkpoint on chain of the token with %d holders (%d generated + %d senders; history %d): %d bytes in %d chunks (%.1f bytes per holder); the new miner loaded %d store entries\n",
				r.Holders, r.Holders-c.Senders, c.Senders, r.History, r.Checkpoint.Size, r.Checkpoint.Chunks, float64(r.Checkpoint.Size)/float64(r.Holders), r.LoadedPairs)
			break
		}
	}
	if len(rep.Runs) >= 2 {
		first, last := rep.Runs[0], rep.Runs[len(rep.Runs)-1]
		if len(first.Rounds) > 0 && len(last.Rounds) > 0 {
			line := func(what string, a, b time.Duration) {
				ratio := float64(a) / float64(b)
				verdict := "met"
				if ratio > 1.5 {
					verdict = "NOT met"
				}
				fmt.Fprintf(w, "  ratio recovery time history %d / history %d, distance %d, %s: %s / %s = %.2f (target <= 1.5: %s)\n",
					last.History, first.History, c.Distance, what, ms(a), ms(b), ratio, verdict)
			}
			line("round 1 (miner1 -> miner2, which compiles the code)", last.Rounds[0].Recovery, first.Rounds[0].Recovery)
			if len(first.Rounds) > 1 && len(last.Rounds) > 1 {
				line(fmt.Sprintf("median of %d rounds", min(len(first.Rounds), len(last.Rounds))), last.Median().Recovery, first.Median().Recovery)
			}
		} else {
			fmt.Fprintf(w, "  ratio: not measured (a run did not complete)\n")
		}
	}
}
