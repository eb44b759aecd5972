package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/node"
)

type localnetFlags struct {
	validators int
	basePort   int
	blockTime  time.Duration
	chainID    string
	noWorkers  bool
	// The gatekeepers and eras of a new network (docs/eras.md).
	gatekeepers     int
	seats           int
	eraBlocks       int64
	rotationBlocks  int64
	heartbeatBlocks int64
}

func (f *localnetFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.validators, "validators", 4, "number of validator processes")
	cmd.Flags().IntVar(&f.basePort, "base-port", 26657, "first port; node i listens from base-port+10*i, the attestation service on base-port+3")
	cmd.Flags().DurationVar(&f.blockTime, "block-time", time.Second, "pause between blocks")
	cmd.Flags().StringVar(&f.chainID, "chain-id", "phala-localnet", "chain id of a new network")
	cmd.Flags().BoolVar(&f.noWorkers, "no-workers", false, "a new network runs validators only: no attestation service, workers or launch")
	cmd.Flags().IntVar(&f.gatekeepers, "gatekeepers", 3, "gatekeeper candidates of a new network (workers gatekeeper1…N, each bonding 10,000 PHA)")
	cmd.Flags().IntVar(&f.seats, "seats", 0, "gatekeepers a new network elects, at the launch and each era, at most --gatekeepers (0: 3, or --gatekeepers if fewer)")
	cmd.Flags().Int64Var(&f.eraBlocks, "era-blocks", 0, "era length of a new network, in blocks: each era's last block judges responsiveness, pays rewards, re-elects the gatekeepers and rotates the root key (0: no eras)")
	cmd.Flags().Int64Var(&f.rotationBlocks, "rotation-blocks", 0, "blocks a root key rotation attempt of a new network has before it expires and the stalled are slashed (0: a third of --era-blocks, at least 3)")
	cmd.Flags().Int64Var(&f.heartbeatBlocks, "heartbeat-blocks", 0, "heartbeat interval of a new network's pRuntimes, in blocks (0: the chain's default, 10, or a quarter of --era-blocks if that is less)")
}

// workers are a new network's workers: devnet.DefaultWorkers with
// --gatekeepers candidates in place of its three.
func (f localnetFlags) workers() []devnet.WorkerSpec {
	var out, rest []devnet.WorkerSpec
	for _, w := range devnet.DefaultWorkers() {
		switch w.Role {
		case "genesis":
			out = append(out, w)
		case "gatekeeper":
		default:
			rest = append(rest, w)
		}
	}
	for i := range f.gatekeepers {
		out = append(out, devnet.WorkerSpec{Name: fmt.Sprintf("gatekeeper%d", i+1), Role: "gatekeeper"})
	}
	return append(out, rest...)
}

// layout applies the gatekeeper and era flags to l, checking them first.
// With their defaults l keeps devnet.DefaultLaunch and the default genesis.
func (f localnetFlags) layout(l *devnet.Layout) error {
	if f.gatekeepers < 1 {
		return fmt.Errorf("--gatekeepers must be at least 1, got %d", f.gatekeepers)
	}
	p := devnet.DefaultLaunch()
	if f.seats != 0 {
		p.NGatekeepers = f.seats
	}
	p.NGatekeepers = min(p.NGatekeepers, f.gatekeepers)
	if f.seats < 0 || f.seats > f.gatekeepers {
		return fmt.Errorf("--seats must be from 1 to --gatekeepers (%d), got %d: the launch waits for as many candidates as seats", f.gatekeepers, f.seats)
	}
	if f.eraBlocks < 0 || f.rotationBlocks < 0 || f.heartbeatBlocks < 0 {
		return errors.New("--era-blocks, --rotation-blocks and --heartbeat-blocks must not be negative")
	}
	rotation, heartbeat := f.rotationBlocks, f.heartbeatBlocks
	if f.eraBlocks == 0 && rotation > 0 {
		return errors.New("--rotation-blocks needs --era-blocks: without eras the root key never rotates")
	}
	if f.eraBlocks > 0 {
		if f.eraBlocks < 4 {
			return fmt.Errorf("--era-blocks must be at least 4 (a rotation attempt needs 3 blocks), got %d", f.eraBlocks)
		}
		if rotation == 0 {
			rotation = max(f.eraBlocks/3, 3)
		}
		if rotation < 3 || rotation >= f.eraBlocks {
			return fmt.Errorf("--rotation-blocks must be from 3 to --era-blocks - 1 (%d), got %d", f.eraBlocks-1, rotation)
		}
		if heartbeat == 0 {
			heartbeat = min(monitor.DefaultParams().HeartbeatBlocks, f.eraBlocks/4)
		}
		if 4*heartbeat > f.eraBlocks {
			return fmt.Errorf("--heartbeat-blocks must fit at least 4 times in an era: at most %d with --era-blocks %d, got %d", f.eraBlocks/4, f.eraBlocks, heartbeat)
		}
	}
	p.EraBlocks, p.RotationBlocks = f.eraBlocks, rotation
	l.Workers, l.Launch = f.workers(), p
	if heartbeat > 0 {
		l.TuneGenesis = func(g *chain.Genesis) { g.Monitor = &monitor.Params{HeartbeatBlocks: heartbeat} }
	}
	return nil
}

