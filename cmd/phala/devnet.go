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
	"github.com/phala-go/phala/proto/chainpb"
)

func devnetCmd(g *globals) *cobra.Command {
	var (
		basePort  int
		blockTime time.Duration
		reset     bool
		noDemo    bool
		quiet     bool
		noWorkers bool
	)
	cmd := &cobra.Command{
		Use:   "devnet",
		Short: "Run a whole network in this process: a validator, the attestation service and six workers that launch it",
		Long: `Run a Phala-Go network in this process: one CometBFT validator, the simulated
remote attestation service, and six workers (each a pRuntime on its own simulated
CPU, serving its host over a Unix socket): the genesis node, three gatekeeper
candidates and two miners. The network launches by itself: the workers register
with attested identities, the candidates stake, three gatekeepers are elected,
the genesis node hands them the root key and retires.

On first start it creates HOME with a genesis, the keyring (alice and bob, each
funded with 1,000,000 PHA, plus one operator account per worker) and
endpoints.json; later starts resume from HOME. It sends a demo transfer from
alice to bob, follows the launch, then prints each block until interrupted.
Pass --no-workers for the chain alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if reset {
				if err := resetHome(g.home); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			dc := devnet.Config{Home: g.home, BasePort: basePort, BlockTime: blockTime}
			if !noWorkers {
				dc.Workers, dc.Launch = devnet.DefaultWorkers(), devnet.EraLaunch()
			}
			net, err := devnet.Start(ctx, dc)
			if err != nil {
				return err
			}
			defer net.Stop()
			e := net.Endpoints
			n := e.Nodes[0]
			fmt.Fprintf(out, "Phala-Go devnet %q is running (home %s)\n", e.ChainID, g.home)
			fmt.Fprintf(out, "  CometBFT RPC  %s\n  P2P           %s\n  Metrics       %s\n  Endpoints     %s\n  Keyring       %s\n  Logs          %s\n\n",
				n.RPC, n.P2P, n.Metrics, devnet.EndpointsFile(g.home), e.Keyring, filepath.Join(g.home, "node.log"))
			if e.Attest != "" {
				fmt.Fprintf(out, "  Attestation   %s\n", e.Attest)
				for _, w := range e.Workers {
					fmt.Fprintf(out, "  %-13s %s (%s)\n", w.Name, w.PRuntime, w.Role)
				}
				fmt.Fprintln(out)
			}
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
			if net.Workers != nil {
				if err := followLaunch(ctx, out, net.Client, filepath.Join(g.home, "node.log")); err != nil {
					return err
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
	cmd.Flags().BoolVar(&noWorkers, "no-workers", false, "a new devnet runs the chain alone: no attestation service, workers or launch")
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
		fmt.Fprintf(out, "  %-12s %s  %s\n", k.Name, k.Address, bank.FormatAmount(acc.Balance))
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

// followLaunch prints the launch's progress until the network is launched.
// logs names where to look if it does not complete.
func followLaunch(ctx context.Context, out io.Writer, cl *client.Client, logs string) error {
	fmt.Fprintln(out, "\nLaunch (paper section 4.4):")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var lastRegistered int
	var lastRound uint64
	var handedOver bool
	var confirmed int
	var lastErr error
	for {
		// A node still starting (a localnet's) does not answer yet: retry.
		st, err := cl.Launch(ctx)
		var ws []*chainpb.Worker
		if err == nil {
			ws, err = cl.Workers(ctx)
		}
		if err != nil || st == nil {
			lastErr = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("the launch did not complete: %v; see %s", lastErr, logs)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if len(ws) > lastRegistered {
			for _, w := range ws[lastRegistered:] {
				if !w.Genesis {
					fmt.Fprintf(out, "  block %-5d worker %s registered (%s, measurement %s)\n", w.RegisteredHeight, shortHex(fmt.Sprintf("%x", w.SigningKey)), w.Platform, shortHex(fmt.Sprintf("%x", w.Measurement)))
				}
			}
			lastRegistered = len(ws)
		}
		if st.Round > lastRound && len(st.Elected) > 0 {
			fmt.Fprintf(out, "  round %d: %d gatekeepers elected by stake (sequential Phragmen); they must confirm by block %d\n", st.Round, len(st.Elected), st.Deadline)
			lastRound, handedOver, confirmed = st.Round, false, 0
		}
		if st.HandedOver && !handedOver {
			fmt.Fprintln(out, "  the genesis node sealed the root key to each gatekeeper")
			handedOver = true
		}
		if len(st.Confirmed) > confirmed {
			confirmed = len(st.Confirmed)
			fmt.Fprintf(out, "  %d of %d gatekeepers confirmed they hold the root key\n", confirmed, len(st.Elected))
		}
		if st.Phase == "launched" {
			h, _ := cl.Status(ctx)
			height := int64(0)
			if h != nil {
				height = h.Height
			}
			fmt.Fprintf(out, "  launched (height %d): the genesis node is retired and has erased its secrets\n", height)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the launch did not complete (phase %s); see %s", st.Phase, logs)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
