package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
)

// TestDevnetShowsBlocksBalancesAndATransfer is the newcomer's first command:
// `phala devnet` starts a network, prints its endpoints, the dev accounts'
// balances, a demo transfer going through, the launch completing by itself,
// and blocks.
func TestDevnetShowsBlocksBalancesAndATransfer(t *testing.T) {
	home := t.TempDir()
	base := testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers())))
	dn := start(t, "devnet", nil, "devnet", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "300ms")
	dn.waitOutput(t, "Blocks (Ctrl-C to stop)", 60*time.Second)
	dn.waitOutput(t, "\nblock ", 10*time.Second)
	out := dn.output()
	for _, want := range []string{
		"CometBFT RPC  http://127.0.0.1:" + strconv.Itoa(base),
		"alice        phala1", "1000000 PHA",
		"Demo: alice sends 1 PHA to bob ... committed in block",
		"1000001 PHA",
		"Attestation   http://127.0.0.1:",
		"3 gatekeepers elected by stake",
		"the genesis node sealed the root key to each gatekeeper",
		"3 of 3 gatekeepers confirmed they hold the root key",
		"launched (height",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("devnet output lacks %q:\n%s", want, out)
		}
	}
	e, err := devnet.ReadEndpoints(home)
	if err != nil {
		t.Fatalf("endpoints.json: %v", err)
	}
	if e.RPC != "http://127.0.0.1:"+strconv.Itoa(base) || len(e.Nodes) != 1 || e.Nodes[0].P2P == "" || e.Nodes[0].Metrics == "" {
		t.Fatalf("endpoints.json = %+v", e)
	}
	dn.stop(t)
}