// localnetHome defaults --home to ~/.phala/localnet so a localnet never
// lands in the devnet's directory.
func localnetHome(cmd *cobra.Command, g *globals) string {
	if cmd.Flags().Changed("home") || os.Getenv("PHALA_HOME") != "" {
		return g.home
	}
	return filepath.Join(filepath.Dir(defaultHome()), "localnet")
}

// attestdConfigFile is the localnet attestation service's configuration.
func attestdConfigFile(home string) string { return filepath.Join(home, "attestd", "attestd.toml") }

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
	l := devnet.Layout{ChainID: f.chainID, Validators: f.validators, BasePort: f.basePort, BlockTime: f.blockTime}
	if !f.noWorkers {
		if err := f.layout(&l); err != nil {
			return devnet.Endpoints{}, false, err
		}
	}
	e, err := devnet.Init(home, l)
	if err != nil || f.noWorkers {
		return e, err == nil, err
	}
	// The workers: an attestation service that knows their CPUs, and each
	// pRuntime on a Unix socket in its worker directory.
	cpus, err := devnet.WorkerCPUs(home, l.Workers)
	if err != nil {
		return e, false, err
	}
	conf := attestdConfig{Listen: fmt.Sprintf("127.0.0.1:%d", devnet.AttestPort(f.basePort)), KeyFile: "key.json"}
	for _, c := range cpus {
		conf.KnownCPUs = append(conf.KnownCPUs, hex.EncodeToString(c))
	}
	var buf strings.Builder
	if err := toml.NewEncoder(&buf).Encode(conf); err != nil {
		return e, false, err
	}
	if err := os.WriteFile(attestdConfigFile(home), []byte(buf.String()), 0o600); err != nil {
		return e, false, err
	}
	e.Attest = "http://" + conf.Listen
	for i, w := range l.Workers {
		we := devnet.WorkerEndpoint{Name: w.Name, Role: w.Role, PRuntime: "unix://" + devnet.PRuntimeSocket(home, w.Name)}
		if w.Role != "genesis" {
			we.Query = devnet.QueryEndpoint(f.basePort, l.Validators, i)
		}
		e.Workers = append(e.Workers, we)
	}
	return e, true, devnet.WriteEndpoints(home, e)
}

func printLocalnet(w io.Writer, home string, e devnet.Endpoints) {
	fmt.Fprintf(w, "localnet %q in %s\n", e.ChainID, home)
	for _, n := range e.Nodes {
		fmt.Fprintf(w, "  %s  rpc %s  p2p %s  metrics %s\n", n.Name, n.RPC, n.P2P, n.Metrics)
	}
	if e.Attest != "" {
		fmt.Fprintf(w, "  attestd  %s\n", e.Attest)
	}
	for _, wk := range e.Workers {
		fmt.Fprintf(w, "  %-11s pRuntime %s (%s)\n", wk.Name, wk.PRuntime, wk.Role)
	}
	fmt.Fprintf(w, "  endpoints %s\n", devnet.EndpointsFile(home))
}

