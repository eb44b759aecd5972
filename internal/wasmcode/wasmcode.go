// Package wasmcode is the one decoder of contract code as it travels on
// chain (gzip-compressed WebAssembly), shared by the chain, which checks a
// deployment, and pRuntime, which runs it.
package wasmcode

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Errors Gunzip wraps.
var (
	ErrMalformed = errors.New("contract code is not gzip-compressed WebAssembly")
	ErrTooLarge  = errors.New("contract code too large")
)

// Header starts every WebAssembly version 1 module.
const Header = "\x00asm\x01\x00\x00\x00"

// Gunzip decompresses contract code, refusing more than limit bytes and
// anything but a WebAssembly version 1 module.
func Gunzip(gz []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	code, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not decompress: %v", ErrMalformed, err)
	}
	if int64(len(code)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes uncompressed", ErrTooLarge, limit)
	}
	if !bytes.HasPrefix(code, []byte(Header)) {
		return nil, fmt.Errorf("%w: no WebAssembly version 1 header", ErrMalformed)
	}
	return code, nil
}

// Gzip compresses code for a deployment.
func Gzip(code []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(code)
	zw.Close()
	return b.Bytes()
}
