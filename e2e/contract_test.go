package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/pruntime/vm"
)

// TestContractScaffoldAndBuild: `phala contract new` scaffolds a contract
// outside the repository, `phala contract build` builds it with the
// standard toolchain, reproducibly (the same code hash twice), and the wasm
// runs in pRuntime's VM: each caller's counter is its own.
func TestContractScaffoldAndBuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "counter")
	repo, _ := filepath.Abs("..")
	if _, _, code := run(t, "contract", "new", "counter", "--dir", dir); code != 1 {
		t.Fatal("scaffolding outside a checkout without --phala-src must fail")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused scaffold left a directory behind")
	}
	mustRun(t, "contract", "new", "counter", "--dir", dir, "--phala-src", repo)
	var b1, b2 struct {
		Wasm     string `json:"wasm"`
		CodeHash string `json:"code_hash"`
	}
	for _, b := range []*struct {
		Wasm     string `json:"wasm"`
		CodeHash string `json:"code_hash"`
	}{&b1, &b2} {
		if err := json.Unmarshal([]byte(mustRun(t, "contract", "build", dir, "-o", "json")), b); err != nil {
			t.Fatal(err)
		}
	}
	if b1.CodeHash != b2.CodeHash || len(b1.CodeHash) != 64 {
		t.Fatalf("builds are not reproducible: %s vs %s", b1.CodeHash, b2.CodeHash)
	}
	code, err := os.ReadFile(b1.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
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
	call := func(entry vm.Entry, caller, msg string) string {
		res, err := e.Execute(ctx, h, entry, vm.Env{Contract: "c", Caller: caller, Height: 1, Time: time.Unix(1, 0)}, st, []byte(msg))
		if err != nil || res.Err != nil {
			t.Fatalf("%s %s: %v %v", caller, msg, err, res.Err)
		}
		return string(res.Output)
	}
	call(vm.EntryCommand, "alice", `{"increment":{"by":2}}`)
	call(vm.EntryCommand, "alice", `{"increment":{"by":3}}`)
	call(vm.EntryCommand, "bob", `{"increment":{"by":1}}`)
	if a, b := call(vm.EntryQuery, "alice", `{"count":{}}`), call(vm.EntryQuery, "bob", `{"count":{}}`); a != "5" || b != "1" {
		t.Fatalf("counts: alice %s, bob %s", a, b)
	}
}

// TestNewcomerDeploysCallsAndQueriesWithTheCLI follows the README: on a
// fresh `phala devnet`, scaffold a contract, build it, deploy it to a
// miner, send it a sealed command and read the result back privately,
// with the CLI alone.
func TestNewcomerDeploysCallsAndQueriesWithTheCLI(t *testing.T) {
	home := t.TempDir()
	base := testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers())))
	dn := start(t, "devnet", nil, "devnet", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "200ms", "--no-demo", "--quiet")
	defer dn.stop(t)
	dn.waitOutput(t, "launched (height", 3*time.Minute)
	h := []string{"--home", home}
	args := func(a ...string) []string { return append(a, h...) }

	dir := filepath.Join(t.TempDir(), "counter")
	repo, _ := filepath.Abs("..")
	mustRun(t, "contract", "new", "counter", "--dir", dir, "--phala-src", repo)
	var b struct {
		Wasm string `json:"wasm"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "contract", "build", dir, "-o", "json")), &b); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, args("contract", "deploy", b.Wasm, "--miner", "miner1", "--from", "alice")...)
	m := regexp.MustCompile(`instance:\s+(phalac1\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "the miner ran the initialiser") {
		t.Fatalf("deploy output:\n%s", out)
	}
	id := m[1]
	if out := mustRun(t, args("contract", "call", id, "--from", "alice", "--msg", `{"increment":{"by":41}}`)...); !strings.Contains(out, "executed: ok") {
		t.Fatalf("call output:\n%s", out)
	}
	mustRun(t, args("contract", "call", id, "--from", "alice", "--msg", `{"increment":{"by":1}}`)...)
	var ans struct {
		Output    json.RawMessage `json:"output"`
		Height    int64           `json:"height"`
		StateRoot string          `json:"state_root"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, args("contract", "query", id, "--from", "alice", "--msg", `{"count":{}}`, "-o", "json")...)), &ans); err != nil {
		t.Fatal(err)
	}
	if string(ans.Output) != "42" || ans.Height <= 0 || len(ans.StateRoot) != 64 {
		t.Fatalf("alice's count: %+v", ans)
	}
	if out := mustRun(t, args("contract", "query", id, "--from", "bob", "--msg", `{"count":{}}`)...); !strings.HasPrefix(out, "0\n") {
		t.Fatalf("bob's count (his own, not alice's):\n%s", out)
	}
	// A failing command exits 1 and says why; a bad instance id is named.
	if stdout, _, code := run(t, args("contract", "call", id, "--from", "alice", "--msg", `{"increment":{"by":0}}`)...); code != 1 || !strings.Contains(stdout, `increment needs a positive \"by\"`) && !strings.Contains(stdout, `increment needs a positive "by"`) {
		t.Fatalf("failing call: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := run(t, args("contract", "query", "phala1nope", "--from", "alice", "--msg", `{}`)...); code != 1 || !strings.Contains(stderr, "phalac1") {
		t.Fatalf("bad instance: exit %d %s", code, stderr)
	}
	if out := mustRun(t, args("contract", "list")...); !strings.Contains(out, id) || !regexp.MustCompile(`commands:\s+3\b`).MatchString(out) {
		t.Fatalf("list:\n%s", out)
	}
}