func localnetCmd(g *globals) *cobra.Command {
	var f localnetFlags
	cmd := &cobra.Command{
		Use:   "localnet",
		Short: "Run a multi-validator network with its workers as separate processes on loopback",
		Long: `Run N validators, each a separate ` + "`phala node`" + ` process on 127.0.0.1, and the
workers, each a ` + "`phala pruntime`" + ` process with a ` + "`phala host`" + ` process beside it, plus
the attestation service (` + "`phala attestd`" + `): the genesis node, three gatekeeper
candidates (--gatekeepers) and two miners, which launch the network by themselves.

The network is created on first start (see ` + "`phala localnet init`" + `). Each process
logs to a file next to its data (HOME/nodeI/node.log, HOME/workers/NAME/pruntime.log
and host.log, HOME/attestd/attestd.log) and records its pid beside it (.pid). A
process that exits on its own is restarted after a second, as a service manager
would; one that keeps failing within seconds of its start is given up on. Ctrl-C
stops them all.

To hold a process down (runit's convention), create a .down file beside its log,
e.g. HOME/workers/miner1/pruntime.down or HOME/workers/miner1/host.down: while it
exists, the process is not restarted when it exits (stop it yourself, e.g. kill
the pid in its .pid file) and is not started when the localnet starts. Remove
the file and the process is started again within about a second.

Gatekeepers and eras (docs/eras.md) are set when a network is created and kept
for its life. --gatekeepers N runs N gatekeeper candidates (gatekeeper1…N), of
which --seats are elected (default 3 of 3; a fourth candidate lets an election
or an expired rotation replace a gatekeeper). --era-blocks N cuts the chain into
eras of N blocks: the last block of each judges responsiveness (heartbeats every
--heartbeat-blocks), pays the era's rewards, re-elects the gatekeepers and starts
a root key rotation with --rotation-blocks per attempt. Without --era-blocks the
launch's gatekeepers and root key stay. For example, eras of 40 blocks (about
12 s) with a spare candidate:

  phala localnet --validators 1 --block-time 300ms --gatekeepers 4 --era-blocks 40`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home := localnetHome(cmd, g)
			e, _, err := initLocalnet(home, f)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			procs := localnetProcesses(home, e)
			unlock, err := lockLocalnet(home)
			if err != nil {
				return err
			}
			defer unlock()
			return supervise(cmd.Context(), cmd.OutOrStdout(), self, home, e, procs)
		},
	}
	f.register(cmd)
	var fi localnetFlags
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a localnet's node homes, keyring, workers and endpoints.json without starting it",
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

// process is one program the localnet supervisor runs.
type process struct {
	Name string
	Args []string // after the executable
	Log  string   // output file; the pid goes to Log with .pid for .log
}

func (p process) pidFile() string { return strings.TrimSuffix(p.Log, ".log") + ".pid" }

// downFile is Log with .down for .log: while it exists the supervisor
// leaves the process stopped (runit's convention).
func (p process) downFile() string { return strings.TrimSuffix(p.Log, ".log") + ".down" }

func (p process) held() bool {
	_, err := os.Stat(p.downFile())
	return err == nil
}

// localnetProcesses lists a localnet's programs in start order: validators,
// the attestation service, pRuntimes, hosts. Hosts spread over the
// validators' RPC endpoints.
func localnetProcesses(home string, e devnet.Endpoints) []process {
	var ps []process
	for _, n := range e.Nodes {
		ps = append(ps, process{Name: n.Name, Args: []string{"node", "--home", n.Home}, Log: filepath.Join(n.Home, "node.log")})
	}
	if len(e.Workers) == 0 {
		return ps
	}
	ps = append(ps, process{Name: "attestd", Args: []string{"attestd", "--home", home, "--config", attestdConfigFile(home)},
		Log: filepath.Join(home, "attestd", "attestd.log")})
	for _, w := range e.Workers {
		ps = append(ps, process{Name: w.Name + "/pruntime", Log: filepath.Join(devnet.WorkerDir(home, w.Name), "pruntime.log"),
			Args: []string{"pruntime", "--home", home, "--listen", w.PRuntime, "--data", devnet.PRuntimeDataDir(home, w.Name), "--cpu", devnet.CPUDir(home, w.Name)}})
	}
	genesis := filepath.Join(node.NodeHome(home, 0), "config", "genesis.json")
	for i, w := range e.Workers {
		args := []string{"host", "--home", home, "--node", e.Nodes[i%len(e.Nodes)].RPC, "--pruntime", w.PRuntime, "--operator", w.Name, "--genesis", genesis}
		if w.Query != "" {
			args = append(args, "--query-listen", strings.TrimPrefix(w.Query, "http://"))
		}
		if w.Role != "genesis" {
			args = append(args, "--attest", e.Attest)
		}
		if s := devnet.StakeFor(w.Role); s > 0 {
			args = append(args, "--stake", strconv.FormatUint(s/bank.UnitsPerPHA, 10))
		}
		ps = append(ps, process{Name: w.Name + "/host", Args: args, Log: filepath.Join(devnet.WorkerDir(home, w.Name), "host.log")})
	}
	return ps
}

// lockLocalnet records this supervisor in HOME/localnet.pid, refusing if
// another live supervisor holds it: two would run two pRuntimes on one
// sealed state.
func lockLocalnet(home string) (func(), error) {
	file := filepath.Join(home, "localnet.pid")
	if b, err := os.ReadFile(file); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != os.Getpid() {
			if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
				return nil, fmt.Errorf("a localnet supervisor (pid %d) already runs from %s; stop it first", pid, home)
			}
		}
	}
	if err := os.WriteFile(file, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return func() { os.Remove(file) }, nil
}

