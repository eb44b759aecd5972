// Package devnet assembles a whole Phala-Go network in one process: the
// embedded default behind `phala devnet`, and the cluster helper tests use.
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	cfg "github.com/cometbft/cometbft/config"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/node"
	"github.com/phala-go/phala/proto/chainpb"
)

// Config describes a devnet. Zero fields take the defaults noted.
type Config struct {
	// Home holds everything: node data, the keyring, endpoints.json. Required.
	Home string
	// BasePort is the first port; every listener is on 127.0.0.1 from it
	// upward. Default 26657.
	BasePort int
	// BlockTime is the pause between blocks. Default 1 s.
	BlockTime time.Duration
	// ChainID of a new devnet. Default "phala-devnet".
	ChainID string
	// DevAccounts and DevBalance of a new devnet: see Layout.
	DevAccounts []string
	DevBalance  uint64
	// Logger receives node logs. Default: HOME/node.log.
	Logger *slog.Logger
	// Comet, if set, adjusts the CometBFT config before start.
	Comet func(*cfg.Config)
	// Workers of a new devnet; nil runs the chain alone (no launch). Use
	// DefaultWorkers for the attestation service, genesis node, three
	// gatekeepers and two miners that go through the launch by themselves.
	Workers []WorkerSpec
	// Launch tunes the launch of a new devnet with workers. Default:
	// three gatekeepers elected from block 5, 30 blocks to confirm.
	Launch gatekeeper.Params
	// TuneGenesis, if set, adjusts a new devnet's genesis (for example
	// registry parameters) after the defaults are applied.
	TuneGenesis func(*chain.Genesis)
}

func (c *Config) defaults() error {
	if c.Home == "" {
		return errors.New("devnet: Config.Home is required")
	}
	if c.BasePort == 0 {
		c.BasePort = 26657
	}
	if c.BlockTime == 0 {
		c.BlockTime = time.Second
	}
	if c.ChainID == "" {
		c.ChainID = "phala-devnet"
	}
	if c.Launch == (gatekeeper.Params{}) {
		c.Launch = DefaultLaunch()
	}
	return nil
}

// Endpoints is every listener of a network, written to HOME/endpoints.json.
type Endpoints struct {
	ChainID string         `json:"chain_id"`
	RPC     string         `json:"rpc"`
	Nodes   []NodeEndpoint `json:"nodes"`
	Keyring string         `json:"keyring"`
	// Attest is the attestation service's URL, if the network runs one.
	Attest  string           `json:"attest,omitempty"`
	Workers []WorkerEndpoint `json:"workers,omitempty"`
}

// WorkerEndpoint is one worker's pRuntime API.
type WorkerEndpoint struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	PRuntime string `json:"pruntime"`
	// Query is the host's endpoint for users' contract queries (also
	// registered on chain as the worker's endpoint).
	Query string `json:"query,omitempty"`
}

// NodeEndpoint is one node's listeners.
type NodeEndpoint struct {
	Name    string `json:"name"`
	Home    string `json:"home"`
	RPC     string `json:"rpc"`
	P2P     string `json:"p2p"`
	Metrics string `json:"metrics"`
}

// EndpointsFile is where a network's endpoints are written.
func EndpointsFile(home string) string { return filepath.Join(home, "endpoints.json") }

// KeyringDir is the keyring of a network home.
func KeyringDir(home string) string { return filepath.Join(home, "keyring") }

// WriteEndpoints writes e to HOME/endpoints.json.
func WriteEndpoints(home string, e Endpoints) error {
	b, _ := json.MarshalIndent(e, "", "  ")
	return os.WriteFile(EndpointsFile(home), append(b, '\n'), 0o644)
}

// ReadEndpoints reads HOME/endpoints.json.
func ReadEndpoints(home string) (Endpoints, error) {
	var e Endpoints
	b, err := os.ReadFile(EndpointsFile(home))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(b, &e)
}

// NodeEndpoints lists the listeners of the node whose home is home.
func NodeEndpoints(name, home string, ports node.Ports) NodeEndpoint {
	return NodeEndpoint{
		Name:    name,
		Home:    home,
		RPC:     fmt.Sprintf("http://127.0.0.1:%d", ports.RPC()),
		P2P:     fmt.Sprintf("tcp://127.0.0.1:%d", ports.P2P()),
		Metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports.Metrics()),
	}
}

// Network is a running devnet.
type Network struct {
	Config    Config
	Node      *node.Node
	Keyring   *keyring.Keyring
	Endpoints Endpoints
	Client    *client.Client
	// Workers are the devnet's attestation service and workers, if any.
	Workers *Workers
	logFile *os.File
}

