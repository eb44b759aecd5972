package vm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/pruntime/vm"
)

var tokenWasm, hostileWasm []byte

func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	for _, c := range []struct {
		pkg string
		out *[]byte
	}{{"./contracts/token", &tokenWasm}, {"./pruntime/vm/testdata/hostile", &hostileWasm}} {
		if *c.out, err = wasmbuild.Code(ctx, "../..", c.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if shared, err = vm.NewEngine(ctx, vm.Config{}); err != nil {
		panic(err)
	}
	code := m.Run()
	shared.Close(ctx)
	os.Exit(code)
}

// shared is the engine of tests with the default config: code compiles
// once for all of them (a Go contract takes seconds to compile).
var shared *vm.Engine

type fixture struct {
	t     *testing.T
	e     *vm.Engine
	code  vm.CodeHash
	store *vm.MemStore
	h     int64
}

func newFixture(t *testing.T, wasm []byte, cfg vm.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	e := shared
	if cfg != (vm.Config{}) {
		var err error
		if e, err = vm.NewEngine(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(ctx) })
	}
	code, err := e.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, e: e, code: code, store: vm.NewMemStore()}
}

func (f *fixture) env(caller string) vm.Env {
	f.h++
	return vm.Env{Contract: "token1", Caller: caller, Height: f.h, Time: time.Unix(1_800_000_000+f.h, 0), Seed: []byte(fmt.Sprint("seed", f.h))}
}

func (f *fixture) call(entry vm.Entry, caller, msg string) *vm.Result {
	f.t.Helper()
	res, err := f.e.Execute(context.Background(), f.code, entry, f.env(caller), f.store, []byte(msg))
	if err != nil {
		f.t.Fatalf("%s %s: %v", entry, msg, err)
	}
	return res
}

func (f *fixture) ok(entry vm.Entry, caller, msg string) []byte {
	f.t.Helper()
	res := f.call(entry, caller, msg)
	if res.Err != nil {
		f.t.Fatalf("%s %s by %s: %v", entry, msg, caller, res.Err)
	}
	return res.Output
}

func (f *fixture) refused(entry vm.Entry, caller, msg, want string) {
	f.t.Helper()
	before := f.store.Root()
	res := f.call(entry, caller, msg)
	if res.Err == nil || !errors.Is(res.Err, vm.ErrContract) || !bytes.Contains([]byte(res.Err.Error()), []byte(want)) {
		f.t.Fatalf("%s %s by %s: got %v, want an error containing %q", entry, msg, caller, res.Err, want)
	}
	if f.store.Root() != before {
		f.t.Fatalf("%s %s: a failed call changed the state", entry, msg)
	}
}

// TestTokenContract runs the token example: the owner mints, holders
// transfer, only a holder reads its balance, the supply is public, and a
// failed command changes nothing.
func TestTokenContract(t *testing.T) {
	f := newFixture(t, tokenWasm, vm.Config{})
	f.ok(vm.EntryInit, "alice", `{"name":"Secret"}`)
	f.ok(vm.EntryCommand, "alice", `{"mint":{"to":"alice","amount":100}}`)
	f.refused(vm.EntryCommand, "bob", `{"mint":{"to":"bob","amount":100}}`, "only the owner may mint")
	f.ok(vm.EntryCommand, "alice", `{"transfer":{"to":"bob","amount":30}}`)
	f.refused(vm.EntryCommand, "bob", `{"transfer":{"to":"carol","amount":31}}`, "insufficient balance")
	f.refused(vm.EntryCommand, "bob", `{"burn":{}}`, `no handler "burn"`)
	f.refused(vm.EntryCommand, "bob", `not json`, "one member naming the handler")
	if got := string(f.ok(vm.EntryQuery, "bob", `{"balance":{"account":"bob"}}`)); got != "30" {
		t.Fatalf("bob's balance %s", got)
	}
	if got := string(f.ok(vm.EntryQuery, "alice", `{"balance":{}}`)); got != "70" {
		t.Fatalf("alice's balance %s", got)
	}
	f.refused(vm.EntryQuery, "bob", `{"balance":{"account":"alice"}}`, "only the holder may read a balance")
	var in struct {
		Name        string
		Owner       string
		TotalSupply uint64 `json:"total_supply"`
	}
	if err := json.Unmarshal(f.ok(vm.EntryQuery, "mallory", `{"info":{}}`), &in); err != nil || in.TotalSupply != 100 || in.Owner != "alice" || in.Name != "Secret" {
		t.Fatalf("info %+v %v", in, err)
	}
}