// Restart policy: a process that exits on its own is restarted after
// restartDelay; one that exits within quickExit of its start quickFailures
// times in a row is given up on. One whose down file exists is left
// stopped; the supervisor looks for the file's removal every downPoll.
const (
	restartDelay  = time.Second
	quickExit     = 10 * time.Second
	quickFailures = 3
	downPoll      = 250 * time.Millisecond
)

// lockedWriter serialises the supervisor's and the launch follower's lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// supervise runs procs until ctx ends, then stops them all. A process
// whose down file exists is not started or restarted until it is removed.
func supervise(ctx context.Context, w io.Writer, self, home string, e devnet.Endpoints, procs []process) error {
	out := &lockedWriter{w: w}
	type exit struct {
		i   int
		err error
		ran time.Duration
	}
	exits := make(chan exit, len(procs))
	running := make([]*exec.Cmd, len(procs))
	startOne := func(i int) error {
		p := procs[i]
		logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		c := exec.Command(self, p.Args...)
		c.Stdout, c.Stderr = logf, logf
		c.SysProcAttr = childProcAttr()
		if err := c.Start(); err != nil {
			logf.Close()
			return fmt.Errorf("start %s: %w", p.Name, err)
		}
		os.WriteFile(p.pidFile(), []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o600)
		running[i] = c
		t0 := time.Now()
		go func() {
			err := c.Wait()
			logf.Close()
			os.Remove(p.pidFile())
			exits <- exit{i, err, time.Since(t0)}
		}()
		return nil
	}
	held := make([]bool, len(procs)) // stopped while its down file exists
	nheld := 0
	hold := func(i int) {
		held[i] = true
		nheld++
		fmt.Fprintf(out, "%s stays down while %s exists; remove that file to start it\n", procs[i].Name, procs[i].downFile())
	}
	alive := 0
	for i := range procs {
		if procs[i].held() {
			hold(i)
			continue
		}
		if err := startOne(i); err != nil {
			stopAll(running)
			return err
		}
		alive++
	}
	printLocalnet(out, home, e)
	fmt.Fprintln(out, "running; Ctrl-C stops every process")
	if len(e.Workers) > 0 {
		go func() {
			if cl, err := client.New(e.RPC); err == nil {
				if err := followLaunch(ctx, out, cl, "the processes' .log files"); err != nil && ctx.Err() == nil {
					fmt.Fprintln(out, err)
				}
			}
		}()
	}
	failures := make([]int, len(procs))
	restart := make(chan int, len(procs))
	pending := 0 // exited processes waiting for their restart
	poll := time.NewTicker(downPoll)
	defer poll.Stop()
	for alive+pending+nheld > 0 {
		select {
		case <-ctx.Done():
			stopAll(running)
			for alive > 0 {
				<-exits
				alive--
			}
			fmt.Fprintln(out, "stopped")
			return nil
		case x := <-exits:
			alive--
			running[x.i] = nil
			p := procs[x.i]
			if p.held() {
				fmt.Fprintf(out, "%s exited (%v); not restarting it\n", p.Name, x.err)
				failures[x.i] = 0
				hold(x.i)
				continue
			}
			if x.ran < quickExit {
				failures[x.i]++
			} else {
				failures[x.i] = 0
			}
			if failures[x.i] >= quickFailures {
				fmt.Fprintf(out, "%s exited (%v) %d times within %s of starting; not restarting it. See %s; start it by hand with: %s %s\n",
					p.Name, x.err, quickFailures, quickExit, p.Log, self, strings.Join(p.Args, " "))
				continue
			}
			fmt.Fprintf(out, "%s exited (%v); restarting it in %s\n", p.Name, x.err, restartDelay)
			pending++
			go func() { time.Sleep(restartDelay); restart <- x.i }()
		case i := <-restart:
			pending--
			if procs[i].held() {
				hold(i)
				continue
			}
			if err := startOne(i); err != nil {
				fmt.Fprintf(out, "%v; not restarting it\n", err)
				continue
			}
			alive++
			fmt.Fprintf(out, "%s restarted (pid %d)\n", procs[i].Name, running[i].Process.Pid)
		case <-poll.C:
			for i, p := range procs {
				if !held[i] || p.held() {
					continue
				}
				held[i] = false
				nheld--
				failures[i] = 0
				if err := startOne(i); err != nil {
					fmt.Fprintf(out, "%v; not starting it\n", err)
					continue
				}
				alive++
				fmt.Fprintf(out, "%s started (pid %d): %s was removed\n", p.Name, running[i].Process.Pid, p.downFile())
			}
		}
	}
	return errors.New("every process has exited; see their .log files")
}

// stopAll asks every running process to stop, and kills those that do not
// within 15 s.
func stopAll(running []*exec.Cmd) {
	procs := append([]*exec.Cmd(nil), running...)
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
