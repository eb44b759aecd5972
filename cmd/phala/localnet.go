package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/node"
)

type localnetFlags struct {
	validators int
	basePort   int
	blockTime  time.Duration
	chainID    string
}

func (f *localnetFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.validators, "validators", 4, "number of validator processes")
	cmd.Flags().IntVar(&f.basePort, "base-port", 26657, "first port; node i listens from base-port+10*i")
	cmd.Flags().DurationVar(&f.blockTime, "block-time", time.Second, "pause between blocks")
	cmd.Flags().StringVar(&f.chainID, "chain-id", "phala-localnet", "chain id of a new network")
}

// localnetHome defaults --home to ~/.phala/localnet so a localnet never
// lands in the devnet's directory.
func localnetHome(cmd *cobra.Command, g *globals) string {
	if cmd.Flags().Changed("home") || os.Getenv("PHALA_HOME") != "" {
		return g.home
	}
	return filepath.Join(filepath.Dir(defaultHome()), "localnet")
}

// initLocalnet lays out the network unless it exists, and returns its endpoints.
func initLocalnet(home string, f localnetFlags) (devnet.Endpoints, bool, error) {
	if _, err := os.Stat(filepath.Join(node.NodeHome(home, 0), "config", "genesis.json")); err == nil {
		old, err := devnet.ReadEndpoints(home)
		if err != nil {
			return old, false, fmt.Errorf("%s holds a network but no readable endpoints.json: %w", home, err)
		}
		if len(old.Nodes) != f.validators {
			return old, false, fmt.Errorf("%s holds a %d-validator network; use --validators %d or another --home", home, len(old.Nodes), len(old.Nodes))
		}
		return old, false, nil
	}
	e, err := devnet.Init(home, devnet.Layout{ChainID: f.chainID, Validators: f.validators, BasePort: f.basePort, BlockTime: f.blockTime})
	return e, err == nil, err
}

func printLocalnet(w io.Writer, home string, e devnet.Endpoints) {
	fmt.Fprintf(w, "localnet %q in %s\n", e.ChainID, home)
	for _, n := range e.Nodes {
		fmt.Fprintf(w, "  %s  rpc %s  p2p %s  metrics %s\n", n.Name, n.RPC, n.P2P, n.Metrics)
	}
	fmt.Fprintf(w, "  endpoints %s\n", devnet.EndpointsFile(home))
}

func localnetCmd(g *globals) *cobra.Command {
	var f localnetFlags
	cmd := &cobra.Command{
		Use:   "localnet",
		Short: "Run a multi-validator network as separate processes on loopback",
		Long: `Run N validators, each a separate ` + "`phala node`" + ` process on 127.0.0.1. The network is
created on first start (see ` + "`phala localnet init`" + `). Each node logs to HOME/nodeI/node.log
and records its pid in HOME/nodeI/node.pid. Ctrl-C stops them all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home := localnetHome(cmd, g)
			e, _, err := initLocalnet(home, f)
			if err != nil {
				return err
			}
			return superviseLocalnet(cmd, home, e)
		},
	}
	f.register(cmd)
	var fi localnetFlags
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a localnet's node homes, keyring and endpoints.json without starting it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home := localnetHome(cmd, g)
			e, created, err := initLocalnet(home, fi)
			if err != nil {
				return err
			}
			if !created {
				return fmt.Errorf("%s already holds a network; remove it or choose another --home", home)
			}
			return emit(cmd.OutOrStdout(), g, e, func(w io.Writer) { printLocalnet(w, home, e) })
		},
	}
	fi.register(initCmd)
	cmd.AddCommand(initCmd)
	return cmd
}

func superviseLocalnet(cmd *cobra.Command, home string, e devnet.Endpoints) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	type exit struct {
		i   int
		err error
	}
	exits := make(chan exit, len(e.Nodes))
	procs := make([]*exec.Cmd, len(e.Nodes))
	for i, n := range e.Nodes {
		logf, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		p := exec.Command(self, "node", "--home", n.Home)
		p.Stdout, p.Stderr = logf, logf
		p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us, and we stop them in order
		if err := p.Start(); err != nil {
			logf.Close()
			stopAll(procs)
			return fmt.Errorf("start %s: %w", n.Name, err)
		}
		procs[i] = p
		go func() { exits <- exit{i, p.Wait()}; logf.Close() }()
	}
	printLocalnet(out, home, e)
	fmt.Fprintln(out, "running; Ctrl-C stops every node")
	running := len(procs)
	for running > 0 {
		select {
		case <-cmd.Context().Done():
			stopAll(procs)
			for running > 0 {
				<-exits
				running--
			}
			fmt.Fprintln(out, "stopped")
			return nil
		case x := <-exits:
			running--
			n := e.Nodes[x.i]
			fmt.Fprintf(out, "%s exited (%v); the others keep running. Restart it with: %s node --home %s\n", n.Name, x.err, self, n.Home)
		}
	}
	return errors.New("every node has exited; see their node.log files")
}

// stopAll asks every running node to stop, and kills those that do not
// within 15 s.
func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		if p != nil && p.Process != nil {
			p.Process.Signal(syscall.SIGTERM)
		}
	}
	go func() {
		time.Sleep(15 * time.Second)
		for _, p := range procs {
			if p != nil && p.Process != nil {
				p.Process.Kill()
			}
		}
	}()
}
