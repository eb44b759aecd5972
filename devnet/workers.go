package devnet

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/host"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

// WorkerSpec is one worker of a network: a pRuntime on its own simulated
// CPU, with a host whose operator account is the keyring key of the same
// name.
type WorkerSpec struct {
	Name string `json:"name"`
	// Role is "genesis", "gatekeeper" (stands for election) or "miner".
	Role string `json:"role"`
}

// DefaultWorkers: the genesis node, three gatekeeper candidates, two miners.
func DefaultWorkers() []WorkerSpec {
	return []WorkerSpec{
		{"genesis", "genesis"},
		{"gatekeeper1", "gatekeeper"}, {"gatekeeper2", "gatekeeper"}, {"gatekeeper3", "gatekeeper"},
		{"miner1", "miner"}, {"miner2", "miner"},
	}
}

// Launch parameters of a devnet: election early, a short deadline.
const (
	OperatorBalance = 100_000 * bank.UnitsPerPHA
	CandidateStake  = 10_000 * bank.UnitsPerPHA
	// MinerStake is what a devnet miner's operator bonds (and the chain's
	// minimum to run contracts).
	MinerStake = 100 * bank.UnitsPerPHA
)

// StakeFor is what a worker of role bonds once registered.
func StakeFor(role string) uint64 {
	switch role {
	case "gatekeeper":
		return CandidateStake
	case "miner":
		return MinerStake
	}
	return 0
}

// WorkerDir is where worker name keeps its simulated CPU and sealed state.
func WorkerDir(home, name string) string { return filepath.Join(home, "workers", name) }

// AttestKeyFile is the devnet attestation service's signing key.
func AttestKeyFile(home string) string { return filepath.Join(home, "attestd", "key.json") }

// PRuntimeSocket is where worker name's pRuntime serves its host.
func PRuntimeSocket(home, name string) string {
	return filepath.Join(WorkerDir(home, name), "pruntime.sock")
}

// CPUDir holds worker name's simulated CPU keys.
func CPUDir(home, name string) string { return filepath.Join(WorkerDir(home, name), "cpu") }

// PRuntimeDataDir holds worker name's sealed pRuntime state.
func PRuntimeDataDir(home, name string) string {
	return filepath.Join(WorkerDir(home, name), "pruntime")
}

// DefaultLaunch: three gatekeepers elected from block 5 (retried each block
// until three candidates stand), 30 blocks to confirm.
func DefaultLaunch() gatekeeper.Params {
	return gatekeeper.Params{NGatekeepers: 3, ElectionHeight: 5, HandoverBlocks: 30}
}

// EraLaunch is DefaultLaunch with eras of 60 blocks (a minute at `phala
// devnet`'s block time): each ends with an election, a root key rotation
// (20 blocks per attempt), the responsiveness judgement and rewards.
func EraLaunch() gatekeeper.Params {
	p := DefaultLaunch()
	p.EraBlocks, p.RotationBlocks = 60, 20
	return p
}

// platform opens worker name's simulated CPU running this build of pRuntime.
func platform(home, name string) (*sim.CPU, []byte, error) {
	cpu, err := sim.OpenCPU(CPUDir(home, name))
	if err != nil {
		return nil, nil, err
	}
	m, err := sim.MeasureExecutable()
	return cpu, m, err
}

// layoutLaunch prepares the workers of a new network and configures g for
// the launch: it bootstraps the genesis worker's pRuntime (its identity and
// root public key go into the genesis), trusts the devnet attestation
// service and allows this build's measurement (later builds are allowed by
// referendum, docs/governance.md). Operators are funded by the caller.
func layoutLaunch(home string, workers []WorkerSpec, g *chain.Genesis, p gatekeeper.Params) error {
	svcKey, err := attest.LoadOrCreateKey(AttestKeyFile(home))
	if err != nil {
		return err
	}
	m, err := sim.MeasureExecutable()
	if err != nil {
		return err
	}
	g.Registry.Params.AttestationServices = []string{hex.EncodeToString(svcKey.Public().(ed25519.PublicKey))}
	g.Registry.Measurements = []registry.Measurement{{Platform: sim.PlatformName, Measurement: hex.EncodeToString(m)}}
	g.Staking.MinCandidateStake = CandidateStake
	g.Staking.MinMinerStake = MinerStake
	for _, w := range workers {
		cpu, m, err := platform(home, w.Name)
		if err != nil {
			return err
		}
		if w.Role != "genesis" {
			continue
		}
		rt, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, m), DataDir: PRuntimeDataDir(home, w.Name)})
		if err != nil {
			return err
		}
		b, err := rt.Bootstrap()
		if err != nil {
			return err
		}
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: b.Identity.SigningKey, HPKEKey: b.Identity.HpkeKey}
		g.Gatekeeper = &gatekeeper.Genesis{Params: p, RootPublicKey: b.RootPublicKey}
	}
	if g.Gatekeeper == nil {
		return errors.New("devnet: the launch needs a worker with role genesis")
	}
	b, _ := json.MarshalIndent(workers, "", "  ")
	return os.WriteFile(workersFile(home), b, 0o600)
}

