package vm

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// loopModule: (func (export "phala_command") (result i32) (loop (br 0)) i32.const 0)
// with an imported global before it, so the gas global's index must skip it.
var loopModule = []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
	1, 5, 1, 0x60, 0, 1, 0x7f, // type ()->i32
	2, 9, 1, 1, 'm', 2, 'g', 'v', 3, 0x7f, 0, // import m.gv: an immutable i32 global
	3, 2, 1, 0, // func 0 type 0
	7, 17, 1, 13, 'p', 'h', 'a', 'l', 'a', '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0, 0,
	10, 11, 1, 9, 0, 0x03, 0x40, 0x0c, 0, 0x0b, 0x41, 0, 0x0b}

// TestInstrumentedLoopRunsOutOfGas checks the rewriting on a hand-made
// module: an endless loop stops with the gas global at -1, after exactly the
// gas it was given, and the gas global follows an imported one.
func TestInstrumentedLoopRunsOutOfGas(t *testing.T) {
	// Without the import, to instantiate it.
	code := bytes.Clone(loopModule)
	code = append(code[:15], code[26:]...)
	out, err := instrument(code)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	g := mod.ExportedGlobal(GasExport)
	if g == nil {
		t.Fatal("no gas global")
	}
	for _, limit := range []uint64{0, 1, 10, 12345} {
		g.(interface{ Set(uint64) }).Set(limit)
		if _, err := mod.ExportedFunction("phala_command").Call(ctx); err == nil {
			t.Fatalf("limit %d: the endless loop returned", limit)
		}
		if int64(g.Get()) != -1 {
			t.Fatalf("limit %d: gas global %d after running out, want -1", limit, int64(g.Get()))
		}
	}
	// With the imported global the new global is index 1.
	out, err = instrument(loopModule)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte{0x23, 1, 0x42}) || bytes.Contains(out, []byte{0x23, 0, 0x42}) {
		t.Fatal("charges do not use global index 1 after an imported global")
	}
	if _, err := rt.CompileModule(ctx, out); err != nil {
		t.Fatalf("the instrumented module with an imported global does not validate: %v", err)
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(loopModule)
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})
	f.Add([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, 10, 4, 1, 2, 0, 0x0b})
	f.Fuzz(func(t *testing.T, code []byte) {
		out, err := instrument(code)
		if err != nil {
			return
		}
		// Instrumenting is idempotent in structure: the output parses again.
		if _, err := instrument(out); err != nil {
			t.Fatalf("instrumented output does not parse: %v", err)
		}
	})
}