// TestCLIUseAndRefusals drives the user commands against a devnet: keys,
// transfers, queries and status, in text and JSON; each bad input exits 1
// with the chain's message and no stack trace.
func TestCLIUseAndRefusals(t *testing.T) {
	home := t.TempDir()
	base := testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers())))
	dn := start(t, "devnet", nil, "devnet", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "200ms", "--no-demo", "--quiet")
	dn.waitOutput(t, "Blocks (Ctrl-C to stop)", 60*time.Second)
	h := []string{"--home", home}
	args := func(a ...string) []string { return append(a, h...) }

	var st struct {
		ChainID    string `json:"chain_id"`
		Height     int64  `json:"height"`
		Phase      string `json:"phase"`
		Validators []any  `json:"validators"`
		Launch     struct {
			Gatekeepers []struct{ Confirmed bool }
		}
		Workers []struct {
			Platform string
			Retired  bool
			Expires  *time.Time
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, args("status", "-o", "json")...)), &st); err != nil {
		t.Fatal(err)
	}
	if st.ChainID != "phala-devnet" || st.Height < 1 || st.Phase != "launched" || len(st.Validators) != 1 || len(st.Launch.Gatekeepers) != 3 || len(st.Workers) != 6 {
		t.Fatalf("status = %+v", st)
	}
	for _, g := range st.Launch.Gatekeepers {
		if !g.Confirmed {
			t.Fatalf("launched with an unconfirmed gatekeeper: %+v", st.Launch)
		}
	}
	// The genesis worker is retired; the five others are attested sim workers that expire.
	if w := st.Workers[0]; !w.Retired || w.Expires != nil {
		t.Fatalf("genesis worker %+v", w)
	}
	for _, w := range st.Workers[1:] {
		if w.Platform != "sim" || w.Retired || w.Expires == nil {
			t.Fatalf("worker %+v", w)
		}
	}
	if out := mustRun(t, args("status")...); !strings.Contains(out, "holds the root key") || !strings.Contains(out, "retired") {
		t.Fatalf("status:\n%s", out)
	}

	var key struct{ Address string }
	json.Unmarshal([]byte(mustRun(t, args("keys", "add", "carol", "-o", "json")...)), &key)
	if !strings.HasPrefix(key.Address, "phala1") {
		t.Fatalf("keys add printed address %q", key.Address)
	}
	if out := mustRun(t, args("keys", "list")...); !strings.Contains(out, "alice") || !strings.Contains(out, key.Address) {
		t.Fatalf("keys list:\n%s", out)
	}
	if out := mustRun(t, args("keys", "show", "carol")...); !strings.Contains(out, key.Address) {
		t.Fatalf("keys show:\n%s", out)
	}

	var tx struct {
		Hash   string
		Height int64
	}
	json.Unmarshal([]byte(mustRun(t, args("tx", "transfer", "--from", "alice", "--to", key.Address, "--amount", "2.5", "-o", "json")...)), &tx)
	if tx.Height < 1 || len(tx.Hash) != 64 {
		t.Fatalf("transfer result %+v", tx)
	}
	if out := strings.TrimSpace(mustRun(t, args("query", "balance", "carol")...)); out != "2.5 PHA" {
		t.Fatalf("carol's balance: %q", out)
	}
	var acc struct {
		Balance uint64
		Nonce   uint64
	}
	json.Unmarshal([]byte(mustRun(t, args("query", "account", "alice", "-o", "json")...)), &acc)
	if acc.Nonce != 1 || acc.Balance >= 1_000_000_000_000-2_500_000 {
		t.Fatalf("alice after one transfer: %+v", acc)
	}
	mustRun(t, args("tx", "push", "--from", "alice", "--topic", "hello", "--payload", "world")...)

	refusals := []struct {
		args []string
		want string
	}{
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "0"), "(bank/2): invalid amount: amount must be positive, got 0 uPHA"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "-3"), "(bank/2): invalid amount: amount must be positive, got -3000000 uPHA"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "1", "--nonce", "0"), "(tx/7): nonce already used"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "1", "--nonce", "9"), "(tx/8): nonce skips ahead"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "5000000"), "(bank/3): insufficient funds"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "1", "--fee", "1upha"), "(tx/11): fee too low"},
		{args("tx", "transfer", "--from", "dave", "--to", "bob", "--amount", "1"), `key not found: "dave"`},
		{args("tx", "push", "--from", "bob", "--topic", "two words"), "(mq/2): invalid topic"},
		{args("tx", "transfer", "--from", "alice", "--to", "phala1notanaddress", "--amount", "1"), "--to: invalid address"},
		{args("tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "1.0000001"), "at most 6 decimals"},
		{args("query", "balance", "nobody"), `"nobody" is neither a phala1… address nor a key name`},
		{args("status", "--node", "http://127.0.0.1:1"), "cannot reach the node"},
	}
	for _, r := range refusals {
		out, errOut, code := run(t, r.args...)
		if code != 1 || !strings.Contains(errOut, r.want) || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("phala %s: exit %d\nstdout %q\nstderr %q\nwant exit 1 and %q", strings.Join(r.args, " "), code, out, errOut, r.want)
		}
		if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") || strings.Contains(errOut, "Usage:") {
			t.Errorf("phala %s printed a stack trace or usage:\n%s", strings.Join(r.args, " "), errOut)
		}
	}
	// A refused carol transaction changed nothing: a second send works with nonce 0.
	mustRun(t, args("tx", "transfer", "--from", "carol", "--to", "bob", "--amount", "1")...)

	// The event log of the push's block shows the message.
	var res struct{ Height int64 }
	json.Unmarshal([]byte(mustRun(t, args("tx", "push", "--from", "bob", "--topic", "t2", "--payload", "p2", "-o", "json")...)), &res)
	eventually(t, 10*time.Second, "the next header", func() error {
		_, _, code := run(t, args("query", "eventlog", strconv.FormatInt(res.Height, 10))...)
		if code != 0 {
			return errString("not yet")
		}
		return nil
	})
	out := mustRun(t, args("query", "eventlog", strconv.FormatInt(res.Height, 10))...)
	if !regexp.MustCompile(`#0\s+ingress\s+phala1\S+\s+t2\s+"p2"`).MatchString(out) {
		t.Fatalf("eventlog output:\n%s", out)
	}
	dn.stop(t)

	// The devnet resumes where it stopped: same chain, later height, same balances.
	dn2 := start(t, "devnet-again", nil, "devnet", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "200ms", "--no-demo", "--quiet")
	dn2.waitOutput(t, "Blocks (Ctrl-C to stop)", 60*time.Second)
	var st2 struct{ Height int64 }
	json.Unmarshal([]byte(mustRun(t, args("status", "-o", "json")...)), &st2)
	if st2.Height < res.Height {
		t.Fatalf("after restart at height %d, before it was %d", st2.Height, res.Height)
	}
	if out := strings.TrimSpace(mustRun(t, args("query", "balance", "carol")...)); !strings.HasPrefix(out, "1.49") {
		t.Fatalf("carol after restart: %q", out)
	}
	dn2.stop(t)
}

type errString string

func (e errString) Error() string { return string(e) }