// Layout is a network to lay out with Init. Zero fields take the defaults
// noted.
type Layout struct {
	ChainID    string
	Validators int
	// BasePort is node 0's first port; node i starts at BasePort+10·i.
	BasePort  int
	BlockTime time.Duration
	// DevAccounts are created in the keyring and funded at genesis from the
	// developers and community share. Default alice and bob.
	DevAccounts []string
	// DevBalance is each dev account's genesis balance in uPHA. Default
	// 1,000,000 PHA.
	DevBalance uint64
	// Workers, if any, are laid out for the launch (see Config.Workers);
	// each operator key is funded with OperatorBalance.
	Workers []WorkerSpec
	// Launch tunes the launch. Default DefaultLaunch.
	Launch gatekeeper.Params
	// TuneGenesis, if set, adjusts the genesis last.
	TuneGenesis func(*chain.Genesis)
}

// LayoutEndpoints lists the listeners a network laid out under home uses.
func LayoutEndpoints(home, chainID string, validators, basePort int) Endpoints {
	e := Endpoints{ChainID: chainID, Keyring: KeyringDir(home)}
	for i := range validators {
		ports := node.Ports{Base: basePort + i*node.PortStride}
		e.Nodes = append(e.Nodes, NodeEndpoints(fmt.Sprintf("node%d", i), node.NodeHome(home, i), ports))
	}
	e.RPC = e.Nodes[0].RPC
	return e
}

// Init lays out a new network under home: the keyring with funded dev
// accounts, one home per validator (node.InitNetwork, which refuses to
// overwrite), and endpoints.json.
func Init(home string, l Layout) (Endpoints, error) {
	if l.DevAccounts == nil {
		l.DevAccounts = []string{"alice", "bob"}
	}
	if l.DevBalance == 0 {
		l.DevBalance = 1_000_000 * bank.UnitsPerPHA
	}
	kr, err := keyring.Open(KeyringDir(home))
	if err != nil {
		return Endpoints{}, err
	}
	var grants []bank.Grant
	for _, name := range l.DevAccounts {
		k, err := kr.Get(name)
		if errors.Is(err, keyring.ErrNotFound) {
			k, err = kr.Add(name)
		}
		if err != nil {
			return Endpoints{}, err
		}
		grants = append(grants, bank.Grant{Name: name, Category: "developers_community", Address: k.Address, Amount: l.DevBalance})
	}
	for _, w := range l.Workers {
		k, err := kr.Get(w.Name)
		if errors.Is(err, keyring.ErrNotFound) {
			k, err = kr.Add(w.Name)
		}
		if err != nil {
			return Endpoints{}, err
		}
		grants = append(grants, bank.Grant{Name: w.Name, Category: "developers_community", Address: k.Address, Amount: OperatorBalance})
	}
	g, err := chain.DefaultGenesis(grants...)
	if err != nil {
		return Endpoints{}, err
	}
	if len(l.Workers) > 0 {
		if l.Launch == (gatekeeper.Params{}) {
			l.Launch = DefaultLaunch()
		}
		if err := layoutLaunch(home, l.Workers, &g, l.Launch); err != nil {
			return Endpoints{}, err
		}
	}
	if l.TuneGenesis != nil {
		l.TuneGenesis(&g)
	}
	if _, err := node.InitNetwork(home, node.NetworkSpec{
		ChainID: l.ChainID, Validators: l.Validators, BasePort: l.BasePort, BlockTime: l.BlockTime,
		Genesis: g, App: node.DefaultAppConfig(),
	}); err != nil {
		return Endpoints{}, err
	}
	e := LayoutEndpoints(home, l.ChainID, l.Validators, l.BasePort)
	return e, WriteEndpoints(home, e)
}

