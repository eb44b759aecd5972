package contracts_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"

	"github.com/phala-go/phala/chain/contracts"
)

var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

func gz(tb testing.TB, parts ...[]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	for _, p := range parts { // one gzip member per part
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(p); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// reference decompresses in at most limit+1 bytes, the plain way.
func reference(in []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, limit+1))
}

// FuzzGunzip: Gunzip never panics, never returns more than the limit,
// returns only WebAssembly version-1 modules (exactly what the input
// decompresses to), and refuses everything else with contracts/3 or /4.
func FuzzGunzip(f *testing.F) {
	f.Add(gz(f, wasmHeader), uint16(len(wasmHeader)))
	f.Add(gz(f, wasmHeader), uint16(len(wasmHeader)-1))
	f.Add(gz(f, append(bytes.Clone(wasmHeader), make([]byte, 100)...)), uint16(64))
	f.Add(gz(f, wasmHeader[:4], wasmHeader[4:]), uint16(1024))
	f.Add(gz(f, []byte("\x00asm\x02\x00\x00\x00")), uint16(1024))
	f.Add(gz(f, nil), uint16(1024))
	f.Add(wasmHeader, uint16(1024))
	f.Add([]byte{}, uint16(0))
	f.Add(append(gz(f, wasmHeader), "trailing"...), uint16(1024))
	f.Fuzz(func(t *testing.T, in []byte, lim uint16) {
		limit := int64(lim)
		code, err := contracts.Gunzip(in, limit)
		if err != nil {
			if code != nil {
				t.Fatalf("error %v with %d bytes of code", err, len(code))
			}
			if !errors.Is(err, contracts.ErrMalformed) && !errors.Is(err, contracts.ErrCodeTooLarge) {
				t.Fatalf("error outside the codespace: %v", err)
			}
			if errors.Is(err, contracts.ErrCodeTooLarge) {
				if ref, _ := reference(in, limit); int64(len(ref)) <= limit {
					t.Fatalf("too large at limit %d, but it decompresses to %d bytes", limit, len(ref))
				}
			}
			return
		}
		if int64(len(code)) > limit {
			t.Fatalf("returned %d bytes, limit %d", len(code), limit)
		}
		if !bytes.HasPrefix(code, wasmHeader) {
			t.Fatalf("returned code starting %X, not the wasm header", code[:min(len(code), 8)])
		}
		ref, rerr := reference(in, limit)
		if rerr != nil || !bytes.Equal(ref, code) {
			t.Fatalf("returned %X, plain decompression gives %X (%v)", code, ref, rerr)
		}
	})
}

func TestGunzipLimits(t *testing.T) {
	module := append(bytes.Clone(wasmHeader), make([]byte, 92)...)
	for _, c := range []struct {
		in    []byte
		limit int64
		want  error
	}{
		{gz(t, module), 100, nil},
		{gz(t, module), 99, contracts.ErrCodeTooLarge},
		{gz(t, module), 0, contracts.ErrCodeTooLarge},
		{gz(t, module), -1, contracts.ErrCodeTooLarge},
		{gz(t, []byte("not wasm")), 100, contracts.ErrMalformed},
		{module, 100, contracts.ErrMalformed},
		{gz(t, module)[:15], 100, contracts.ErrMalformed},
	} {
		code, err := contracts.Gunzip(c.in, c.limit)
		if c.want == nil && (err != nil || !bytes.Equal(code, module)) {
			t.Errorf("limit %d: %v", c.limit, err)
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("limit %d: %v, want %v", c.limit, err, c.want)
		}
	}
}
