package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cometbft/cometbft/types"
	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
)

func devnetCmd(g *globals) *cobra.Command {
	var (
		basePort  int
		blockTime time.Duration
		reset     bool
		noDemo    bool
		quiet     bool
	)
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole network in this process (one validator, funded accounts alice and bob)",
		Long: `Run a single-validator Phala-Go network in this process. On first start it creates
HOME with a genesis, the keyring (alice and bob, each funded with 1,000,000 PHA) and
endpoints.json; later starts resume from HOME. It sends a demo transfer from alice to
bob, then prints each block until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if reset {
				if err := resetHome(g.home); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			net, err := devnet.Start(ctx, devnet.Config{Home: g.home, BasePort: basePort, BlockTime: blockTime})
			if err != nil {
				return err
			}
			defer net.Stop()
			e := net.Endpoints
			n := e.Nodes[0]
			fmt.Fprintf(out, "Phala-Go devnet %q is running (home %s)\n", e.ChainID, g.home)
			fmt.Fprintf(out, "  CometBFT RPC  %s\n  P2P           %s\n  Metrics       %s\n  Endpoints     %s\n  Keyring       %s\n  Logs          %s\n\n",
				n.RPC, n.P2P, n.Metrics, devnet.EndpointsFile(g.home), e.Keyring, filepath.Join(g.home, "node.log"))
			if err := net.WaitHeight(ctx, net.Node.App().Height()+1); err != nil {
				return err
			}
			if err := printBalances(ctx, out, net); err != nil {
				return err
			}
			if !noDemo {
				if err := demoTransfer(ctx, out, net); err != nil {
					return fmt.Errorf("demo transfer: %w", err)
				}
			}
			self := os.Args[0]
			if strings.Contains(self, "go-build") {
				self = "go run ./cmd/phala"
			}
			bob, _ := net.Keyring.Get("bob")
			fmt.Fprintf(out, "\nTry, in another terminal:\n  %s status --home %s\n  %s tx transfer --home %s --from alice --to %s --amount 2.5\n  %s query balance bob --home %s\n  curl -s %s/status\n\nBlocks (Ctrl-C to stop):\n",
				self, g.home, self, g.home, bob.Address, self, g.home, n.RPC)
			return followBlocks(ctx, out, net, quiet)
		},
	}
	cmd.Flags().IntVar(&basePort, "base-port", 26657, "first port; every listener is on 127.0.0.1 from it upward")
	cmd.Flags().DurationVar(&blockTime, "block-time", time.Second, "pause between blocks")
	cmd.Flags().BoolVar(&reset, "reset", false, "delete HOME's network first and start a fresh chain")
	cmd.Flags().BoolVar(&noDemo, "no-demo", false, "skip the demo transfer")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "do not print each block")
	return cmd
}

// resetHome removes a network home, refusing directories that do not look
// like one.
func resetHome(home string) error {
	if _, err := os.Stat(filepath.Join(home, "node0", "config", "genesis.json")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(home)
}

func printBalances(ctx context.Context, out io.Writer, net *devnet.Network) error {
	keys, err := net.Keyring.List()
	if err != nil {
		return err
	}
	for _, k := range keys {
		acc, err := net.Client.Account(ctx, k.Address)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-6s %s  %s\n", k.Name, k.Address, bank.FormatAmount(acc.Balance))
	}
	return nil
}

func demoTransfer(ctx context.Context, out io.Writer, net *devnet.Network) error {
	alice, err := net.Keyring.Get("alice")
	if err != nil {
		return err
	}
	bob, err := net.Keyring.Get("bob")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nDemo: alice sends 1 PHA to bob ... ")
	res, err := net.Client.Transfer(ctx, alice.PrivateKey(), bob.Address, bank.UnitsPerPHA, client.SendOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "committed in block %d (tx %s)\n", res.Height, shortHex(res.Hash))
	return printBalances(ctx, out, net)
}

func followBlocks(ctx context.Context, out io.Writer, net *devnet.Network, quiet bool) error {
	sub, err := net.Node.Comet().EventBus().Subscribe(ctx, "devnet-cli", types.EventQueryNewBlock, 100)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping")
			return nil
		case <-sub.Canceled():
			return fmt.Errorf("block subscription ended: %w", sub.Err())
		case msg := <-sub.Out():
			if quiet {
				continue
			}
			b := msg.Data().(types.EventDataNewBlock).Block
			fmt.Fprintf(out, "block %-6d %3d txs  app hash %s\n", b.Height, len(b.Txs), shortHex(fmt.Sprintf("%X", []byte(b.AppHash))))
		}
	}
}