// TestDeterministicStateRoot: the same commands on two engines with their
// own stores give the same state root after every command.
func TestDeterministicStateRoot(t *testing.T) {
	a := newFixture(t, tokenWasm, vm.Config{})
	b := newFixture(t, tokenWasm, vm.Config{CacheDir: t.TempDir()})
	msgs := []struct{ caller, msg string }{
		{"alice", `{"name":"T"}`},
		{"alice", `{"mint":{"to":"alice","amount":1000}}`},
		{"alice", `{"transfer":{"to":"bob","amount":10}}`},
		{"bob", `{"transfer":{"to":"carol","amount":4}}`},
		{"carol", `{"transfer":{"to":"dave","amount":5}}`}, // fails
		{"alice", `{"transfer":{"to":"carol","amount":990}}`},
	}
	for i, m := range msgs {
		entry := vm.EntryCommand
		if i == 0 {
			entry = vm.EntryInit
		}
		ra, rb := a.call(entry, m.caller, m.msg), b.call(entry, m.caller, m.msg)
		if (ra.Err == nil) != (rb.Err == nil) || a.store.Root() != b.store.Root() || ra.GasUsed != rb.GasUsed || ra.GasUsed == 0 {
			t.Fatalf("after %s: roots %x / %x, errors %v / %v, gas %d / %d", m.msg, a.store.Root(), b.store.Root(), ra.Err, rb.Err, ra.GasUsed, rb.GasUsed)
		}
	}
	// info, bob and carol; alice's balance reached 0 and was deleted.
	if a.store.Len() != 3 {
		t.Fatalf("%d keys in the state, want 3", a.store.Len())
	}
}

// TestHostileContract: an endless loop, a memory bomb, a runtime panic, a
// huge answer and a write from a query each end that call with an error and
// no state change; the engine carries on. Randomness and time are
// deterministic.
func TestHostileContract(t *testing.T) {
	f := newFixture(t, hostileWasm, vm.Config{Timeout: 2 * time.Second, MemoryLimitPages: 256})
	f.ok(vm.EntryCommand, "alice", `{"set":{"a":"1"}}`)
	f.refused(vm.EntryCommand, "alice", `{"set_then_fail":"b"}`, "failing after a write")
	t0 := time.Now()
	res := f.call(vm.EntryCommand, "alice", `{"loop":{}}`)
	if !errors.Is(res.Err, vm.ErrOutOfGas) || res.GasUsed != 100_000_000 {
		t.Fatalf("endless loop: %v, gas used %d", res.Err, res.GasUsed)
	}
	t.Logf("endless loop ran out of gas after %s", time.Since(t0).Round(time.Millisecond))
	// With gas to spare, the wall-clock safety net still stops it.
	env := f.env("alice")
	env.Gas = 1 << 62
	res, err := f.e.Execute(context.Background(), f.code, vm.EntryCommand, env, f.store, []byte(`{"loop":{}}`))
	if err != nil || !errors.Is(res.Err, vm.ErrTimeout) {
		t.Fatalf("endless loop with unlimited gas: %v %v", err, res.Err)
	}
	f.refused(vm.EntryCommand, "alice", `{"bomb":{}}`, "")
	f.refused(vm.EntryCommand, "alice", `{"trap":{}}`, "nil map")
	f.refused(vm.EntryQuery, "alice", `{"huge":{}}`, "output")
	f.refused(vm.EntryQuery, "alice", `{"write":{}}`, "a query may not write state")
	if got := string(f.ok(vm.EntryQuery, "alice", `{"get":"a"}`)); got != `"1"` {
		t.Fatalf("after the hostile calls: a = %s", got)
	}
	if got := string(f.ok(vm.EntryQuery, "alice", `{"get":"b"}`)); got != `""` {
		t.Fatalf("a failed command's write survived: b = %s", got)
	}
	var who [2]string
	json.Unmarshal(f.ok(vm.EntryQuery, "alice", `{"whoami":{}}`), &who)
	if who != [2]string{"alice", "token1"} {
		t.Fatalf("whoami %v", who)
	}
	// Randomness and the clock come from the call, not the machine.
	env = vm.Env{Contract: "c", Caller: "alice", Height: 7, Time: time.Unix(1_800_000_000, 0), Seed: []byte("s")}
	roots := map[[32]byte]bool{}
	for _, seed := range []string{"s", "s", "t"} {
		st := vm.NewMemStore()
		env.Seed = []byte(seed)
		res, err := f.e.Execute(context.Background(), f.code, vm.EntryCommand, env, st, []byte(`{"random":{}}`))
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		tm, _ := st.Get([]byte("time"))
		if string(tm) != time.Unix(1_800_000_000, 0).UTC().String() {
			t.Fatalf("contract time %s", tm)
		}
		roots[st.Root()] = true
	}
	if len(roots) != 2 {
		t.Fatalf("seeds s, s, t gave %d distinct states, want 2", len(roots))
	}
	// Messages leave with the result.
	res = f.call(vm.EntryCommand, "alice", `{"send":"other"}`)
	if res.Err != nil || len(res.Messages) != 1 || res.Messages[0].To != "other" || string(res.Messages[0].Payload) != `{"hello":{"from":"token1"}}` {
		t.Fatalf("send: %+v %v", res.Messages, res.Err)
	}
}

