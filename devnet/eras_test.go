package devnet_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/system"
	"github.com/phala-go/phala/tee/sim"
)

// eraWorkers: the default workers and a fourth gatekeeper candidate, so a
// re-election can change the set.
func eraWorkers() []devnet.WorkerSpec {
	return append(devnet.DefaultWorkers(), devnet.WorkerSpec{Name: "gatekeeper4", Role: "gatekeeper"})
}

// waitEra polls the era record until ok accepts it.
func waitEra(t *testing.T, ctx context.Context, cl *client.Client, what string, ok func(*chainpb.EraState) bool) *chainpb.EraState {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		es, err := cl.Era(ctx)
		if err == nil && es != nil && ok(es) {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: last era record %v (err %v)", what, es, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitSynced waits until every pRuntime has executed block h (its light
// client trusts the header after it).
func waitSynced(t *testing.T, net *devnet.Network, h int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for name, rt := range net.Workers.Runtimes {
		for rt.Info().Height <= h && rt.Info().Role != "retired" {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not sync to block %d (at %d)", name, h, rt.Info().Height)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func seatKeys(gs []*chainpb.Gatekeeper) [][]byte {
	out := make([][]byte, len(gs))
	for i, g := range gs {
		out[i] = g.SigningKey
	}
	return out
}

// sealedDoc opens worker name's sealed pRuntime state with its simulated
// CPU's sealing key and returns it as decoded JSON.
func sealedDoc(t *testing.T, home, name string) any {
	t.Helper()
	cpu, err := sim.OpenCPU(devnet.CPUDir(home, name))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sim.MeasureExecutable()
	if err != nil {
		t.Fatal(err)
	}
	key, err := sim.New(cpu, m).SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	f, err := system.NewSealedFile(filepath.Join(devnet.PRuntimeDataDir(home, name), "pruntime.sealed"), key, "phala/pruntime/state/v1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.Load()
	if err != nil {
		t.Fatalf("open %s's sealed state: %v", name, err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s's sealed state is not JSON: %v", name, err)
	}
	return doc
}

// sealedValues calls f with every byte string (base64 in the JSON) of
// worker name's sealed state, whatever field it sits in.
func sealedValues(t *testing.T, home, name string, f func([]byte)) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			if b, err := base64.StdEncoding.DecodeString(x); err == nil {
				f(b)
			}
		}
	}
	walk(sealedDoc(t, home, name))
}

// sealedRootKeys returns the public keys of every 32-byte value in worker
// name's sealed state that is a root key (crypto.RootPublicKey) among
// candidates.
func sealedRootKeys(t *testing.T, home, name string, candidates [][]byte) [][]byte {
	t.Helper()
	var found [][]byte
	sealedValues(t, home, name, func(b []byte) {
		if len(b) != 32 {
			return
		}
		pub := crypto.RootPublicKey(b)
		if slices.ContainsFunc(candidates, func(c []byte) bool { return bytes.Equal(c, pub) }) {
			found = append(found, pub)
		}
	})
	return found
}

// TestErasRotateRootKeyWhileContractsRun runs a devnet across eras: each
// era's last block re-elects the gatekeepers and the leaders rotate the root
// key. A nomination brings the fourth candidate in, so one gatekeeper
// retires. The contract keeps answering and executing through the
// rotations; its stored key is re-encrypted under each new root key (its
// public key unchanged); a miner assigned after the rotation gets k_c from
// the new gatekeepers; and no sealed pRuntime store, retired or seated,
// holds an obsolete root key.
func TestErasRotateRootKeyWhileContractsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a contract and runs a devnet across eras")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tokenCode := buildContract(t, ctx, "token")
	home := t.TempDir()
	p := gatekeeper.Params{NGatekeepers: 3, ElectionHeight: 5, HandoverBlocks: 30, EraBlocks: 40, RotationBlocks: 15}
	net, err := devnet.Start(ctx, devnet.Config{Home: home, BasePort: testutil.FreePorts(t, devnet.PortsNeeded(len(eraWorkers()))),
		BlockTime: 150 * time.Millisecond, Workers: eraWorkers(), Launch: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if _, err := devnet.WaitLaunched(ctx, net.Client); err != nil {
		t.Fatal(err)
	}
	cl := net.Client
	alice, bob := devUser(t, net, "alice"), devUser(t, net, "bob")
	miner1 := net.Workers.Runtimes["miner1"].Info().SigningKey
	miner2 := net.Workers.Runtimes["miner2"].Info().SigningKey
	names := map[string]string{}
	for _, n := range []string{"gatekeeper1", "gatekeeper2", "gatekeeper3", "gatekeeper4"} {
		names[string(net.Workers.Runtimes[n].Info().SigningKey)] = n
	}

	era0 := waitEra(t, ctx, cl, "the launch's era", func(es *chainpb.EraState) bool { return len(es.Gatekeepers) == 3 })
	var outsider []byte
	for k := range names {
		if !slices.ContainsFunc(seatKeys(era0.Gatekeepers), func(g []byte) bool { return bytes.Equal(g, []byte(k)) }) {
			outsider = []byte(k)
		}
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
	before, err := cl.Contract(ctx, token)
	if err != nil {
		t.Fatal(err)
	}

	// Bob backs the outsider: the next election seats it.
	nom, err := cl.Send(ctx, bob.key, &chainpb.TxBody{Msg: &chainpb.TxBody_Nominate{Nominate: &chainpb.MsgNominate{
		Targets: [][]byte{outsider}, Amount: int64(5 * devnet.CandidateStake)}}}, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	transfers := 0
	era1 := waitEra(t, ctx, cl, "a rotation elected after the nomination", func(es *chainpb.EraState) bool {
		if es.Rotation != nil && transfers < 3 {
			// Commands keep executing while key traffic is paused.
			if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":10}}`, bob.addr), 0); !rc.Ok {
				t.Fatalf("transfer during the rotation: %s", rc.Error)
			}
			transfers++
		}
		return int64(es.Era)*p.EraBlocks > nom.Height && es.Rotation == nil
	})
	seats := seatKeys(era1.Gatekeepers)
	if !slices.ContainsFunc(seats, func(g []byte) bool { return bytes.Equal(g, outsider) }) {
		t.Fatalf("the nominated candidate %s was not elected in era %d", names[string(outsider)], era1.Era)
	}
	if bytes.Equal(era1.RootPublicKey, era0.RootPublicKey) {
		t.Fatal("the root key did not change")
	}
	var retired []byte
	for _, g := range era0.Gatekeepers {
		if !slices.ContainsFunc(seats, func(s []byte) bool { return bytes.Equal(s, g.SigningKey) }) {
			retired = g.SigningKey
		}
	}
	if retired == nil {
		t.Fatal("nobody left the set")
	}
	waitSynced(t, net, era1.Since)
	for k, n := range names {
		info := net.Workers.Runtimes[n].Info()
		seated := slices.ContainsFunc(seats, func(s []byte) bool { return bytes.Equal(s, []byte(k)) })
		if info.HoldsRootKey != seated {
			t.Errorf("%s holds a root key: %v, seated: %v", n, info.HoldsRootKey, seated)
		}
	}

	after, err := cl.Contract(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.PublicKey, before.PublicKey) || bytes.Equal(after.WrappedKey, before.WrappedKey) {
		t.Fatal("the rotation must re-encrypt the stored contract key and keep its public key")
	}
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":10}}`, bob.addr), 0); !rc.Ok {
		t.Fatalf("transfer after the rotation: %s", rc.Error)
	}
	transfers++
	if a := balanceOf(t, ctx, cl, alice, token); a != uint64(1000-10*transfers) {
		for n, rt := range net.Workers.Runtimes {
			t.Logf("%s: %+v", n, rt.Info())
		}
		t.Fatalf("alice holds %d after %d transfers", a, transfers)
	}

	// A miner assigned now gets k_c from the new gatekeepers, who read it
	// from the re-encrypted copy.
	if _, err := cl.ReassignContract(ctx, alice.key, token, [][]byte{miner2}, client.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	waitContract(t, ctx, cl, token, "miner2 keyed", func(c *chainpb.Contract) bool {
		return len(c.Miners) == 1 && bytes.Equal(c.Miners[0], miner2) && len(c.AwaitingKey) == 0
	})
	deadline := time.Now().Add(time.Minute)
	for {
		ans, err := askWorker(ctx, cl, miner2, bob, token, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)})
		if err == nil && ans.Error == "" && string(ans.Output) == fmt.Sprint(10*transfers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("miner2 did not take the token over with k_c from the new gatekeepers: %+v %v", ans, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Another era: the root key changes again, the contract still runs.
	era2 := waitEra(t, ctx, cl, "the next rotation", func(es *chainpb.EraState) bool { return es.Era > era1.Era && es.Rotation == nil })
	if bytes.Equal(era2.RootPublicKey, era1.RootPublicKey) {
		t.Fatal("the second rotation kept the root key")
	}
	if b := balanceOf(t, ctx, cl, bob, token); b != uint64(10*transfers) {
		t.Fatalf("bob holds %d after %d transfers", b, transfers)
	}
	if rc := call(t, ctx, cl, alice, token, fmt.Sprintf(`{"transfer":{"to":%q,"amount":10}}`, bob.addr), 0); !rc.Ok {
		t.Fatalf("transfer in era 2: %s", rc.Error)
	}

	checkTotals(t, net)

	// No sealed store holds an obsolete root key; the seated hold the
	// current one, and only they.
	waitSynced(t, net, era2.Since)
	obsolete := [][]byte{era0.RootPublicKey, era1.RootPublicKey}
	for _, w := range eraWorkers() {
		if got := sealedRootKeys(t, home, w.Name, obsolete); len(got) > 0 {
			t.Errorf("%s's sealed state holds an obsolete root key", w.Name)
		}
		holds := len(sealedRootKeys(t, home, w.Name, [][]byte{era2.RootPublicKey})) > 0
		seated := slices.ContainsFunc(seatKeys(era2.Gatekeepers), func(s []byte) bool {
			return bytes.Equal(s, net.Workers.Runtimes[w.Name].Info().SigningKey)
		})
		if holds != seated {
			t.Errorf("%s's sealed state holds the current root key: %v; seated: %v", w.Name, holds, seated)
		}
	}
	if _, ok := names[string(retired)]; !ok {
		t.Fatal("the retired gatekeeper is not one of the candidates")
	}
}
