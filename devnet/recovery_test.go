package devnet_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// waitContract polls the contract's record until ok accepts it.
func waitContract(t *testing.T, ctx context.Context, cl *client.Client, id crypto.ContractID, what string, ok func(*chainpb.Contract) bool) *chainpb.Contract {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ct, err := cl.Contract(ctx, id)
		if err == nil && ct != nil && ok(ct) {
			return ct
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last record %v (err %v)", what, ct, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// askWorker queries worker w directly (not through the chain's choice).
func askWorker(ctx context.Context, cl *client.Client, w []byte, u user, id crypto.ContractID, q *pruntimepb.ContractQuery) (*pruntimepb.QueryAnswer, error) {
	wk, err := cl.Worker(ctx, w)
	if err != nil {
		return nil, err
	}
	chainID, err := cl.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	q.Contract = id.Bytes()
	return client.QueryWorker(ctx, wk.Endpoint, chainID, wk, u.key, q)
}

// TestReassignedMinerRecoversFromCheckpointAndInbox: a token moved before
// its first key runs on the new miner from input 0. Then the token runs on
// miner1, which checkpoints its encrypted state on chain (the chain drops
// the inbox inputs it covers). The deployer moves the token to miner2;
// commands sent meanwhile wait in the inbox. miner2 gets k_c from a
// gatekeeper, loads the checkpoint (proven against its verified header),
// replays the inputs after it and answers queries with the balances every
// command produced exactly once; miner1 erased the instance. Then the
// token gets both miners: the second recovers too, and its checkpoints
// acknowledge the first's state roots.
func TestReassignedMinerRecoversFromCheckpointAndInbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a contract and runs a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tokenCode := buildContract(t, ctx, "token")
	net := launched(t, ctx, gatekeeper.Params{}, func(g *chain.Genesis) {
		p := contracts.DefaultParams()
		p.CheckpointInterval = 5
		g.Contracts = &p
	})
	cl := net.Client
	alice, bob := devUser(t, net, "alice"), devUser(t, net, "bob")
	miner1 := net.Workers.Runtimes["miner1"].Info().SigningKey
	miner2 := net.Workers.Runtimes["miner2"].Info().SigningKey

	// Moved before its first key: the new miner never saw the code at the
	// deploy; it takes the instance over from input 0 (init).
	acc, err := cl.Account(ctx, alice.addr)
	if err != nil {
		t.Fatal(err)
	}
	n0, n1 := acc.Nonce, acc.Nonce+1
	early := crypto.NewContractID(alice.addr, n0)
	if _, _, err := cl.DeployContract(ctx, alice.key, tokenCode, [][]byte{miner1}, []byte(`{"name":"E"}`), client.SendOptions{Nonce: &n0}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ReassignContract(ctx, alice.key, early, [][]byte{miner2}, client.SendOptions{Nonce: &n1}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitKeyed(ctx, early, time.Minute); err != nil {
		t.Fatal(err)
	}
	if rc := call(t, ctx, cl, alice, early, fmt.Sprintf(`{"mint":{"to":%q,"amount":5}}`, alice.addr), 0); !rc.Ok {
		t.Fatalf("mint on a contract moved before its key: %s", rc.Error)
	}
	if n := balanceOf(t, ctx, cl, alice, early); n != 5 {
		t.Fatalf("alice holds %d of the early-moved token, want 5", n)
	}
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
	for range 3 {
		if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":10}}`, bob.addr), 0); !rc.Ok {
			t.Fatalf("transfer: %s", rc.Error)
		}
	}
	ct := waitContract(t, ctx, cl, token, "miner1's checkpoint", func(c *chainpb.Contract) bool { return c.Checkpoint != nil && c.Checkpoint.Inputs == 5 })
	if ct.InboxStart != 5 || !bytes.Equal(ct.Checkpoint.Miner, miner1) || ct.Checkpoint.Size == 0 {
		t.Fatalf("after the checkpoint: inbox starts at %d, checkpoint %+v", ct.InboxStart, ct.Checkpoint)
	}
	if v, err := cl.StateProof(ctx, inbox.InputKey(token[:], 0), 0); err != nil || v.Value != nil {
		t.Fatalf("input 0 still on chain after a checkpoint covered it: %v %v", v, err)
	}
	// Two more transfers land after the checkpoint: the inbox keeps them.
	for range 2 {
		if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":10}}`, bob.addr), 0); !rc.Ok {
			t.Fatalf("transfer: %s", rc.Error)
		}
	}
	// A stranger cannot move it; the deployer can.
	if _, err := cl.ReassignContract(ctx, bob.key, token, [][]byte{miner2}, client.SendOptions{}); err == nil || !strings.Contains(err.Error(), "contracts/9") {
		t.Fatalf("bob reassigned alice's contract: %v", err)
	}
	if _, err := cl.ReassignContract(ctx, alice.key, token, [][]byte{miner2}, client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	// Sent while miner2 is taking over: it waits in the inbox.
	nonce, _, err := cl.CallContract(ctx, alice.key, token, []byte(fmt.Sprintf(`{"transfer":{"to":%q,"amount":7}}`, bob.addr)), 0, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cl.WaitReceipt(ctx, alice.key, token, nonce, 2*time.Minute)
	if err != nil || !rc.Ok {
		t.Fatalf("the command sent during the takeover: %+v %v", rc, err)
	}
	if a, b := balanceOf(t, ctx, cl, alice, token), balanceOf(t, ctx, cl, bob, token); a != 1000-50-7 || b != 57 {
		t.Fatalf("after the takeover alice holds %d, bob %d; want 943, 57", a, b)
	}
	if ans, err := askWorker(ctx, cl, miner1, alice, token, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_STATUS}); err != nil || !strings.Contains(ans.Error, "does not run") {
		t.Fatalf("miner1 still serves the token after losing it: %+v %v", ans, err)
	}
	if net.Workers.Runtimes["miner1"].Info().Recovering != nil {
		t.Fatal("miner1 reports a recovery")
	}

	// Both miners: miner1 recovers it from miner2's latest checkpoint, and
	// the next checkpoints of the two agree.
	if _, err := cl.ReassignContract(ctx, alice.key, token, [][]byte{miner2, miner1}, client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	before := waitContract(t, ctx, cl, token, "both miners", func(c *chainpb.Contract) bool { return len(c.Miners) == 2 })
	// Once miner1 runs it live, both execute the next command and both
	// checkpoint it at the same height.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ans, err := askWorker(ctx, cl, miner1, alice, token, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_STATUS})
		if err == nil && ans.Error == "" && len(ans.StateRoot) == 32 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("miner1 did not take the token over again: %+v %v", ans, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":3}}`, bob.addr), 0); !rc.Ok {
		t.Fatalf("transfer: %s", rc.Error)
	}
	ct = waitContract(t, ctx, cl, token, "an acknowledged checkpoint", func(c *chainpb.Contract) bool {
		return c.Checkpoint != nil && c.Checkpoint.Inputs > before.Inputs && len(c.Checkpoint.Acks) == 1
	})
	for _, w := range [][]byte{miner1, miner2} {
		ans, err := askWorker(ctx, cl, w, bob, token, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)})
		if err != nil || string(ans.Output) != "60" {
			t.Fatalf("bob's balance on miner %X: %+v %v", w, ans, err)
		}
	}
	if ct.Discrepancies != 0 {
		t.Fatalf("%d discrepancies between two honest miners", ct.Discrepancies)
	}
}
