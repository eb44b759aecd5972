package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/vm"
)

// failoverNet is a localnet the failover scenarios share: one validator,
// the attestation service, three gatekeepers and two miners, each worker
// a pRuntime process and a host process under the supervisor.
type failoverNet struct {
	home   string
	sup    *proc
	cl     *client.Client
	alice  ed25519.PrivateKey // deploys and reassigns
	bob    ed25519.PrivateKey // sends the command stream
	miners map[string][]byte  // name → identity key
	code   []byte             // the token
}

// startFailoverNet starts it; extra flags go to `phala localnet` (for
// example the gatekeepers and eras of TestErasOnALocalnet).
func startFailoverNet(t *testing.T, ctx context.Context, extra ...string) *failoverNet {
	t.Helper()
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	code, err := wasmbuild.Code(ctx, root, "./contracts/token")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	base := testutil.FreePorts(t, 20)
	args := append([]string{"localnet", "--validators", "1", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "300ms"}, extra...)
	sup := start(t, "localnet", nil, args...)
	t.Cleanup(func() { sup.terminate(20 * time.Second) })
	sup.waitOutput(t, "launched (height", 3*time.Minute)
	e, err := devnet.ReadEndpoints(home)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(e.RPC)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Open(devnet.KeyringDir(home))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := kr.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := kr.Get("bob")
	if err != nil {
		t.Fatal(err)
	}
	n := &failoverNet{home: home, sup: sup, cl: cl, alice: alice.PrivateKey(), bob: bob.PrivateKey(), miners: map[string][]byte{}, code: code}
	for _, m := range []string{"miner1", "miner2"} {
		n.miners[m] = identityOf(t, ctx, home, m)
	}
	return n
}

