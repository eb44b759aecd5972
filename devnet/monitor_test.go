package devnet_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// TestUnresponsiveMinerLosesItsContract: a miner's host stops feeding its
// pRuntime, so it posts no fresh heartbeats. At the end of the era the
// chain finds it unresponsive (c < max/4 among miners), slashes 1% of its
// bond into the treasury and bars it from contracts; its token moves to
// the other miner, which recovers it, and every command sent runs exactly
// once. The gatekeepers, whose hosts run, are responsive.
func TestUnresponsiveMinerLosesItsContract(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a contract and runs a devnet across an era")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tokenCode := buildContract(t, ctx, "token")
	p := devnet.DefaultLaunch()
	p.EraBlocks, p.RotationBlocks = 60, 20
	net := launched(t, ctx, p, func(g *chain.Genesis) {
		g.Monitor = &monitor.Params{HeartbeatBlocks: 5}
		cp := contracts.DefaultParams()
		cp.CheckpointInterval = 5
		g.Contracts = &cp
	})
	cl := net.Client
	alice, bob := devUser(t, net, "alice"), devUser(t, net, "bob")
	miner1 := net.Workers.Runtimes["miner1"].Info().SigningKey
	miner2 := net.Workers.Runtimes["miner2"].Info().SigningKey
	token, _, err := cl.DeployContract(ctx, alice.key, tokenCode, [][]byte{miner1}, []byte(`{"name":"T"}`), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitKeyed(ctx, token, time.Minute); err != nil {
		t.Fatal(err)
	}
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"mint":{"to":%q,"amount":1000}}`, alice.addr), 0); !rc.Ok {
		t.Fatalf("mint: %s", rc.Error)
	}
	balance := func(a crypto.Address) uint64 {
		acc, err := cl.Account(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return acc.Balance
	}
	treasury0 := balance(bank.Treasury)
	if err := net.Workers.StopHost("miner1"); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := st.Height
	// A command sent now waits in the inbox for whoever runs the token.
	nonce, _, err := cl.CallContract(ctx, alice.key, token, []byte(fmt.Sprintf(`{"transfer":{"to":%q,"amount":7}}`, bob.addr)), 0, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// An era that ends after the host stopped finds miner1 unresponsive:
	// the one it stopped in if it missed more than 3/4 of it, else the
	// next. (The check of the verdict's arithmetic is below.)
	m1, m2 := hex.EncodeToString(miner1), hex.EncodeToString(miner2)
	var rep *monitor.Report
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rep, err = cl.Responsiveness(ctx)
		if err == nil && rep != nil && int64(rep.Era+1)*p.EraBlocks > stopped {
			if _, late := rep.Unresponsive[m1]; late {
				break
			}
			if int64(rep.Era)*p.EraBlocks >= stopped {
				t.Fatalf("miner1 was unfed for all of era %d and not found unresponsive: %+v", rep.Era, rep)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no era judged miner1 after its host stopped at block %d: %+v %v", stopped, rep, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, late := rep.Unresponsive[m1]; !late || rep.Counts[m1]*4 >= rep.MaxMiner {
		t.Fatalf("miner1 %s was not found unresponsive (miner2 %s, host stopped at %d): %+v", m1, m2, stopped, rep)
	}
	if _, late := rep.Unresponsive[m2]; late || rep.Counts[m2] < rep.Windows/2 {
		t.Fatalf("miner2, whose host runs, was judged unresponsive or counted too few: %+v", rep)
	}
	if stopped <= int64(rep.Era)*p.EraBlocks && rep.Counts[m1] != 0 {
		t.Fatalf("miner1 was unfed the whole era but counted %d heartbeats", rep.Counts[m1])
	}
	for _, g := range rep.Gatekeepers {
		if _, late := rep.Unresponsive[g]; late {
			t.Fatalf("gatekeeper %s was judged unresponsive: %+v", g, rep)
		}
	}
	cut := uint64(devnet.MinerStake * 10 / 1000)
	if rep.Unresponsive[m1] != cut {
		t.Fatalf("miner1 was slashed %d, want %d (1%%)", rep.Unresponsive[m1], cut)
	}
	if s, err := cl.SelfStake(ctx, miner1); err != nil || s != devnet.MinerStake-cut {
		t.Fatalf("miner1's bond after the slash: %d %v", s, err)
	}
	if tr := balance(bank.Treasury); tr < treasury0+cut {
		t.Fatalf("the treasury holds %d, want at least %d + %d", tr, treasury0, cut)
	}

	// Its token moved to miner2, which recovered it.
	waitContract(t, ctx, cl, token, "the token on miner2", func(c *chainpb.Contract) bool {
		return len(c.Miners) == 1 && bytes.Equal(c.Miners[0], miner2)
	})
	rc, err := cl.WaitReceipt(ctx, alice.key, token, nonce, 2*time.Minute)
	if err != nil || !rc.Ok {
		t.Fatalf("the command sent while miner1 was unfed: %+v %v", rc, err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		ans, err := askWorker(ctx, cl, miner2, bob, token, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)})
		if err == nil && ans.Error == "" && string(ans.Output) == "7" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's balance on miner2: %+v %v", ans, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The era paid: the responsive gatekeepers' backers got minted PHA,
	// nothing went to the unresponsive miner's operator for the era, and
	// every uPHA is accounted for.
	pay, err := cl.Rewards(ctx)
	if err != nil || pay == nil || pay.Era < rep.Era || pay.Minted == 0 {
		t.Fatalf("the era's payout: %+v %v", pay, err)
	}
	if _, paid := pay.Work[m1]; paid && pay.Era == rep.Era {
		t.Fatalf("the unresponsive miner was paid for work: %+v", pay)
	}
	checkTotals(t, net)
	// A deploy to the unresponsive miner is refused.
	if _, _, err := cl.DeployContract(ctx, alice.key, tokenCode, [][]byte{miner1}, nil, client.SendOptions{}); err == nil {
		t.Fatal("a deploy to an unresponsive miner was accepted")
	}
}