// WorkerCPUs lists the public keys of the workers' simulated CPUs: the
// attestation service's known CPUs.
func WorkerCPUs(home string, specs []WorkerSpec) ([]ed25519.PublicKey, error) {
	var cpus []ed25519.PublicKey
	for _, w := range specs {
		cpu, err := sim.OpenCPU(CPUDir(home, w.Name))
		if err != nil {
			return nil, err
		}
		cpus = append(cpus, cpu.PublicKey())
	}
	return cpus, nil
}

// Workers is a running set of attestation service, pRuntimes and hosts.
type Workers struct {
	Attest   *attest.Server
	Runtimes map[string]*pruntime.Runtime
	cancel   context.CancelFunc
	mu       sync.Mutex
	hosts    map[string]context.CancelFunc
	wg       sync.WaitGroup
}

// startWorkers starts the attestation service on attestAddr and every
// worker: its pRuntime serving on a Unix socket, and a host reaching it
// through that socket (the same API a separate pRuntime process serves).
func startWorkers(ctx context.Context, home, attestAddr, rpc string, genesis []byte, kr *keyring.Keyring, specs []WorkerSpec, queryPort func(i int) int, logger *slog.Logger) (*Workers, error) {
	svcKey, err := attest.LoadOrCreateKey(AttestKeyFile(home))
	if err != nil {
		return nil, err
	}
	var cpus []ed25519.PublicKey
	platforms := make([]tee.Platform, len(specs))
	for i, w := range specs {
		cpu, m, err := platform(home, w.Name)
		if err != nil {
			return nil, err
		}
		cpus = append(cpus, cpu.PublicKey())
		platforms[i] = sim.New(cpu, m)
	}
	ctx, cancel := context.WithCancel(ctx)
	ws := &Workers{Runtimes: map[string]*pruntime.Runtime{}, cancel: cancel, hosts: map[string]context.CancelFunc{}}
	ws.Attest, err = attest.Start(ctx, attestAddr, attest.ServiceConfig{SigningKey: svcKey, KnownCPUs: cpus})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("attestation service: %w", err)
	}
	for i, w := range specs {
		if err := ws.startWorker(ctx, home, rpc, genesis, kr, w, platforms[i], queryPort(i), logger.With("worker", w.Name)); err != nil {
			ws.Stop()
			return nil, fmt.Errorf("worker %s: %w", w.Name, err)
		}
	}
	return ws, nil
}

func (ws *Workers) startWorker(ctx context.Context, home, rpc string, genesis []byte, kr *keyring.Keyring, w WorkerSpec, p tee.Platform, queryPort int, logger *slog.Logger) error {
	rt, err := pruntime.New(pruntime.Config{Platform: p, DataDir: PRuntimeDataDir(home, w.Name), Logger: logger.With("part", "pruntime")})
	if err != nil {
		return err
	}
	ln, err := pruntime.Listen(PRuntimeSocket(home, w.Name))
	if err != nil {
		return err
	}
	ws.Runtimes[w.Name] = rt
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		if err := pruntime.Serve(ctx, ln, rt); err != nil {
			logger.Error("pRuntime API stopped", "err", err)
		}
	}()
	api, err := pruntime.Dial(PRuntimeSocket(home, w.Name))
	if err != nil {
		return err
	}
	op, err := kr.Get(w.Name)
	if err != nil {
		return err
	}
	cl, err := client.New(rpc)
	if err != nil {
		return err
	}
	cfg := host.Config{PRuntime: api, Chain: cl, Operator: op.PrivateKey(), Genesis: genesis, Logger: logger.With("part", "host")}
	if w.Role != "genesis" {
		cfg.QueryListen = fmt.Sprintf("127.0.0.1:%d", queryPort)
		cfg.Endpoint = "http://" + cfg.QueryListen
	}
	if w.Role != "genesis" {
		cfg.Attest = &attest.Client{URL: ws.Attest.URL()}
	}
	cfg.Stake = StakeFor(w.Role)
	h, err := host.New(cfg)
	if err != nil {
		return err
	}
	hctx, stop := context.WithCancel(ctx)
	ws.mu.Lock()
	ws.hosts[w.Name] = stop
	ws.mu.Unlock()
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		defer api.Close()
		h.Run(hctx)
	}()
	return nil
}

// StopHost stops worker name's host and leaves its pRuntime running
// unfed: what an operator whose host dies, or who holds it back, sees.
// Its pRuntime stops syncing and posting side effects.
func (ws *Workers) StopHost(name string) error {
	ws.mu.Lock()
	stop := ws.hosts[name]
	ws.mu.Unlock()
	if stop == nil {
		return fmt.Errorf("devnet: no worker named %q", name)
	}
	stop()
	return nil
}

// Stop stops every host, pRuntime and the attestation service.
func (ws *Workers) Stop() {
	ws.cancel()
	ws.wg.Wait()
	if ws.Attest != nil {
		ws.Attest.Close()
	}
}

// WaitLaunched blocks until the chain has launched, or ctx ends.
func WaitLaunched(ctx context.Context, cl *client.Client) (*chainpb.LaunchState, error) {
	for {
		st, err := cl.Launch(ctx)
		if err == nil && st != nil && st.Phase == string(gatekeeper.PhaseLaunched) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			phase := "unknown"
			if st != nil {
				phase = st.Phase
			}
			return nil, fmt.Errorf("waiting for launch (phase %s): %w", phase, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
