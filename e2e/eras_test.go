package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
)

// The localnet of TestErasOnALocalnet: 300 ms blocks, eras of 40 blocks
// (about 13 s), 20 blocks per rotation attempt, a heartbeat every 5 blocks
// (8 per era), four gatekeeper candidates for three seats.
const (
	erasEraBlocks      = 40
	erasRotationBlocks = 20
	erasHeartbeat      = 5
)

// window is a span of blocks in which a rotation paused key traffic.
type window struct {
	what     string
	from, to int64
}

// TestErasOnALocalnet runs the era scenarios of issue 6 on a localnet of
// separate processes: one validator, the attestation service and seven
// workers (the genesis node, four gatekeeper candidates for three seats, two
// miners), each a pRuntime process and a host process under the
// supervisor, with eras of 40 blocks. A client streams token commands
// through the rotations. The subtests run in order on one network, each
// named for what it proves; the totals are checked after each.
func TestErasOnALocalnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	n := startFailoverNet(t, ctx, "--gatekeepers", "4", "--era-blocks", strconv.Itoa(erasEraBlocks),
		"--rotation-blocks", strconv.Itoa(erasRotationBlocks), "--heartbeat-blocks", strconv.Itoa(erasHeartbeat))
	cl := n.cl
	params := stakingParams(t, ctx, cl)
	names := map[string]string{} // identity key → worker name
	for m, k := range n.miners {
		names[string(k)] = m
	}
	candidates := map[string][]byte{}
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("gatekeeper%d", i)
		candidates[name] = identityOf(t, ctx, n.home, name)
		names[string(candidates[name])] = name
	}
	nameOf := func(k []byte) string {
		if s, ok := names[string(k)]; ok {
			return s
		}
		return fmt.Sprintf("%X…", k[:6])
	}
	nameAll := func(gs []*chainpb.Gatekeeper) []string {
		var out []string
		for _, g := range gs {
			out = append(out, nameOf(g.SigningKey))
		}
		return out
	}
	first := checkTotals(t, ctx, cl)

	token, deployed := n.deploy(t, ctx, "miner1")
	bobAddr := crypto.AddressFromPubKey(n.bob.Public().(ed25519.PublicKey))
	aliceAddr := crypto.AddressFromPubKey(n.alice.Public().(ed25519.PublicKey))
	const bobMint = 1_000_000_000
	cmds := &commands{from: bobAddr, msgs: map[uint64][]byte{}}
	cmds.mint = []byte(fmt.Sprintf(`{"mint":{"to":%q,"amount":%d}}`, bobAddr, bobMint))
	var err error
	if cmds.mintNonce, _, err = cl.CallContract(ctx, n.alice, token, cmds.mint, 0, client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if rc, err := cl.WaitReceipt(ctx, n.alice, token, cmds.mintNonce, time.Minute); err != nil || !rc.Ok {
		t.Fatalf("mint: %+v %v", rc, err)
	}
	var stopStream func()
	startStream := func() { stopStream = cmds.stream(t, ctx, cl, n.bob, token) }
	endStream := func() {
		if stopStream != nil {
			stopStream()
			stopStream = nil
		}
	}
	defer endStream()
	startStream()

	// receipts holds the block that ordered each of the stream's commands
	// whose receipt was checked (nonce → height).
	receipts := map[uint64]int64{}
	checkReceipts := func(t *testing.T, firstWait time.Duration) {
		t.Helper()
		cmds.mu.Lock()
		var todo []uint64
		for nonce := range cmds.msgs {
			if _, done := receipts[nonce]; !done {
				todo = append(todo, nonce)
			}
		}
		cmds.mu.Unlock()
		slices.Sort(todo)
		if len(todo) == 0 {
			t.Fatal("no command was sent")
		}
		// The last first: once it ran, the others have.
		todo = append([]uint64{todo[len(todo)-1]}, todo[:len(todo)-1]...)
		for i, nonce := range todo {
			wait := 20 * time.Second
			if i == 0 {
				wait = firstWait
			}
			rc, err := cl.WaitReceipt(ctx, n.bob, token, nonce, wait)
			if err != nil || !rc.Ok {
				t.Fatalf("command %d (%d of %d checked): %+v %v", nonce, i, len(todo), rc, err)
			}
			receipts[nonce] = rc.Height
		}
	}
	inWindow := func(w window) int {
		c := 0
		for _, h := range receipts {
			if h >= w.from && h <= w.to {
				c++
			}
		}
		return c
	}
	var windows []window
	var token2 crypto.ContractID
	var alice2 uint64 // alice's balance on token2
	// transfer2 runs one command on token2 and checks its receipt.
	transfer2 := func(t *testing.T, wait time.Duration) {
		t.Helper()
		nonce, _, err := cl.CallContract(ctx, n.alice, token2, []byte(fmt.Sprintf(`{"transfer":{"to":%q,"amount":1}}`, bobAddr)), 0, client.SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rc, err := cl.WaitReceipt(ctx, n.alice, token2, nonce, wait); err != nil || !rc.Ok {
			t.Fatalf("a transfer on token2: %+v %v", rc, err)
		}
		alice2--
	}
	var slashed uint64 // what the scenarios saw slashed into the treasury

	ok := t.Run("a_three_rotations_while_contracts_run_keep_them_queryable_and_every_command_executes", func(t *testing.T) {
		es := waitEra(t, ctx, cl, "the launch's era", time.Minute, func(es *chainpb.EraState) bool { return len(es.Gatekeepers) > 0 })
		r0, prev := es.Rotations, es
		prevRecord := n.record(t, ctx, token)
		for i := uint64(1); i <= 3; i++ {
			st := waitEra(t, ctx, cl, fmt.Sprintf("rotation %d of 3 starts", i), 2*time.Minute, func(es *chainpb.EraState) bool {
				return es.Rotation != nil || es.Rotations >= r0+i
			})
			w := window{what: fmt.Sprintf("rotation %d", i)}
			var deployedAt int64
			if st.Rotation != nil {
				w.from = st.Rotation.Started
				if token2 == (crypto.ContractID{}) {
					// A contract deployed while the key traffic is paused: the
					// gatekeepers owe its key until Rotation Ready.
					id, res, err := cl.DeployContract(ctx, n.alice, n.code, [][]byte{n.miners["miner1"]}, []byte(`{"name":"T2"}`), client.SendOptions{})
					if err != nil {
						t.Fatal(err)
					}
					token2, deployedAt = id, res.Height
				}
			}
			ready := waitEra(t, ctx, cl, fmt.Sprintf("rotation %d of 3 completes", i), 2*time.Minute, func(es *chainpb.EraState) bool { return es.Rotations >= r0+i })
			w.to = ready.Since
			if w.from == 0 {
				w.from = ready.Since
			}
			windows = append(windows, w)
			if ready.Era <= prev.Era || bytes.Equal(ready.RootPublicKey, prev.RootPublicKey) {
				t.Fatalf("rotation %d: era %d → %d, root key %X → %X", i, prev.Era, ready.Era, prev.RootPublicKey[:6], ready.RootPublicKey[:6])
			}
			rec := n.record(t, ctx, token)
			if !bytes.Equal(rec.PublicKey, prevRecord.PublicKey) || bytes.Equal(rec.WrappedKey, prevRecord.WrappedKey) {
				t.Fatalf("rotation %d must re-encrypt the token's stored key and keep its public key", i)
			}
			if deployedAt > 0 {
				if _, err := cl.WaitKeyed(ctx, token2, time.Minute); err != nil {
					t.Fatalf("token2, deployed at block %d during the rotation (blocks %d–%d): %v", deployedAt, w.from, w.to, err)
				}
				nonce, _, err := cl.CallContract(ctx, n.alice, token2, []byte(fmt.Sprintf(`{"mint":{"to":%q,"amount":1000}}`, aliceAddr)), 0, client.SendOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if rc, err := cl.WaitReceipt(ctx, n.alice, token2, nonce, time.Minute); err != nil || !rc.Ok {
					t.Fatalf("mint on token2: %+v %v", rc, err)
				}
				alice2 = 1000
				t.Logf("token2 deployed at block %d, during rotation %d (blocks %d–%d), keyed and running", deployedAt, i, w.from, w.to)
			}
			// The contracts answer from a state past Ready, and execute.
			b := balanceAfter(t, ctx, cl, n.bob, token, ready.Since)
			cmds.mu.Lock()
			sent := len(cmds.to) + 1 // one may be in flight
			cmds.mu.Unlock()
			if k := prefixOf(bobMint-b, sent); k < 0 {
				t.Fatalf("after rotation %d bob holds %d on the token: not what any prefix of the %d commands leaves", i, b, sent)
			}
			if token2 != (crypto.ContractID{}) {
				transfer2(t, time.Minute)
				if a := balanceAfter(t, ctx, cl, n.alice, token2, ready.Since); a != alice2 {
					t.Fatalf("after rotation %d alice holds %d on token2, want %d", i, a, alice2)
				}
			}
			t.Logf("rotation %d: era %d, blocks %d–%d, gatekeepers %v, %d expired attempts so far", i, ready.Era, w.from, w.to, nameAll(ready.Gatekeepers), ready.Expired)
			prev, prevRecord = ready, rec
		}
		if token2 == (crypto.ContractID{}) {
			t.Fatal("no rotation was seen in progress: token2 was never deployed during one")
		}
		checkTotals(t, ctx, cl)
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("b_a_killed_incoming_leader_is_slashed_at_the_deadline_and_the_next_attempt_succeeds", func(t *testing.T) {
		var started, expired *chainpb.EraState
		var victim string
		var bond0, treasury0 uint64
		for try := 1; ; try++ {
			h0, err := height(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			// A rotation that starts from here, seen at once.
			started = waitEra(t, ctx, cl, "the next rotation starts", 2*time.Minute, func(es *chainpb.EraState) bool {
				return es.Rotation != nil && es.Rotation.Attempt == 1 && es.Rotation.Started > h0
			})
			rot := started.Rotation
			victim = nameOf(rot.IncomingLeader)
			if candidates[victim] == nil {
				t.Fatalf("the incoming leader %s is not a gatekeeper candidate", victim)
			}
			bond0 = selfStake(t, ctx, cl, rot.IncomingLeader)
			treasury0 = balanceOf(t, ctx, cl, bank.Treasury)
			n.down(t, victim)
			killedAt, _ := height(ctx, cl)
			t.Logf("try %d: killed %s, the incoming leader of the rotation to era %d (attempt %d, started at block %d, deadline %d), at block %d; outgoing leader %s",
				try, victim, rot.Era, rot.Attempt, rot.Started, rot.Deadline, killedAt, nameOf(rot.OutgoingLeader))
			end := waitEra(t, ctx, cl, "the attempt expires (or completes)", 2*time.Minute, func(es *chainpb.EraState) bool {
				return es.Expired > started.Expired || es.Rotations > started.Rotations
			})
			if end.Expired > started.Expired {
				expired = end
				break
			}
			// Its pRuntime confirmed before the kill: no deadline to miss.
			n.up(t, victim)
			if try == 3 {
				t.Fatalf("three rotations completed before their incoming leader could be killed")
			}
			t.Logf("the rotation completed before %s went down; trying the next one", victim)
		}
		rot, key := started.Rotation, candidates[victim]
		next := expired.Rotation
		if next == nil || next.Era != rot.Era || next.Attempt != rot.Attempt+1 {
			t.Fatalf("after the expiry of attempt %d of era %d: rotation %+v", rot.Attempt, rot.Era, next)
		}
		if hasKey(next.Incoming, key) {
			t.Fatalf("attempt %d elected %s again: %v", next.Attempt, victim, nameAll(next.Incoming))
		}
		// The expiry names it unresponsive, in the block that restarted.
		lg, err := cl.EventLog(ctx, next.Started)
		if err != nil {
			t.Fatal(err)
		}
		var late [][]byte
		for _, raw := range lg.Events {
			var ev chainpb.WorkerEvent
			if err := proto.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			if x := ev.GetRotationExpired(); x != nil && x.Era == rot.Era && x.Attempt == rot.Attempt {
				late = x.Unresponsive
			}
		}
		if !slices.ContainsFunc(late, func(k []byte) bool { return bytes.Equal(k, key) }) {
			t.Fatalf("RotationExpired at block %d names %d unresponsive, not %s", next.Started, len(late), victim)
		}
		cut := bond0 * params.SlashGatekeeperPermille / 1000
		if b := selfStake(t, ctx, cl, key); cut == 0 || b != bond0-cut {
			t.Fatalf("%s's bond after the deadline: %d, want %d − %d (%d‰)", victim, b, bond0, cut, params.SlashGatekeeperPermille)
		}
		if tr := balanceOf(t, ctx, cl, bank.Treasury); tr < treasury0+cut {
			t.Fatalf("the treasury holds %d, want at least %d + the slash %d", tr, treasury0, cut)
		}
		slashed += cut
		if v := storeValue(t, ctx, cl, excludedKey(key)); len(v) == 0 {
			t.Fatalf("%s is not excluded from elections after the expiry", victim)
		}
		ready := waitEra(t, ctx, cl, fmt.Sprintf("attempt %d reaches Ready", next.Attempt), 2*time.Minute, func(es *chainpb.EraState) bool {
			return es.Rotations > started.Rotations
		})
		if ready.Era != rot.Era || bytes.Equal(ready.RootPublicKey, started.RootPublicKey) || hasKey(ready.Gatekeepers, key) {
			t.Fatalf("after attempt %d: era %d (want %d), gatekeepers %v", next.Attempt, ready.Era, rot.Era, nameAll(ready.Gatekeepers))
		}
		windows = append(windows, window{what: "the stalled rotation", from: rot.Started, to: ready.Since})
		t.Logf("%s was slashed %d uPHA at block %d; attempt %d (leaders %s → %s) reached Ready at block %d: gatekeepers %v",
			victim, cut, next.Started, next.Attempt, nameOf(next.OutgoingLeader), nameOf(next.IncomingLeader), ready.Since, nameAll(ready.Gatekeepers))

		// Restarted, its host tops the bond up, which lifts the exclusion,
		// and its pRuntime syncs on from its sealed state.
		n.up(t, victim)
		tip, err := height(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, victim+"'s host bonds again", func() error {
			if b := selfStake(t, ctx, cl, key); b != devnet.CandidateStake {
				return fmt.Errorf("bond %d", b)
			}
			if v := storeValue(t, ctx, cl, excludedKey(key)); len(v) != 0 {
				return fmt.Errorf("still excluded")
			}
			return nil
		})
		api, err := pruntime.Dial(devnet.PRuntimeSocket(n.home, victim))
		if err != nil {
			t.Fatal(err)
		}
		defer api.Close()
		eventually(t, time.Minute, victim+"'s pRuntime syncs past the tip", func() error {
			in, err := api.Info(ctx, &pruntimepb.InfoRequest{})
			if err == nil && in.Height <= tip {
				err = fmt.Errorf("at %d, tip %d", in.Height, tip)
			}
			return err
		})
		checkTotals(t, ctx, cl)
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("c_a_throttled_miners_host_is_found_unresponsive_slashed_and_its_contracts_move", func(t *testing.T) {
		// Every command so far ran on miner1, during the rotations too.
		endStream()
		checkReceipts(t, time.Minute)
		during := 0
		for _, w := range windows {
			c := inWindow(w)
			t.Logf("%s (blocks %d–%d): %d commands ordered and executed while key traffic was paused", w.what, w.from, w.to, c)
			during += c
		}
		if stalled := windows[len(windows)-1]; inWindow(stalled) == 0 || during == 0 {
			t.Fatalf("no command was ordered during the rotations (%d in %s)", inWindow(stalled), stalled.what)
		}
		t.Logf("%d commands, every receipt ok", len(receipts))

		m1, m2 := n.miners["miner1"], n.miners["miner2"]
		bond0, treasury0 := selfStake(t, ctx, cl, m1), balanceOf(t, ctx, cl, bank.Treasury)
		pid := readPid(t, filepath.Join(devnet.WorkerDir(n.home, "miner1"), "host.pid"))
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
		stopped, err := height(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		startStream() // commands wait in the inbox for whoever runs the token

		// The first era that ends after the stall and in which miner1 missed
		// more than three quarters of the heartbeats finds it unresponsive:
		// the one it stalled in or, at the latest, the next.
		h1, h2 := hex.EncodeToString(m1), hex.EncodeToString(m2)
		var rep *monitor.Report
		deadline := time.Now().Add(3 * time.Minute)
		for {
			rep, err = cl.Responsiveness(ctx)
			if err == nil && rep != nil && int64(rep.Era+1)*erasEraBlocks > stopped {
				if _, late := rep.Unresponsive[h1]; late {
					break
				}
				if int64(rep.Era)*erasEraBlocks >= stopped {
					t.Fatalf("miner1 was unfed for all of era %d and not found unresponsive: %+v", rep.Era, rep)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no era judged miner1 after its host stalled at block %d: %+v %v", stopped, rep, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if rep.Counts[h1]*4 >= rep.MaxMiner {
			t.Fatalf("miner1 counted %d heartbeats, the most by a miner %d: not unresponsive", rep.Counts[h1], rep.MaxMiner)
		}
		if _, late := rep.Unresponsive[h2]; late {
			t.Fatalf("miner2, whose host runs, was judged unresponsive: %+v", rep)
		}
		cut := bond0 * params.SlashMinerPermille / 1000
		if rep.Unresponsive[h1] != cut || cut == 0 {
			t.Fatalf("miner1 was slashed %d, want %d (%d‰ of %d)", rep.Unresponsive[h1], cut, params.SlashMinerPermille, bond0)
		}
		if b := selfStake(t, ctx, cl, m1); b != bond0-cut {
			t.Fatalf("miner1's bond after the slash: %d, want %d", b, bond0-cut)
		}
		if tr := balanceOf(t, ctx, cl, bank.Treasury); tr < treasury0+cut {
			t.Fatalf("the treasury holds %d, want at least %d + %d", tr, treasury0, cut)
		}
		slashed += cut
		t.Logf("era %d: miner1 (host stalled at block %d) counted %d of %d heartbeats (most by a miner %d), slashed %d uPHA",
			rep.Era, stopped, rep.Counts[h1], rep.Windows, rep.MaxMiner, cut)

		// Both its contracts move to workers that may run them (the chain
		// picks the eligible worker running the fewest: miner2, or the
		// candidate left out of the gatekeeper set).
		for _, id := range []crypto.ContractID{token, token2} {
			eventually(t, time.Minute, "the contract leaves miner1", func() error {
				ct := n.record(t, ctx, id)
				if len(ct.Miners) == 0 || slices.ContainsFunc(ct.Miners, func(m []byte) bool { return bytes.Equal(m, m1) }) {
					return fmt.Errorf("miners %v", ct.Miners)
				}
				es, err := cl.Era(ctx)
				if err != nil {
					return err
				}
				if hasKey(es.Gatekeepers, ct.Miners[0]) {
					return fmt.Errorf("%s is a gatekeeper", nameOf(ct.Miners[0]))
				}
				t.Logf("%s now runs on %s", id, nameOf(ct.Miners[0]))
				return nil
			})
		}
		// The commands sent while miner1 stalled run there, once each.
		time.Sleep(time.Second)
		endStream()
		checkReceipts(t, 3*time.Minute)
		transfer2(t, 2*time.Minute)
		if a := balanceAfter(t, ctx, cl, n.alice, token2, 0); a != alice2 {
			t.Fatalf("alice holds %d on token2 after its move, want %d", a, alice2)
		}
		var ans *pruntimepb.QueryAnswer
		var runner []byte
		var last int64
		for _, h := range receipts {
			last = max(last, h)
		}
		eventually(t, time.Minute, "the token's miner answers past the last command", func() error {
			ms := n.record(t, ctx, token).Miners
			if len(ms) == 0 {
				return fmt.Errorf("the token has no miner")
			}
			runner = ms[0]
			a, err := statusAt(ctx, cl, runner, n.alice, token)
			if err == nil && (a.Error != "" || a.Height < last) {
				err = fmt.Errorf("%s at %d (last command at %d): %s", nameOf(runner), a.Height, last, a.Error)
			}
			ans = a
			return err
		})
		want := cmds.replay(t, ctx, cl, n.code, token, deployed, ans.Height)
		if !bytes.Equal(ans.StateRoot, want[:]) {
			t.Fatalf("%s holds state root %X at block %d; a replay of every command once gives %X", nameOf(runner), ans.StateRoot, ans.Height, want)
		}
		t.Logf("%d commands on the token since its deploy; %s holds the state root of each run exactly once (%X)", len(receipts), nameOf(runner), want[:6])

		// The stalled host resumes; its pRuntime learns it lost the token.
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "miner1 stops serving the token", func() error {
			a, err := n.status(ctx, "miner1", token)
			if err == nil && !strings.Contains(a.Error, "does not run") {
				err = fmt.Errorf("miner1 answers %q at %d", a.Error, a.Height)
			}
			return err
		})
		checkTotals(t, ctx, cl)
	})
	if !ok {
		t.FailNow()
	}

	t.Run("d_every_upha_is_accounted_for_across_the_eras_slashes_and_rewards", func(t *testing.T) {
		last := checkTotals(t, ctx, cl)
		if last.Minted <= first.Minted {
			t.Fatalf("the eras minted nothing: %d uPHA minted by block %d, %d by block %d", first.Minted, first.Height, last.Minted, last.Height)
		}
		if tr0, tr := first.Balances[bank.Treasury], last.Balances[bank.Treasury]; tr < tr0+slashed {
			t.Fatalf("the treasury holds %d uPHA, want at least %d + the %d slashed", tr, tr0, slashed)
		}
		if last.Balances[bank.MinerRewardsPool] >= first.Balances[bank.MinerRewardsPool] {
			t.Fatalf("the miner rewards pool paid nothing: %d → %d", first.Balances[bank.MinerRewardsPool], last.Balances[bank.MinerRewardsPool])
		}
		pay, err := cl.Rewards(ctx)
		if err != nil || pay == nil {
			t.Fatalf("rewards report: %+v %v", pay, err)
		}
		t.Logf("blocks %d → %d: %d accounts hold %d uPHA = the supply = genesis + %d minted; %d uPHA slashed into the treasury; the staking pool holds %d = every bond; last era %d minted %d and paid miners %d + fees %d",
			first.Height, last.Height, len(last.Balances), last.Sum, last.Minted, slashed, last.Bonds, pay.Era, pay.Minted, pay.MinerPool, pay.Fees)
	})
}

// waitEra polls the era record until ok accepts it.
func waitEra(t *testing.T, ctx context.Context, cl *client.Client, what string, timeout time.Duration, ok func(*chainpb.EraState) bool) *chainpb.EraState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *chainpb.EraState
	var err error
	for {
		var es *chainpb.EraState
		es, err = cl.Era(ctx)
		if err == nil && es != nil {
			if last = es; ok(es) {
				return es
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s; last era record %v (err %v)", what, timeout, last, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// excludedKey is the state key that marks a worker excluded from
// gatekeeper elections (chain/gatekeeper; set by an expired rotation or an
// unresponsive verdict, deleted when its operator bonds again).
func excludedKey(worker []byte) []byte { return append([]byte("gatekeeper/excluded/"), worker...) }

func hasKey(gs []*chainpb.Gatekeeper, k []byte) bool {
	return slices.ContainsFunc(gs, func(g *chainpb.Gatekeeper) bool { return bytes.Equal(g.SigningKey, k) })
}

// prefixOf is k when the stream's first k transfers (amounts 1…k) total
// d, for k ≤ max; -1 if no prefix does.
func prefixOf(d uint64, max int) int {
	var sum uint64
	for k := 0; k <= max; k++ {
		if sum == d {
			return k
		}
		sum += uint64(k + 1)
	}
	return -1
}

// balanceAfter asks the contract's miner for key's token balance until it
// answers from a state at or past block since.
func balanceAfter(t *testing.T, ctx context.Context, cl *client.Client, key ed25519.PrivateKey, id crypto.ContractID, since int64) uint64 {
	t.Helper()
	var v uint64
	eventually(t, time.Minute, fmt.Sprintf("%s answers past block %d", id, since), func() error {
		ans, err := cl.QueryContract(ctx, key, id, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)})
		if err != nil {
			return err
		}
		if ans.Error != "" || ans.Height < since {
			return fmt.Errorf("at %d: %s", ans.Height, ans.Error)
		}
		v, err = strconv.ParseUint(string(ans.Output), 10, 64)
		return err
	})
	return v
}

// storeValue reads a raw state key at the last block (nil if absent).
func storeValue(t *testing.T, ctx context.Context, cl *client.Client, key []byte) []byte {
	t.Helper()
	res, err := cl.RPC().ABCIQuery(ctx, chain.QueryStore, key)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Response; r.Code != 0 {
		t.Fatalf("store query %q refused (%s/%d): %s", key, r.Codespace, r.Code, r.Log)
	}
	return res.Response.Value
}

func stakingParams(t *testing.T, ctx context.Context, cl *client.Client) staking.Params {
	t.Helper()
	raw, err := cl.ModuleParams(ctx, "staking")
	if err != nil {
		t.Fatal(err)
	}
	var p staking.Params
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("staking params: %v", err)
	}
	return p
}

func selfStake(t *testing.T, ctx context.Context, cl *client.Client, worker []byte) uint64 {
	t.Helper()
	s, err := cl.SelfStake(ctx, worker)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func balanceOf(t *testing.T, ctx context.Context, cl *client.Client, a crypto.Address) uint64 {
	t.Helper()
	acc, err := cl.Account(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Balance
}
