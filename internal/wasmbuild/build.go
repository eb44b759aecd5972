// Package wasmbuild builds a Go contract to wasm with the standard
// toolchain: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package wasmbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build builds the main package in dir (a directory or an import path
// pattern resolvable from dir) to the wasm file out. -trimpath keeps the
// build reproducible across machines: the same source gives the same code
// hash.
func Build(ctx context.Context, dir, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s to wasm: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// Code builds the main package pkg (resolved from dir) and returns the
// wasm bytes.
func Code(ctx context.Context, dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "wasmbuild")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "contract.wasm")
	if err := Build(ctx, dir, pkg, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// ModuleRoot is the root of the Phala-Go checkout this package was built
// from, for tests and benchmarks that build the example contracts.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", fmt.Errorf("the Phala-Go source is not at hand (built with -trimpath?); run from a checkout")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file))), nil
}
