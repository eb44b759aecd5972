package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

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