// Start creates the devnet under cfg.Home if it is new, or resumes it, and
// starts it. Ports are taken from cfg.BasePort on every start.
func Start(ctx context.Context, c Config) (*Network, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Home, 0o700); err != nil {
		return nil, err
	}
	home := node.NodeHome(c.Home, 0)
	ports := node.Ports{Base: c.BasePort}
	if _, err := os.Stat(filepath.Join(home, "config", "genesis.json")); errors.Is(err, os.ErrNotExist) {
		if _, err := Init(c.Home, Layout{
			ChainID: c.ChainID, Validators: 1, BasePort: c.BasePort, BlockTime: c.BlockTime,
			DevAccounts: c.DevAccounts, DevBalance: c.DevBalance, Workers: c.Workers, Launch: c.Launch, TuneGenesis: c.TuneGenesis,
		}); err != nil {
			return nil, err
		}
	}
	kr, err := keyring.Open(KeyringDir(c.Home))
	if err != nil {
		return nil, err
	}
	n := &Network{Config: c, Keyring: kr}
	logger := c.Logger
	if logger == nil {
		n.logFile, err = os.OpenFile(filepath.Join(c.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		logger = slog.New(slog.NewTextHandler(n.logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	n.Node, err = node.Start(ctx, home, node.Options{Logger: logger, Comet: func(cc *cfg.Config) {
		node.ApplyDefaults(cc, ports, c.BlockTime)
		if c.Comet != nil {
			c.Comet(cc)
		}
	}})
	if err != nil {
		n.closeLog()
		return nil, err
	}
	// Ports follow --base-port on every start, so endpoints are rewritten.
	n.Endpoints = LayoutEndpoints(c.Home, n.Node.Comet().GenesisDoc().ChainID, 1, c.BasePort)
	if err := WriteEndpoints(c.Home, n.Endpoints); err != nil {
		n.Stop()
		return nil, err
	}
	n.Client, err = client.New(n.Endpoints.RPC)
	if err != nil {
		n.Stop()
		return nil, err
	}
	if specs, err := ReadWorkers(c.Home); err != nil {
		n.Stop()
		return nil, err
	} else if len(specs) > 0 {
		genesis, err := os.ReadFile(filepath.Join(home, "config", "genesis.json"))
		if err != nil {
			n.Stop()
			return nil, err
		}
		n.Workers, err = startWorkers(ctx, c.Home, fmt.Sprintf("127.0.0.1:%d", AttestPort(c.BasePort)), n.Endpoints.RPC, genesis, kr, specs, func(i int) int { return QueryPort(c.BasePort, 1, i) }, logger)
		if err != nil {
			n.Stop()
			return nil, err
		}
		n.Endpoints.Attest = n.Workers.Attest.URL()
		for i, w := range specs {
			n.Endpoints.Workers = append(n.Endpoints.Workers, WorkerEndpoint{Name: w.Name, Role: w.Role, PRuntime: "unix://" + PRuntimeSocket(c.Home, w.Name), Query: QueryEndpoint(c.BasePort, 1, i)})
		}
		if err := WriteEndpoints(c.Home, n.Endpoints); err != nil {
			n.Stop()
			return nil, err
		}
	}
	return n, nil
}

// AttestPort is the devnet attestation service's port: after the node's.
func AttestPort(basePort int) int { return basePort + 3 }

// QueryPort is the query endpoint port of worker i of a network whose
// validators take ports from basePort (node.PortStride apart): after the
// last validator's ports and the attestation service's.
func QueryPort(basePort, validators, i int) int {
	return basePort + (validators-1)*node.PortStride + 4 + i
}

// QueryEndpoint is the URL of worker i's query endpoint.
func QueryEndpoint(basePort, validators, i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", QueryPort(basePort, validators, i))
}

// PortsNeeded is how many consecutive ports a devnet with nWorkers takes
// from its base port.
func PortsNeeded(nWorkers int) int { return 4 + nWorkers }

func workersFile(home string) string { return filepath.Join(home, "workers", "workers.json") }

// ReadWorkers lists the workers a network was laid out with (none if it
// was laid out without).
func ReadWorkers(home string) ([]WorkerSpec, error) {
	b, err := os.ReadFile(workersFile(home))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var specs []WorkerSpec
	return specs, json.Unmarshal(b, &specs)
}

// WaitHeight blocks until the application has committed height, or ctx ends.
func (n *Network) WaitHeight(ctx context.Context, height int64) error {
	for n.Node.App().Height() < height {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for height %d (at %d): %w", height, n.Node.App().Height(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Stop stops the workers and the node and closes its data.
func (n *Network) Stop() error {
	if n.Workers != nil {
		n.Workers.Stop()
	}
	err := n.Node.Stop()
	n.closeLog()
	return err
}

func (n *Network) closeLog() {
	if n.logFile != nil {
		n.logFile.Close()
	}
}

// PushInOneBlock has the keyring account from push one ingress message per
// payload on topic, broadcast together with consecutive nonces, and retries
// (up to 5 times) until all of them are committed in the same block, whose
// height it returns. Tests use it to get a block with several worker events.
func (n *Network) PushInOneBlock(ctx context.Context, from, topic string, payloads ...[]byte) (int64, error) {
	k, err := n.Keyring.Get(from)
	if err != nil {
		return 0, err
	}
	for range 5 {
		acc, err := n.Client.Account(ctx, k.Address)
		if err != nil {
			return 0, err
		}
		var hashes [][]byte
		for i, p := range payloads {
			nonce := acc.Nonce + uint64(i)
			body := &chainpb.TxBody{Msg: &chainpb.TxBody_PushMessage{PushMessage: &chainpb.MsgPushMessage{Topic: topic, Payload: p}}}
			raw, err := n.Client.Build(ctx, k.PrivateKey(), body, client.SendOptions{Nonce: &nonce})
			if err != nil {
				return 0, err
			}
			res, err := n.Client.RPC().BroadcastTxSync(ctx, raw)
			if err != nil {
				return 0, err
			}
			if res.Code != 0 {
				return 0, fmt.Errorf("push %d refused: %s", i, res.Log)
			}
			hashes = append(hashes, res.Hash)
		}
		heights := map[int64]bool{}
		var last int64
		for _, h := range hashes {
			r, err := n.Client.WaitTx(ctx, h, 0)
			if err != nil {
				return 0, err
			}
			heights[r.Height], last = true, r.Height
		}
		if len(heights) == 1 {
			return last, nil
		}
	}
	return 0, fmt.Errorf("%d pushes never shared a block in 5 attempts", len(payloads))
}
