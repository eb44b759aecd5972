package devnet_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// sealedContractKey is the k_c worker name's sealed state holds for
// contract id (nil if none).
func sealedContractKey(t *testing.T, home, name string, id crypto.ContractID) []byte {
	t.Helper()
	doc, _ := sealedDoc(t, home, name).(map[string]any)
	cs, _ := doc["contracts"].(map[string]any)
	c, _ := cs[hex.EncodeToString(id[:])].(map[string]any)
	s, _ := c["key"].(string)
	if s == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s's sealed key for %s: %v", name, id, err)
	}
	return b
}

// TestContractKeyRotationKeepsCommandsAndErasesOldKeys rotates the keys of
// a token run by two redundant miners and of a contract that pays with it
// by message, while users keep sending commands. Every command and message
// executes exactly once; both miners switch to each new key; a command
// sealed to a retired key is refused with its code; and once rotated, the
// old keys are gone from every worker's sealed store and were never on
// chain in the clear.
func TestContractKeyRotationKeepsCommandsAndErasesOldKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two contracts and runs a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tokenCode := buildContract(t, ctx, "token")
	spenderCode := buildContract(t, ctx, "spender")
	const every = 40 // blocks between a contract's key rotations
	net := launched(t, ctx, gatekeeper.Params{}, func(g *chain.Genesis) {
		p := contracts.DefaultParams()
		p.KeyRotationBlocks = every
		g.Contracts = &p
	})
	cl, home := net.Client, net.Config.Home
	alice, bob := devUser(t, net, "alice"), devUser(t, net, "bob")
	miner1 := net.Workers.Runtimes["miner1"].Info().SigningKey
	miner2 := net.Workers.Runtimes["miner2"].Info().SigningKey

	token, _, err := cl.DeployContract(ctx, alice.key, tokenCode, [][]byte{miner1, miner2}, []byte(`{"name":"Rotating Token"}`), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitKeyed(ctx, token, time.Minute); err != nil {
		t.Fatal(err)
	}
	spender, _, err := cl.DeployContract(ctx, alice.key, spenderCode, [][]byte{miner2}, []byte(fmt.Sprintf(`{"token":%q}`, token)), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitKeyed(ctx, spender, time.Minute); err != nil {
		t.Fatal(err)
	}
	const minted, funded = 1_000_000, 100_000
	for _, c := range []struct {
		to  crypto.ContractID
		msg string
	}{
		{token, fmt.Sprintf(`{"mint":{"to":%q,"amount":%d}}`, alice.addr, minted)},
		{token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":%d}}`, spender, funded)},
	} {
		if rc := call(t, ctx, cl, alice, c.to, c.msg, 0); !rc.Ok {
			t.Fatalf("%s: %s", c.msg, rc.Error)
		}
	}
	// The keys as the miners hold them at one height, with no rotation
	// in between.
	var first *chainpb.Contract
	var epoch0Key, spenderKey0 []byte
	waitFor(t, time.Minute, "a snapshot of the first keys", func() bool {
		before, err := cl.Contract(ctx, token)
		if err != nil || before.Rekey != nil {
			return false
		}
		waitSynced(t, net, net.Node.App().Height())
		k1, k2 := sealedContractKey(t, home, "miner1", token), sealedContractKey(t, home, "miner2", token)
		spenderKey0 = sealedContractKey(t, home, "miner2", spender)
		after, err := cl.Contract(ctx, token)
		if err != nil || after.KeyEpoch != before.KeyEpoch || after.Rekey != nil || !bytes.Equal(k1, k2) || len(k1) != crypto.ContractKeySize {
			return false
		}
		first, epoch0Key = after, k1
		return true
	})

	// Commands and messages while the keys rotate: alice transfers 1 to
	// bob, and has the spender pay bob 2 by message, over and over until
	// both contracts went through two rotations.
	var transfers, payments uint64
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tc, err := cl.Contract(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := cl.Contract(ctx, spender)
		if err != nil {
			t.Fatal(err)
		}
		if tc.KeyEpoch >= 2 && sc.KeyEpoch >= 2 && transfers >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d transfers and %d payments: token at key epoch %d, spender at %d", transfers, payments, tc.KeyEpoch, sc.KeyEpoch)
		}
		if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":1}}`, bob.addr), 0); !rc.Ok {
			t.Fatalf("transfer %d: %s", transfers, rc.Error)
		}
		transfers++
		if rc := call(t, ctx, cl, alice, spender, fmt.Sprintf(`{"pay":{"to":%q,"amount":2}}`, bob.addr), 0); !rc.Ok {
			t.Fatalf("payment %d: %s", payments, rc.Error)
		}
		payments++
	}
	want := transfers + 2*payments
	waitFor(t, time.Minute, fmt.Sprintf("bob's %d tokens", want), func() bool { return balanceOf(t, ctx, cl, bob, token) == want })
	if a := balanceOf(t, ctx, cl, alice, token); a != minted-funded-transfers {
		t.Fatalf("alice holds %d, want %d: a command ran twice or not at all", a, minted-funded-transfers)
	}
	// Between rotations (one may be starting: it holds a few blocks in
	// every `every`).
	tc := waitContract(t, ctx, cl, token, "no rotation in progress", func(c *chainpb.Contract) bool { return c.Rekey == nil })
	if bytes.Equal(tc.PublicKey, first.PublicKey) || bytes.Equal(tc.WrappedKey, first.WrappedKey) || tc.Rekey != nil {
		t.Fatalf("token record after rotations: same public key %v, same wrapped key %v, rotation in progress %v",
			bytes.Equal(tc.PublicKey, first.PublicKey), bytes.Equal(tc.WrappedKey, first.WrappedKey), tc.Rekey)
	}
	if tc.Checkpoint == nil || tc.Checkpoint.KeyEpoch != tc.KeyEpoch {
		t.Fatalf("the stored checkpoint is not under the current key: %v, epoch %d", tc.Checkpoint, tc.KeyEpoch)
	}

	// A command sealed to the retired key is refused, with its code.
	chainID, err := cl.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := cl.Account(ctx, alice.addr)
	if err != nil {
		t.Fatal(err)
	}
	env, err := client.SealCommand(chainID, first, alice.addr, acc.Nonce, []byte(`{"info":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Send(ctx, alice.key, &chainpb.TxBody{Msg: &chainpb.TxBody_ContractCommand{ContractCommand: &chainpb.MsgContractCommand{
		Contract: token.Bytes(), Envelope: env, GasLimit: client.DefaultGas, KeyEpoch: first.KeyEpoch,
	}}}, client.SendOptions{Nonce: &acc.Nonce})
	var te *client.TxError
	if !errors.As(err, &te) || te.Codespace != contracts.Codespace || te.Code != contracts.ErrStaleKey.Code || !client.KeyRotated(err) {
		t.Fatalf("a command sealed to key epoch %d (now %d): %v", first.KeyEpoch, tc.KeyEpoch, err)
	}

	// Every miner holds the current key; no worker holds a retired one.
	h := net.Node.App().Height()
	waitSynced(t, net, h)
	cur := sealedContractKey(t, home, "miner1", token)
	if cur == nil || bytes.Equal(cur, epoch0Key) || !bytes.Equal(cur, sealedContractKey(t, home, "miner2", token)) {
		t.Fatalf("the miners do not share a new token key")
	}
	in, err := crypto.ContractInputKey(cur)
	if err != nil || !bytes.Equal(in.PublicKey(), tc.PublicKey) {
		t.Fatalf("the miners' token key does not match the published public key (%v)", err)
	}
	for name := range net.Workers.Runtimes {
		sealedValues(t, home, name, func(b []byte) {
			if bytes.Contains(b, epoch0Key) || bytes.Contains(b, spenderKey0) {
				t.Errorf("%s's sealed store still holds a retired contract key", name)
			}
		})
	}
	scanChain(t, ctx, net, map[string][]byte{"the token's first key": epoch0Key, "the spender's first key": spenderKey0, "the token's current key": cur})
	checkTotals(t, net)
}

// waitFor polls ok every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
