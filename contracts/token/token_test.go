package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/pruntime/vm"
	"github.com/phala-go/phala/sdk"
)

// TestTokenNative runs the token's handlers natively (sdk.Native): the
// contract logic with plain go test.
func TestTokenNative(t *testing.T) {
	n := &sdk.Native{Caller: "alice", Contract: "token", Height: 1, Time: time.Unix(1, 0)}
	if err := n.Init([]byte(`{"name":"T"}`)); err != nil {
		t.Fatal(err)
	}
	must := func(caller, msg string) {
		t.Helper()
		n.Caller = caller
		if _, err := n.Command([]byte(msg)); err != nil {
			t.Fatalf("%s %s: %v", caller, msg, err)
		}
	}
	must("alice", `{"mint":{"to":"alice","amount":50}}`)
	must("alice", `{"transfer":{"to":"bob","amount":20}}`)
	n.Caller = "bob"
	if _, err := n.Command([]byte(`{"transfer":{"to":"carol","amount":21}}`)); err == nil {
		t.Fatal("overdraft accepted")
	}
	if out, err := n.Query([]byte(`{"balance":{}}`)); err != nil || string(out) != "20" {
		t.Fatalf("bob's balance %s %v", out, err)
	}
	if _, err := n.Query([]byte(`{"balance":{"account":"alice"}}`)); err == nil {
		t.Fatal("bob read alice's balance")
	}
}

var (
	wasmOnce sync.Once
	wasmCode []byte
	wasmErr  error
)

func tokenWasm(b *testing.B) []byte {
	wasmOnce.Do(func() { wasmCode, wasmErr = wasmbuild.Code(context.Background(), ".", ".") })
	if wasmErr != nil {
		b.Fatal(wasmErr)
	}
	return wasmCode
}

// BenchmarkTransferWasmVsNative is the benchmark (c): the same
// token transfer as a wasm contract in pRuntime's VM (fresh instance,
// metered) and as native Go through sdk.Native, with their ratio.
func BenchmarkTransferWasmVsNative(b *testing.B) {
	msg := []byte(`{"transfer":{"to":"bob","amount":1}}`)
	var nativeNs, wasmNs float64
	b.Run("native", func(b *testing.B) {
		n := &sdk.Native{Caller: "alice", Contract: "token", Height: 1, Time: time.Unix(1, 0)}
		n.Init([]byte(`{}`))
		n.Command([]byte(`{"mint":{"to":"alice","amount":1000000000}}`))
		b.ResetTimer()
		for range b.N {
			if _, err := n.Command(msg); err != nil {
				b.Fatal(err)
			}
		}
		nativeNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	code := tokenWasm(b)
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	h, err := e.Compile(ctx, code)
	if err != nil {
		b.Fatal(err)
	}
	var gas uint64
	b.Run("wasm", func(b *testing.B) {
		st := vm.NewMemStore()
		env := vm.Env{Contract: "token", Caller: "alice", Height: 1, Time: time.Unix(1, 0)}
		e.Execute(ctx, h, vm.EntryInit, env, st, []byte(`{}`))
		e.Execute(ctx, h, vm.EntryCommand, env, st, []byte(`{"mint":{"to":"alice","amount":1000000000}}`))
		b.ResetTimer()
		for range b.N {
			res, err := e.Execute(ctx, h, vm.EntryCommand, env, st, msg)
			if err != nil || res.Err != nil {
				b.Fatal(err, res.Err)
			}
			gas = res.GasUsed
		}
		wasmNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	// A block's commands share one instance (pRuntime's per-block
	// session): 100 commands per session here.
	var sessionNs float64
	b.Run("wasm-session", func(b *testing.B) {
		st := vm.NewMemStore()
		env := vm.Env{Contract: "token", Caller: "alice", Height: 1, Time: time.Unix(1, 0)}
		e.Execute(ctx, h, vm.EntryInit, env, st, []byte(`{}`))
		e.Execute(ctx, h, vm.EntryCommand, env, st, []byte(`{"mint":{"to":"alice","amount":1000000000}}`))
		b.ResetTimer()
		var s *vm.Session
		for i := range b.N {
			if i%100 == 0 {
				if s != nil {
					s.Close(ctx)
				}
				s = e.NewSession(h)
			}
			res, err := s.Execute(ctx, vm.EntryCommand, env, st, msg)
			if err != nil || res.Err != nil {
				b.Fatal(err, res.Err)
			}
		}
		s.Close(ctx)
		sessionNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	if nativeNs > 0 && wasmNs > 0 && sessionNs > 0 {
		fmt.Printf("token transfer: native %.0f ns/op; wasm in pRuntime's VM, fresh instance %.0f ns/op (%d gas), wasm/native %.0fx; per-block session of 100 %.0f ns/op, wasm/native %.0fx\n",
			nativeNs, wasmNs, gas, wasmNs/nativeNs, sessionNs, sessionNs/nativeNs)
	}
}
