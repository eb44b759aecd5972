// Package wasmbuild builds a Go contract to wasm with the standard
// toolchain: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package wasmbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
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
