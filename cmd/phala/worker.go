package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/host"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/tee/sim"
)

func pruntimeCmd(g *globals) *cobra.Command {
	var listen, dataDir, cpuDir string
	var bootstrap bool
	cmd := &cobra.Command{
		Use:   "pruntime",
		Short: "Run a pRuntime (the enclave program) on a simulated TEE, serving its host on a local socket",
		Long: `Run a pRuntime on the sim TEE platform: a simulated CPU (keys in --cpu) running
this build of the program (its measurement is the hash of this executable). Its
secrets and synced position are sealed under --data with a key only this CPU and
this build can derive. It serves the pRuntime API to its host on --listen, a Unix
socket (unix:///path) or a loopback host:port.

With --bootstrap it first makes itself the genesis worker of a new network and
prints the identity and root public key that go into the genesis file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				dataDir = filepath.Join(g.home, "pruntime")
			}
			if cpuDir == "" {
				cpuDir = filepath.Join(g.home, "cpu")
			}
			if listen == "" {
				listen = "unix://" + filepath.Join(g.home, "pruntime.sock")
			}
			cpu, err := sim.OpenCPU(cpuDir)
			if err != nil {
				return err
			}
			m, err := sim.MeasureExecutable()
			if err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			rt, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, m), DataDir: dataDir, Logger: logger})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if bootstrap {
				b, err := rt.Bootstrap()
				if err != nil {
					return err
				}
				return emit(out, g, b, func(w io.Writer) {
					fmt.Fprintf(w, "genesis worker:\t%x\nhpke key:\t%x\nroot public key:\t%x\n", b.Identity.SigningKey, b.Identity.HpkeKey, b.RootPublicKey)
				})
			}
			ln, err := pruntime.Listen(listen)
			if err != nil {
				return err
			}
			in := rt.Info()
			fmt.Fprintf(out, "pRuntime serving on %s\n  platform     %s (CPU %x)\n  measurement  %x\n  identity     %x\n  role         %s, synced to block %d\n",
				listen, in.Platform, cpu.PublicKey(), in.Measurement, in.SigningKey, in.Role, in.Height)
			return pruntime.Serve(cmd.Context(), ln, rt)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "API address: unix:///path or 127.0.0.1:port (default unix://HOME/pruntime.sock)")
	cmd.Flags().StringVar(&dataDir, "data", "", "sealed state directory (default HOME/pruntime)")
	cmd.Flags().StringVar(&cpuDir, "cpu", "", "the simulated CPU's key directory (default HOME/cpu)")
	cmd.Flags().BoolVar(&bootstrap, "bootstrap", false, "become the genesis worker of a new network, print its keys and exit")
	return cmd
}

func hostCmd(g *globals) *cobra.Command {
	var papi, attestURL, operator, genesisFile, endpoint, stake, queryListen string
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Run a worker's host: register its pRuntime, feed it the chain, relay its messages",
		Long: `Run the untrusted host beside a pRuntime. It initialises the pRuntime with the
genesis file, registers it on chain (quote, attestation service, registration
transaction paid by --operator), optionally bonds --stake to stand as a gatekeeper
candidate, feeds it every block for verified sync, and relays the messages it signs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if papi == "" {
				papi = "unix://" + filepath.Join(g.home, "pruntime.sock")
			}
			if genesisFile == "" {
				genesisFile = filepath.Join(g.home, "node0", "config", "genesis.json")
			}
			genesis, err := os.ReadFile(genesisFile)
			if err != nil {
				return fmt.Errorf("genesis: %w (pass --genesis)", err)
			}
			kr, err := keyring.Open(devnet.KeyringDir(g.home))
			if err != nil {
				return err
			}
			op, err := kr.Get(operator)
			if err != nil {
				return fmt.Errorf("operator %q: %w", operator, err)
			}
			var amount int64
			if stake != "" {
				if amount, err = amountFlag("--stake", stake); err != nil {
					return err
				}
			}
			api, err := pruntime.Dial(papi)
			if err != nil {
				return err
			}
			defer api.Close()
			cl, err := client.New(g.nodeAddr())
			if err != nil {
				return err
			}
			if endpoint == "" && queryListen != "" {
				endpoint = "http://" + queryListen
			}
			cfg := host.Config{PRuntime: api, Chain: cl, Operator: op.PrivateKey(), Genesis: genesis, Endpoint: endpoint, Stake: uint64(amount),
				QueryListen: queryListen, Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))}
			if attestURL != "" {
				cfg.Attest = &attest.Client{URL: attestURL}
			}
			h, err := host.New(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "host relaying pRuntime %s <-> node %s as operator %s\n", papi, g.nodeAddr(), op.Address)
			return h.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&papi, "pruntime", "", "pRuntime API address (default unix://HOME/pruntime.sock)")
	cmd.Flags().StringVar(&attestURL, "attest", "", "attestation service URL (needed to register)")
	cmd.Flags().StringVar(&operator, "operator", "", "keyring name of the operator account that registers and pays")
	cmd.Flags().StringVar(&genesisFile, "genesis", "", "the chain's genesis.json (default HOME/node0/config/genesis.json)")
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "where users reach this worker (attested; default http://QUERY-LISTEN)")
	cmd.Flags().StringVar(&queryListen, "query-listen", "", "loopback host:port serving users' sealed contract queries (none if empty)")
	cmd.Flags().StringVar(&stake, "stake", "", "PHA to bond to the worker: the miner minimum to run contracts, the candidate minimum to stand as a gatekeeper (e.g. 10000)")
	cmd.MarkFlagRequired("operator")
	return cmd
}
