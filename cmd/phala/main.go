// Command phala runs and uses a Phala-Go network. Commands only parse flags
// and print; the protocol lives in the packages they call.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/devnet"
)

// globals are the flags every command takes.
type globals struct {
	home   string
	node   string
	output string
}

func defaultHome() string {
	if h := os.Getenv("PHALA_HOME"); h != "" {
		return h
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return ".phala/devnet"
	}
	return filepath.Join(dir, ".phala", "devnet")
}

// nodeAddr is --node, else the RPC address recorded in HOME/endpoints.json,
// else CometBFT's default.
func (g *globals) nodeAddr() string {
	if g.node != "" {
		return g.node
	}
	if e, err := devnet.ReadEndpoints(g.home); err == nil && e.RPC != "" {
		return e.RPC
	}
	return "http://127.0.0.1:26657"
}

func (g *globals) json() bool { return g.output == "json" }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "phala",
		Short:         "Run and use a Phala-Go confidential smart contract network",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output %q: want text or json", g.output)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.home, "home", defaultHome(), "directory of the network (or node) and its keyring; $PHALA_HOME overrides the default")
	root.PersistentFlags().StringVar(&g.node, "node", "", "CometBFT RPC address of a node (default: from HOME/endpoints.json, else http://127.0.0.1:26657)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(
		devnetCmd(g),
		localnetCmd(g),
		nodeCmd(g),
		keysCmd(g),
		txCmd(g),
		govCmd(g),
		queryCmd(g),
		statusCmd(g),
		attestdCmd(g),
		pruntimeCmd(g),
		hostCmd(g),
		contractCmd(g),
	)
	return root
}

// errSilent exits 1 after a command printed why it failed itself (a
// contract's refusal is the command's output, not a usage error).
var errSilent = errors.New("failed")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "Error:", err)
		}
		os.Exit(1)
	}
}
