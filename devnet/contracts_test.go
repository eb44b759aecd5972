package devnet_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// buildContract builds contracts/NAME of this repository to wasm.
func buildContract(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	code, err := wasmbuild.Code(ctx, root, "./contracts/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// user is a dev account acting on contracts.
type user struct {
	name string
	key  ed25519.PrivateKey
	addr crypto.Address
}

func devUser(t *testing.T, net *devnet.Network, name string) user {
	k, err := net.Keyring.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return user{name, k.PrivateKey(), k.Address}
}

// call sends msg to id as u and waits for its receipt from the miner.
func call(t *testing.T, ctx context.Context, cl *client.Client, u user, id crypto.ContractID, msg string, gas uint64) *pruntimepb.CommandReceipt {
	t.Helper()
	nonce, _, err := cl.CallContract(ctx, u.key, id, []byte(msg), gas, client.SendOptions{})
	if err != nil {
		t.Fatalf("%s calls %s: %v", u.name, msg, err)
	}
	rc, err := cl.WaitReceipt(ctx, u.key, id, nonce, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func query(t *testing.T, ctx context.Context, cl *client.Client, u user, id crypto.ContractID, msg string) *pruntimepb.QueryAnswer {
	t.Helper()
	ans, err := cl.QueryContract(ctx, u.key, id, &pruntimepb.ContractQuery{Payload: []byte(msg)})
	if err != nil {
		t.Fatalf("%s queries %s: %v", u.name, msg, err)
	}
	return ans
}

// balanceOf is u's token balance as u reads it.
func balanceOf(t *testing.T, ctx context.Context, cl *client.Client, u user, token crypto.ContractID) uint64 {
	t.Helper()
	ans := query(t, ctx, cl, u, token, `{"balance":{}}`)
	if ans.Error != "" {
		t.Fatalf("%s reads own balance: %s", u.name, ans.Error)
	}
	n, err := strconv.ParseUint(string(ans.Output), 10, 64)
	if err != nil {
		t.Fatalf("balance answer %q: %v", ans.Output, err)
	}
	return n
}

// TestConfidentialTokenEndToEnd deploys the token and a contract that pays
// with it on a devnet with its workers, and proves the promises:
// commands sealed to the contract run in block order on its miner, only a
// holder reads a balance, a contract transfers by message, gas exhaustion
// reverts, refusals are recorded, and no amount or secret of the test
// appears in any block, event log or state value on chain.
func TestConfidentialTokenEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two contracts and runs a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tokenCode := buildContract(t, ctx, "token")
	spenderCode := buildContract(t, ctx, "spender")
	net := launched(t, ctx, gatekeeper.Params{}, nil)
	cl := net.Client
	alice, bob := devUser(t, net, "alice"), devUser(t, net, "bob")
	miner1 := net.Workers.Runtimes["miner1"].Info().SigningKey
	miner2 := net.Workers.Runtimes["miner2"].Info().SigningKey

	// Deploy: the gatekeepers key it, the miner instantiates it.
	token, _, err := cl.DeployContract(ctx, alice.key, tokenCode, [][]byte{miner1}, []byte(`{"name":"Secret Token"}`), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := cl.WaitKeyed(ctx, token, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ct.Miners) != 1 || !bytes.Equal(ct.Miners[0], miner1) || len(ct.WrappedKey) == 0 {
		t.Fatalf("token record: miner %X, wrapped key %d bytes", ct.Miners, len(ct.WrappedKey))
	}

	// Amounts unlikely to occur by chance in chain data.
	const minted, sent, toSpender, paid = 8_675_309, 3_141_592, 271_828, 161_803
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"mint":{"to":%q,"amount":%d}}`, alice.addr, minted), 0); !rc.Ok {
		t.Fatalf("mint: %s", rc.Error)
	}
	if rc := call(t, ctx, cl, bob, token, fmt.Sprintf(`{"mint":{"to":%q,"amount":5}}`, bob.addr), 0); rc.Ok || !strings.Contains(rc.Error, "only the owner may mint") {
		t.Fatalf("bob minted: ok %v, %q", rc.Ok, rc.Error)
	}
	// The transfer is kept as signed, to replay its envelope later.
	raw, nonce, err := cl.BuildCall(ctx, alice.key, token, []byte(fmt.Sprintf(`{"transfer":{"to":%q,"amount":%d}}`, bob.addr, sent)), 0, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.BroadcastAndWait(ctx, raw, 0); err != nil {
		t.Fatal(err)
	}
	rc, err := cl.WaitReceipt(ctx, alice.key, token, nonce, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sentTx, err := auth.Decode(raw, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sentEnvelope := sentTx.Body.GetContractCommand().Envelope
	if !rc.Ok || rc.GasUsed == 0 {
		t.Fatalf("transfer: ok %v, %q, gas %d", rc.Ok, rc.Error, rc.GasUsed)
	}
	// Queries: the holder reads, anyone else is refused; info is public.
	if a, b := balanceOf(t, ctx, cl, alice, token), balanceOf(t, ctx, cl, bob, token); a != minted-sent || b != sent {
		t.Fatalf("balances alice %d bob %d, want %d %d", a, b, minted-sent, sent)
	}
	ans := query(t, ctx, cl, bob, token, fmt.Sprintf(`{"balance":{"account":%q}}`, alice.addr))
	if !strings.Contains(ans.Error, "only the holder may read a balance") || len(ans.Output) > 0 && strings.Contains(string(ans.Output), strconv.Itoa(minted-sent)) {
		t.Fatalf("bob read alice's balance: %q %q", ans.Output, ans.Error)
	}
	info := query(t, ctx, cl, bob, token, `{"info":{}}`)
	var in struct {
		TotalSupply uint64 `json:"total_supply"`
		Owner       string `json:"owner"`
	}
	if err := json.Unmarshal(info.Output, &in); err != nil || in.TotalSupply != minted || in.Owner != alice.addr.String() {
		t.Fatalf("info %s (%v)", info.Output, err)
	}
	if info.Height <= 0 || len(info.StateRoot) != 32 {
		t.Fatalf("answer reflects height %d root %X", info.Height, info.StateRoot)
	}

	// Gas exhaustion: reverted, recorded, charged.
	before, err := cl.Account(ctx, alice.addr)
	if err != nil {
		t.Fatal(err)
	}
	rc = call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":1}}`, bob.addr), 20_000)
	if rc.Ok || !strings.Contains(rc.Error, "out of gas") || rc.GasUsed != 20_000 {
		t.Fatalf("starved transfer: ok %v, %q, gas %d", rc.Ok, rc.Error, rc.GasUsed)
	}
	after, err := cl.Account(ctx, alice.addr)
	if err != nil {
		t.Fatal(err)
	}
	if after.Balance >= before.Balance {
		t.Fatalf("the starved command was not charged: %d -> %d", before.Balance, after.Balance)
	}
	if b := balanceOf(t, ctx, cl, bob, token); b != sent {
		t.Fatalf("bob holds %d after a starved transfer, want %d", b, sent)
	}

	// Refusals, recorded for the sender, never executed.
	chainID, err := cl.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(what string, env func(nonce uint64) []byte) {
		t.Helper()
		acc, err := cl.Account(ctx, alice.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Send(ctx, alice.key, &chainpb.TxBody{Msg: &chainpb.TxBody_ContractCommand{ContractCommand: &chainpb.MsgContractCommand{
			Contract: token.Bytes(), Envelope: env(acc.Nonce), GasLimit: client.DefaultGas}}}, client.SendOptions{Nonce: &acc.Nonce})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		rc, err := cl.WaitReceipt(ctx, alice.key, token, acc.Nonce, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if rc.Ok || !strings.Contains(rc.Error, "refused") {
			t.Fatalf("%s: ok %v, %q", what, rc.Ok, rc.Error)
		}
	}
	drain := fmt.Sprintf(`{"transfer":{"to":%q,"amount":1000}}`, bob.addr)
	refused("tampered ciphertext", func(n uint64) []byte {
		env, _ := client.SealCommand(chainID, ct, alice.addr, n, []byte(drain))
		env[len(env)-5] ^= 1
		return env
	})
	refused("the envelope of the earlier transfer, replayed in a new transaction", func(uint64) []byte { return sentEnvelope })
	spender, _, err := cl.DeployContract(ctx, alice.key, spenderCode, [][]byte{miner2}, []byte(fmt.Sprintf(`{"token":%q}`, token)), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := cl.WaitKeyed(ctx, spender, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	refused("a command sealed to another contract", func(n uint64) []byte {
		env, _ := client.SealCommand(chainID, sp, alice.addr, n, []byte(drain))
		return env
	})
	if b := balanceOf(t, ctx, cl, bob, token); b != sent {
		t.Fatalf("bob holds %d after refused commands, want %d", b, sent)
	}
	// A command to an unknown contract is refused by the chain.
	_, _, err = cl.CallContract(ctx, alice.key, crypto.NewContractID(alice.addr, 1<<40), []byte(drain), 0, client.SendOptions{})
	if err == nil || !strings.Contains(err.Error(), "no contract") {
		t.Fatalf("command to an unknown contract: %v", err)
	}

	// Cross-contract: alice funds the spender, the spender pays bob by a
	// message the token executes with the spender as caller (on another
	// miner, carried by the chain).
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":%d}}`, spender, toSpender), 0); !rc.Ok {
		t.Fatalf("fund spender: %s", rc.Error)
	}
	if rc := call(t, ctx, cl, alice, spender, fmt.Sprintf(`{"pay":{"to":%q,"amount":%d}}`, bob.addr, paid), 0); !rc.Ok {
		t.Fatalf("pay: %s", rc.Error)
	}
	deadline := time.Now().Add(time.Minute)
	for balanceOf(t, ctx, cl, bob, token) != sent+paid {
		if time.Now().After(deadline) {
			t.Fatalf("bob never received the spender's payment: holds %d", balanceOf(t, ctx, cl, bob, token))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := balanceOf(t, ctx, cl, alice, token); a != minted-sent-toSpender {
		t.Fatalf("alice holds %d, want %d", a, minted-sent-toSpender)
	}

	// The scan: nothing readable of this test reached the chain.
	secrets := map[string][]byte{"alice's key": alice.key.Seed(), "bob's key": bob.key.Seed()}
	for _, n := range []uint64{minted, sent, toSpender, paid, minted - sent, sent + paid} {
		s := strconv.FormatUint(n, 10)
		secrets["amount "+s] = []byte(s)
	}
	scanChain(t, ctx, net, secrets)
}

// scanChain reads every block's transactions, every event log and every
// state value, and fails if any holds one of secrets.
func scanChain(t *testing.T, ctx context.Context, net *devnet.Network, secrets map[string][]byte) {
	t.Helper()
	check := func(where string, b []byte) {
		for name, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds %s in the clear", where, name)
			}
		}
	}
	height := net.Node.App().Height()
	var txs, logs int
	for h := int64(1); h <= height; h++ {
		blk, err := net.Client.RPC().Block(ctx, &h)
		if err != nil {
			t.Fatal(err)
		}
		for i, tx := range blk.Block.Txs {
			check(fmt.Sprintf("block %d tx %d", h, i), tx)
			txs++
		}
		el, err := net.Client.EventLog(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range el.Events {
			check(fmt.Sprintf("event log %d event %d", h, i), ev)
			logs++
		}
	}
	values := 0
	if err := net.Node.App().IterateState(func(k, v []byte) bool {
		check(fmt.Sprintf("state key %q", k), append(k, v...))
		values++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if txs == 0 || logs == 0 || values == 0 {
		t.Fatalf("scanned %d txs, %d events, %d values: nothing to scan", txs, logs, values)
	}
	t.Logf("scanned %d blocks, %d txs, %d worker events, %d state values", height, txs, logs, values)
}
