package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/internal/wasmbuild"
)

const sdkModule = "github.com/phala-go/phala"

var contractName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// contractTemplate is what `phala contract new` writes: a private counter,
// a contract whose every caller has a count only it can read.
const contractTemplate = `// Command %[1]s is a Phala-Go contract. Build it with
//
//	phala contract build .
//
// Each caller has a private counter: "increment" adds to the caller's own,
// "count" reads it, and nobody else can read it.
package main

import (
	"errors"

	"github.com/phala-go/phala/sdk"
)

type Increment struct {
	By uint64 ` + "`json:\"by\"`" + `
}

func key(who string) string { return "count/" + who }

func init() {
	sdk.Command("increment", func(ctx *sdk.Context, a Increment) error {
		if a.By == 0 {
			return errors.New("increment needs a positive \"by\"")
		}
		var n uint64
		if _, err := ctx.GetJSON(key(ctx.Caller()), &n); err != nil {
			return err
		}
		return ctx.SetJSON(key(ctx.Caller()), n+a.By)
	})
	sdk.Query("count", func(ctx *sdk.Context, _ struct{}) (uint64, error) {
		var n uint64
		_, err := ctx.GetJSON(key(ctx.Caller()), &n)
		return n, err
	})
}

func main() {}
`

func contractCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contract",
		Short: "Write, build, deploy, call and query confidential contracts",
	}
	var dir, src string
	newCmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Scaffold a contract: a Go main package using the Phala-Go sdk",
		Long: `Scaffold a contract in --dir (default ./NAME): main.go with a private counter to
start from. Inside a checkout of Phala-Go the package joins its module; elsewhere
a go.mod is written that takes the sdk from --phala-src (a Phala-Go checkout).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !contractName.MatchString(name) {
				return fmt.Errorf("contract name %q: use 1 to 40 lowercase letters, digits or _, starting with a letter", name)
			}
			if dir == "" {
				dir = name
			}
			if _, err := os.Stat(filepath.Join(dir, "main.go")); err == nil {
				return fmt.Errorf("%s already holds a main.go; choose another --dir", dir)
			}
			parent := filepath.Dir(mustAbs(dir))
			if st, err := os.Stat(parent); err != nil || !st.IsDir() {
				return fmt.Errorf("the parent directory %s does not exist", parent)
			}
			inPhala, err := insidePhalaModule(parent)
			if err != nil {
				return err
			}
			if !inPhala {
				if src == "" {
					return errors.New("this directory is outside a Phala-Go checkout: pass --phala-src PATH (the checkout the sdk comes from)")
				}
				abs, err := filepath.Abs(src)
				if err != nil {
					return err
				}
				if _, err := os.Stat(filepath.Join(abs, "sdk", "sdk.go")); err != nil {
					return fmt.Errorf("--phala-src %s has no sdk/sdk.go; point it at a Phala-Go checkout", src)
				}
				mod := fmt.Sprintf("module example.com/%s\n\ngo 1.26\n\nrequire %s v0.0.0\n\nreplace %s => %s\n", name, sdkModule, sdkModule, abs)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
					return err
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), fmt.Appendf(nil, contractTemplate, name), 0o644); err != nil {
				return err
			}
			if !inPhala {
				// Settle the go directive and requirements against the sdk's module.
				tidy := exec.CommandContext(cmd.Context(), "go", "mod", "tidy")
				tidy.Dir = dir
				if out, err := tidy.CombinedOutput(); err != nil {
					return fmt.Errorf("go mod tidy in %s: %w\n%s", dir, err, out)
				}
			}
			out := cmd.OutOrStdout()
			return emit(out, g, map[string]string{"dir": dir, "name": name}, func(w io.Writer) {
				fmt.Fprintf(w, "contract %s scaffolded in %s\nbuild it with: phala contract build %s\n", name, dir, dir)
			})
		},
	}
	newCmd.Flags().StringVar(&dir, "dir", "", "directory to create (default ./NAME)")
	newCmd.Flags().StringVar(&src, "phala-src", "", "Phala-Go checkout the sdk comes from, when the directory is outside one")
	var outFile string
	buildCmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Build a contract to wasm with the standard Go toolchain",
		Long: `Build the contract in DIR with GOOS=wasip1 GOARCH=wasm go build -trimpath
-buildmode=c-shared, and print the wasm file, its size and its code hash (SHA-256).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := args[0]
			if outFile == "" {
				outFile = filepath.Join(d, filepath.Base(mustAbs(d))+".wasm")
			}
			abs, err := filepath.Abs(outFile)
			if err != nil {
				return err
			}
			if err := wasmbuild.Build(cmd.Context(), d, ".", abs); err != nil {
				return err
			}
			code, err := os.ReadFile(abs)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(code)
			res := map[string]any{"wasm": outFile, "bytes": len(code), "code_hash": hex.EncodeToString(sum[:])}
			return emit(cmd.OutOrStdout(), g, res, func(w io.Writer) {
				fmt.Fprintf(w, "built %s (%d bytes)\ncode hash %x\ndeploy it with: phala contract deploy %s --miner WORKER --from NAME\n", outFile, len(code), sum, outFile)
			})
		},
	}
	buildCmd.Flags().StringVarP(&outFile, "out", "O", "", "wasm file to write (default DIR/<dir name>.wasm)")
	cmd.AddCommand(newCmd, buildCmd)
	cmd.AddCommand(contractChainCmds(g)...)
	return cmd
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// insidePhalaModule reports whether dir belongs to a Go module that is
// Phala-Go itself.
func insidePhalaModule(dir string) (bool, error) {
	c := exec.Command("go", "env", "GOMOD")
	c.Dir = dir
	out, err := c.Output()
	if err != nil {
		return false, fmt.Errorf("go env GOMOD in %s: %w (is the Go toolchain installed?)", dir, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return false, nil
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return false, err
	}
	return regexp.MustCompile(`(?m)^module\s+` + regexp.QuoteMeta(sdkModule) + `\s*$`).Match(b), nil
}