// TestGasIsExactAndCharged: the same command uses the same gas every time
// and on another engine; a limit just below it fails with out of gas and
// changes nothing; the limit it used succeeds.
func TestGasIsExactAndCharged(t *testing.T) {
	f := newFixture(t, tokenWasm, vm.Config{})
	f.ok(vm.EntryInit, "alice", `{}`)
	f.ok(vm.EntryCommand, "alice", `{"mint":{"to":"alice","amount":100}}`)
	snap := f.store.Root()
	run := func(gas uint64) *vm.Result {
		st := vm.NewMemStore()
		// replay onto a fresh store to the same state
		for _, m := range []struct {
			e   vm.Entry
			msg string
		}{{vm.EntryInit, `{}`}, {vm.EntryCommand, `{"mint":{"to":"alice","amount":100}}`}} {
			if r, err := f.e.Execute(context.Background(), f.code, m.e, vm.Env{Caller: "alice", Height: 1, Time: time.Unix(1, 0)}, st, []byte(m.msg)); err != nil || r.Err != nil {
				t.Fatal(err, r.Err)
			}
		}
		if st.Root() != snap {
			t.Fatal("replay diverged")
		}
		r, err := f.e.Execute(context.Background(), f.code, vm.EntryCommand, vm.Env{Caller: "alice", Height: 2, Time: time.Unix(2, 0), Gas: gas}, st, []byte(`{"transfer":{"to":"bob","amount":1}}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.Err != nil && st.Root() != snap {
			t.Fatal("a failed transfer changed the state")
		}
		return r
	}
	first := run(0)
	if first.Err != nil || first.GasUsed == 0 {
		t.Fatalf("transfer: %v, gas %d", first.Err, first.GasUsed)
	}
	t.Logf("a token transfer uses %d gas", first.GasUsed)
	if again := run(0); again.GasUsed != first.GasUsed {
		t.Fatalf("gas used %d then %d", first.GasUsed, again.GasUsed)
	}
	if short := run(first.GasUsed - 1); !errors.Is(short.Err, vm.ErrOutOfGas) || short.GasUsed != first.GasUsed-1 {
		t.Fatalf("one gas short: %v, used %d", short.Err, short.GasUsed)
	}
	if exact := run(first.GasUsed); exact.Err != nil {
		t.Fatalf("exact gas: %v", exact.Err)
	}
}

// TestCompileRefusals: code that is not wasm, or imports what a contract
// may not, is refused at compile time.
func TestCompileRefusals(t *testing.T) {
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if _, err := e.Compile(ctx, []byte("not wasm")); !errors.Is(err, vm.ErrBadCode) {
		t.Fatalf("garbage: %v", err)
	}
	// (module (import "env" "f" (func)) (func (export "phala_command") (result i32) i32.const 0))
	mod := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 8, 2, 0x60, 0, 0, 0x60, 0, 1, 0x7f, // types: ()->(), ()->i32
		2, 9, 1, 3, 'e', 'n', 'v', 1, 'f', 0, 0, // import env.f
		3, 2, 1, 1, // func 1 has type 1
		7, 17, 1, 13, 'p', 'h', 'a', 'l', 'a', '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0, 1,
		10, 6, 1, 4, 0, 0x41, 0, 0x0b}
	if _, err := e.Compile(ctx, mod); !errors.Is(err, vm.ErrBadCode) || !bytes.Contains([]byte(err.Error()), []byte("env.f")) {
		t.Fatalf("foreign import: %v", err)
	}
	if _, err := e.Execute(ctx, vm.CodeHash{1}, vm.EntryCommand, vm.Env{}, vm.NewMemStore(), nil); !errors.Is(err, vm.ErrUnknownCode) {
		t.Fatalf("unknown code: %v", err)
	}
}

func BenchmarkTokenTransfer(b *testing.B) {
	ctx := context.Background()
	e, _ := vm.NewEngine(ctx, vm.Config{})
	defer e.Close(ctx)
	code, _ := e.Compile(ctx, tokenWasm)
	st := vm.NewMemStore()
	env := vm.Env{Contract: "t", Caller: "alice", Height: 1, Time: time.Unix(1, 0)}
	e.Execute(ctx, code, vm.EntryInit, env, st, []byte(`{}`))
	e.Execute(ctx, code, vm.EntryCommand, env, st, []byte(`{"mint":{"to":"alice","amount":1000000000}}`))
	b.ResetTimer()
	for range b.N {
		res, err := e.Execute(ctx, code, vm.EntryCommand, env, st, []byte(`{"transfer":{"to":"bob","amount":1}}`))
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
	}
}

// TestSessionMatchesAcrossEnginesAndSurvivesFailures: calls in one
// instance (pRuntime's per-block session) give the same results, gas and
// roots on two engines; state ends as with fresh instances; a failing
// command, a trap and running out of gas in the middle change nothing and
// the session carries on.
func TestSessionMatchesAcrossEnginesAndSurvivesFailures(t *testing.T) {
	ctx := context.Background()
	a := newFixture(t, tokenWasm, vm.Config{})
	b := newFixture(t, tokenWasm, vm.Config{CacheDir: t.TempDir()})
	fresh := newFixture(t, tokenWasm, vm.Config{})
	sa, sb := a.e.NewSession(a.code), b.e.NewSession(b.code)
	defer sa.Close(ctx)
	defer sb.Close(ctx)
	type step struct {
		caller, msg string
		gas         uint64
		ok          bool
	}
	steps := []step{{"alice", `{"name":"T"}`, 0, true}, {"alice", `{"mint":{"to":"alice","amount":1000}}`, 0, true}}
	for i := range 30 {
		steps = append(steps, step{"alice", fmt.Sprintf(`{"transfer":{"to":"u%d","amount":%d}}`, i, i+1), 0, true})
	}
	steps = append(steps,
		step{"bob", `{"transfer":{"to":"carol","amount":5}}`, 0, false},     // insufficient: an error return
		step{"alice", `{"transfer":{"to":"bob","amount":1}}`, 5_000, false}, // out of gas: a trap
		step{"alice", `not json`, 0, false},
		step{"alice", `{"transfer":{"to":"bob","amount":7}}`, 0, true},
	)
	for i, st := range steps {
		entry := vm.EntryCommand
		if i == 0 {
			entry = vm.EntryInit
		}
		ea, eb, ef := a.env(st.caller), b.env(st.caller), fresh.env(st.caller)
		ea.Gas, eb.Gas, ef.Gas = st.gas, st.gas, st.gas
		ra, err := sa.Execute(ctx, entry, ea, a.store, []byte(st.msg))
		if err != nil {
			t.Fatal(err)
		}
		rb, err := sb.Execute(ctx, entry, eb, b.store, []byte(st.msg))
		if err != nil {
			t.Fatal(err)
		}
		rf, err := fresh.e.Execute(ctx, fresh.code, entry, ef, fresh.store, []byte(st.msg))
		if err != nil {
			t.Fatal(err)
		}
		if (ra.Err == nil) != st.ok || (rb.Err == nil) != st.ok || (rf.Err == nil) != st.ok {
			t.Fatalf("step %d %s: errors %v / %v / %v, want ok %v", i, st.msg, ra.Err, rb.Err, rf.Err, st.ok)
		}
		if ra.GasUsed != rb.GasUsed || a.store.Root() != b.store.Root() || a.store.Root() != fresh.store.Root() {
			t.Fatalf("step %d %s: gas %d / %d, roots %x / %x / %x", i, st.msg, ra.GasUsed, rb.GasUsed, a.store.Root(), b.store.Root(), fresh.store.Root())
		}
	}
	if got := string(a.ok(vm.EntryQuery, "bob", `{"balance":{}}`)); got != "7" {
		t.Fatalf("bob holds %s, want 7", got)
	}
}