// down stops worker name's pRuntime and host with SIGKILL and keeps the
// supervisor from restarting them (runit-style down files) until up.
func (n *failoverNet) down(t *testing.T, name string) {
	t.Helper()
	for _, part := range []string{"pruntime", "host"} {
		dir := devnet.WorkerDir(n.home, name)
		if err := os.WriteFile(filepath.Join(dir, part+".down"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(readPid(t, filepath.Join(dir, part+".pid")), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *failoverNet) up(t *testing.T, name string) {
	t.Helper()
	for _, part := range []string{"pruntime", "host"} {
		if err := os.Remove(filepath.Join(devnet.WorkerDir(n.home, name), part+".down")); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *failoverNet) record(t *testing.T, ctx context.Context, id crypto.ContractID) *chainpb.Contract {
	t.Helper()
	ct, err := n.cl.Contract(ctx, id)
	if err != nil || ct == nil {
		t.Fatalf("contract %s: %v", id, err)
	}
	return ct
}

// deploy deploys the token for miners and waits until it is keyed and
// initialised (alice's first mint runs).
func (n *failoverNet) deploy(t *testing.T, ctx context.Context, miners ...string) (crypto.ContractID, int64) {
	t.Helper()
	var keys [][]byte
	for _, m := range miners {
		keys = append(keys, n.miners[m])
	}
	id, res, err := n.cl.DeployContract(ctx, n.alice, n.code, keys, []byte(`{"name":"T"}`), client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.cl.WaitKeyed(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	return id, res.Height
}

// commands is what a client (one account) sent to the token and the chain
// committed: each a transfer of a distinct amount to a fresh account, so
// any command lost or run twice shows in the state.
type commands struct {
	mu   sync.Mutex
	from crypto.Address
	msgs map[uint64][]byte // nonce → plaintext
	// mint is the deployer's mint to the sender (its nonce mintNonce).
	mint      []byte
	mintNonce uint64
	to        []ed25519.PrivateKey
	last      uint64
}

func (c *commands) send(ctx context.Context, cl *client.Client, key ed25519.PrivateKey, id crypto.ContractID) error {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c.mu.Lock()
	amount := len(c.to) + 1
	c.mu.Unlock()
	msg := []byte(fmt.Sprintf(`{"transfer":{"to":%q,"amount":%d}}`, crypto.AddressFromPubKey(priv.Public().(ed25519.PublicKey)), amount))
	nonce, _, err := cl.CallContract(ctx, key, id, msg, 0, client.SendOptions{})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.msgs[nonce], c.to, c.last = msg, append(c.to, priv), nonce
	c.mu.Unlock()
	return nil
}

// stream sends commands until stop closes; the returned func stops it and
// waits.
func (c *commands) stream(t *testing.T, ctx context.Context, cl *client.Client, key ed25519.PrivateKey, id crypto.ContractID) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			if err := c.send(ctx, cl, key, id); err != nil {
				t.Errorf("a command was not committed: %v", err)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// replay runs, in a VM of its own, the token's init and every command the
// chain ordered to it (read from the event logs, the plaintexts from what
// the client sent) and returns the state root they produce: what a miner
// that ran each command exactly once holds.
func (c *commands) replay(t *testing.T, ctx context.Context, cl *client.Client, code []byte, id crypto.ContractID, from, to int64) [32]byte {
	t.Helper()
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	h, err := e.Compile(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	st := vm.NewMemStore()
	ct, err := cl.Contract(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	deployer, _ := crypto.AddressFromBytes(ct.Deployer)
	ran := 0
	for height := from; height <= to; height++ {
		l, err := cl.EventLog(ctx, height)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range l.Events {
			var ev chainpb.WorkerEvent
			if err := proto.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			env := vm.Env{Contract: id.String(), Height: ev.Height, Seed: []byte("any"), Gas: client.DefaultGas}
			switch k := ev.Kind.(type) {
			case *chainpb.WorkerEvent_ContractKeyed:
				if !bytes.Equal(k.ContractKeyed.Contract, id[:]) || !k.ContractKeyed.Initial {
					continue
				}
				env.Caller = deployer.String()
				if res, err := e.Execute(ctx, h, vm.EntryInit, env, st, k.ContractKeyed.InitArgs); err != nil || res.Err != nil {
					t.Fatalf("replay init: %v %v", err, res.Err)
				}
			case *chainpb.WorkerEvent_ContractCommand:
				cmd := k.ContractCommand
				if !bytes.Equal(cmd.Contract, id[:]) {
					continue
				}
				sender, _ := crypto.AddressFromBytes(cmd.Sender)
				var msg []byte
				switch {
				case sender == c.from:
					c.mu.Lock()
					msg = c.msgs[cmd.Nonce]
					c.mu.Unlock()
				case sender == deployer && c.mint != nil && cmd.Nonce == c.mintNonce:
					msg = c.mint
				default:
					t.Fatalf("a command from %s (nonce %d) the test did not send", sender, cmd.Nonce)
				}
				if msg == nil {
					t.Fatalf("the chain ordered command %d of %s, which the client does not know", cmd.Nonce, sender)
				}
				env.Caller, env.Gas = sender.String(), cmd.GasLimit
				if res, err := e.Execute(ctx, h, vm.EntryCommand, env, st, msg); err != nil || res.Err != nil {
					t.Fatalf("replay command %d: %v %v", cmd.Nonce, err, res.Err)
				}
				ran++
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := len(c.msgs) + 1; ran != want {
		t.Fatalf("the chain ordered %d of the %d commands (the mint and the client's) that were committed", ran, want)
	}
	return st.Root()
}

// status asks miner name (directly) for the token's status as alice.
func (n *failoverNet) status(ctx context.Context, name string, id crypto.ContractID) (*pruntimepb.QueryAnswer, error) {
	return statusAt(ctx, n.cl, n.miners[name], n.alice, id)
}

// statusAt asks worker key directly for contract id's status.
func statusAt(ctx context.Context, cl *client.Client, key []byte, user ed25519.PrivateKey, id crypto.ContractID) (*pruntimepb.QueryAnswer, error) {
	wk, err := cl.Worker(ctx, key)
	if err != nil || wk == nil {
		return nil, fmt.Errorf("worker %X: %v", key, err)
	}
	chainID, err := cl.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	return client.QueryWorker(ctx, wk.Endpoint, chainID, wk, user, &pruntimepb.ContractQuery{Contract: id.Bytes(), Kind: pruntimepb.ContractQuery_STATUS})
}

// identityOf is worker name's identity key, from its pRuntime.
func identityOf(t *testing.T, ctx context.Context, home, name string) []byte {
	t.Helper()
	api, err := pruntime.Dial(devnet.PRuntimeSocket(home, name))
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	in, err := api.Info(ctx, &pruntimepb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return in.SigningKey
}

// TestMinerFailover runs the availability scenarios on one localnet, in
// order, each named for what it proves.
func TestMinerFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	n := startFailoverNet(t, ctx)
	cl := n.cl
	token, deployed := n.deploy(t, ctx, "miner1")
	bobAddr := crypto.AddressFromPubKey(n.bob.Public().(ed25519.PublicKey))
	cmds := &commands{from: bobAddr, msgs: map[uint64][]byte{}}
	cmds.mint = []byte(fmt.Sprintf(`{"mint":{"to":%q,"amount":1000000000}}`, bobAddr))
	var err error
	cmds.mintNonce, _, err = cl.CallContract(ctx, n.alice, token, cmds.mint, 0, client.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := cl.WaitReceipt(ctx, n.alice, token, cmds.mintNonce, time.Minute); err != nil || !rc.Ok {
		t.Fatalf("mint: %+v %v", rc, err)
	}
	stopStream := cmds.stream(t, ctx, cl, n.bob, token)
	streaming := true
	defer func() {
		if streaming {
			stopStream()
		}
	}()

	outer := t
	t.Run("a_killed_miner_is_replaced_and_every_command_runs_once", func(t *testing.T) {
		eventually(t, time.Minute, "miner1 stores a checkpoint", func() error {
			if ct := n.record(t, ctx, token); ct.Checkpoint == nil || ct.Checkpoint.Inputs < 5 {
				return fmt.Errorf("checkpoint %v", ct.Checkpoint)
			}
			return nil
		})
		n.down(t, "miner1")
		time.Sleep(2 * time.Second) // commands keep coming; no miner runs them

		t.Run("d_a_checkpoint_tampered_on_its_way_is_refused", func(t *testing.T) {
			// The proxy outlives this subtest: miner2's host keeps using it.
			proxy := startProxy(outer, devnet.PRuntimeSocket(n.home, "miner2"))
			proxy.tamper.Store(true)
			// miner2's host is restarted by the supervisor and dials the proxy.
			if err := syscall.Kill(readPid(t, filepath.Join(devnet.WorkerDir(n.home, "miner2"), "host.pid")), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "miner2's new host goes through the proxy", func() error {
				if _, _, info := proxy.state(); !info {
					return fmt.Errorf("no call yet")
				}
				return nil
			})
			out := mustRun(t, "contract", "reassign", token.String(), "--miner", "miner2", "--from", "alice", "--home", n.home)
			if !strings.Contains(strings.ToLower(out), hex.EncodeToString(n.miners["miner2"])) {
				t.Fatalf("reassign output:\n%s", out)
			}
			eventually(t, time.Minute, "miner2 refuses the tampered checkpoint", func() error {
				if refused, _, _ := proxy.state(); len(refused) == 0 {
					return fmt.Errorf("no refusal yet")
				}
				return nil
			})
			refused, done, _ := proxy.state()
			if done || !regexp.MustCompile(`does not hold the claimed value|app hash`).MatchString(refused[0]) {
				t.Fatalf("tampered recovery: done %v, refusals %q", done, refused)
			}
			ans, err := n.status(ctx, "miner2", token)
			if err != nil || !strings.Contains(ans.Error, "recovering") {
				t.Fatalf("miner2 answers before it recovered: %+v %v", ans, err)
			}
			proxy.tamper.Store(false)
			eventually(t, 2*time.Minute, "miner2 recovers from the untampered checkpoint", func() error {
				if _, done, _ := proxy.state(); !done {
					return fmt.Errorf("not yet")
				}
				return nil
			})
		})
		time.Sleep(2 * time.Second)
		stopStream()
		streaming = false
		cmds.mu.Lock()
		last := cmds.last
		cmds.mu.Unlock()
		if rc, err := cl.WaitReceipt(ctx, n.bob, token, last, 2*time.Minute); err != nil || !rc.Ok {
			t.Fatalf("the last command on miner2: %+v %v", rc, err)
		}
		tip := n.record(t, ctx, token)
		ans, err := n.status(ctx, "miner2", token)
		if err != nil || ans.Error != "" {
			t.Fatalf("miner2's status: %+v %v", ans, err)
		}
		want := cmds.replay(t, ctx, cl, n.code, token, deployed, ans.Height)
		if !bytes.Equal(ans.StateRoot, want[:]) {
			t.Fatalf("miner2's state root %X after %d inputs; a replay of every command once gives %X", ans.StateRoot, tip.Inputs, want)
		}
		t.Logf("%d commands; miner2 holds the state root of each run exactly once (%X)", len(cmds.to), want[:6])
	})

	t.Run("b_the_old_miner_comes_back_and_nothing_is_doubled", func(t *testing.T) {
		n.up(t, "miner1")
		tip, _ := cl.Status(ctx)
		api, err := pruntime.Dial(devnet.PRuntimeSocket(n.home, "miner1"))
		if err != nil {
			t.Fatal(err)
		}
		defer api.Close()
		eventually(t, 2*time.Minute, "miner1 syncs past the takeover", func() error {
			in, err := api.Info(ctx, &pruntimepb.InfoRequest{})
			if err == nil && in.Height <= tip.Height {
				err = fmt.Errorf("at %d, tip %d", in.Height, tip.Height)
			}
			return err
		})
		for range 3 {
			if err := cmds.send(ctx, cl, n.bob, token); err != nil {
				t.Fatal(err)
			}
		}
		if rc, err := cl.WaitReceipt(ctx, n.bob, token, cmds.last, time.Minute); err != nil || !rc.Ok {
			t.Fatalf("a command after miner1's return: %+v %v", rc, err)
		}
		time.Sleep(3 * time.Second) // let miner1's stale side effects land
		ans, err := n.status(ctx, "miner2", token)
		if err != nil || ans.Error != "" {
			t.Fatal(ans, err)
		}
		want := cmds.replay(t, ctx, cl, n.code, token, deployed, ans.Height)
		if !bytes.Equal(ans.StateRoot, want[:]) {
			t.Fatalf("after miner1's return miner2 holds %X; a replay of every command once gives %X", ans.StateRoot, want)
		}
		ct := n.record(t, ctx, token)
		if len(ct.Miners) != 1 || !bytes.Equal(ct.Miners[0], n.miners["miner2"]) || bytes.Equal(ct.Checkpoint.Miner, n.miners["miner1"]) {
			t.Fatalf("after miner1's return: miners %X, checkpoint by %X", ct.Miners, ct.Checkpoint.Miner)
		}
		if a, err := n.status(ctx, "miner1", token); err != nil || !strings.Contains(a.Error, "does not run") {
			t.Fatalf("miner1 still serves the token: %+v %v", a, err)
		}
	})

	t.Run("c_a_diverging_redundant_miner_is_recorded", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(devnet.PRuntimeDataDir(n.home, "miner1"), "FAULT_DIVERGE"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		token2, _ := n.deploy(t, ctx, "miner2", "miner1")
		c2 := &commands{from: crypto.AddressFromPubKey(n.alice.Public().(ed25519.PublicKey)), msgs: map[uint64][]byte{}}
		nonce, _, err := cl.CallContract(ctx, n.alice, token2, []byte(fmt.Sprintf(`{"mint":{"to":%q,"amount":1000}}`, crypto.AddressFromPubKey(n.alice.Public().(ed25519.PublicKey)))), 0, client.SendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.WaitReceipt(ctx, n.alice, token2, nonce, time.Minute); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := c2.send(ctx, cl, n.alice, token2); err != nil {
				t.Fatal(err)
			}
		}
		var ct *chainpb.Contract
		eventually(t, 2*time.Minute, "a discrepancy on token2", func() error {
			ct = n.record(t, ctx, token2)
			if ct.Discrepancies == 0 {
				return fmt.Errorf("none yet (checkpoint %v)", ct.Checkpoint)
			}
			return nil
		})
		ds, err := cl.Discrepancies(ctx)
		if err != nil || len(ds) == 0 {
			t.Fatal(ds, err)
		}
		d := ds[len(ds)-1]
		pair := map[string]bool{string(d.Miner): true, string(d.StoredBy): true}
		if !bytes.Equal(d.Contract, token2[:]) || bytes.Equal(d.StateRoot, d.StoredRoot) || !pair[string(n.miners["miner1"])] || !pair[string(n.miners["miner2"])] {
			t.Fatalf("discrepancy %+v", d)
		}
		faulty, err := n.status(ctx, "miner1", token2)
		if err != nil {
			t.Fatal(err)
		}
		honest, err := n.status(ctx, "miner2", token2)
		if err != nil || bytes.Equal(faulty.StateRoot, honest.StateRoot) {
			t.Fatalf("miner1 (faulty) root %X, miner2 root %X, %v", faulty.StateRoot, honest.StateRoot, err)
		}
		var st struct {
			Workers []struct {
				Worker        string `json:"worker"`
				Discrepancies int    `json:"discrepancies"`
			} `json:"workers"`
		}
		if err := json.Unmarshal([]byte(mustRun(t, "status", "-o", "json", "--home", n.home)), &st); err != nil {
			t.Fatal(err)
		}
		accused := 0
		for _, w := range st.Workers {
			if strings.EqualFold(w.Worker, hex.EncodeToString(d.Miner)) {
				accused = w.Discrepancies
			}
		}
		if accused == 0 {
			t.Fatalf("phala status does not show the discrepancy against %X:\n%+v", d.Miner, st)
		}
		t.Logf("discrepancy at height %d recorded against %X (faulty miner1 is %X)", d.Height, d.Miner, n.miners["miner1"])
	})
}
