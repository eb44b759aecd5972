package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"
	cmttime "github.com/cometbft/cometbft/types/time"

	"github.com/phala-go/phala/chain"
)

// PortStride separates the port blocks of consecutive nodes of a network.
const PortStride = 10

// Ports is one node's listeners: consecutive ports on 127.0.0.1 from Base.
type Ports struct{ Base int }

// RPC is CometBFT's RPC port.
func (p Ports) RPC() int { return p.Base }

// P2P is CometBFT's peer-to-peer port.
func (p Ports) P2P() int { return p.Base + 1 }

// Metrics is the Prometheus port.
func (p Ports) Metrics() int { return p.Base + 2 }

// NetworkSpec describes a network to lay out with InitNetwork.
type NetworkSpec struct {
	ChainID    string
	Validators int
	// BasePort is node 0's first port; node i starts at BasePort+i*PortStride.
	BasePort int
	// BlockTime is the pause after each commit (CometBFT timeout_commit).
	BlockTime time.Duration
	Genesis   chain.Genesis
	App       AppConfig
	// Tune, if set, adjusts each node's CometBFT config before it is written.
	Tune func(i int, c *cfg.Config)
}

// NodeHome is the home of validator i under a network directory.
func NodeHome(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }

// InitNetwork lays out one home per validator under dir (dir/node0, ...):
// keys, a shared genesis and configs that peer the nodes on loopback. It
// refuses to touch a directory that already holds a node.
func InitNetwork(dir string, spec NetworkSpec) ([]string, error) {
	if spec.Validators < 1 {
		return nil, fmt.Errorf("a network needs at least 1 validator, got %d", spec.Validators)
	}
	if spec.BasePort < 1024 || spec.BasePort+spec.Validators*PortStride > 65535 {
		return nil, fmt.Errorf("base port %d leaves no room for %d nodes; choose 1024..%d", spec.BasePort, spec.Validators, 65535-spec.Validators*PortStride)
	}
	if spec.ChainID == "" {
		return nil, errors.New("a network needs a chain id")
	}
	if err := spec.Genesis.Validate(); err != nil {
		return nil, err
	}
	appState, err := json.Marshal(spec.Genesis)
	if err != nil {
		return nil, err
	}
	homes := make([]string, spec.Validators)
	genVals := make([]types.GenesisValidator, spec.Validators)
	peers := make([]string, spec.Validators)
	for i := range homes {
		home := NodeHome(dir, i)
		homes[i] = home
		if _, err := os.Stat(filepath.Join(home, "config", "genesis.json")); err == nil {
			return nil, fmt.Errorf("%s already holds a node; remove it or choose another --home", home)
		}
		for _, d := range []string{"config", "data"} {
			if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
				return nil, err
			}
		}
		c := cfg.DefaultConfig()
		c.SetRoot(home)
		pv, err := privval.GenFilePV(c.PrivValidatorKeyFile(), c.PrivValidatorStateFile(), func() (crypto.PrivKey, error) { return ed25519.GenPrivKey(), nil })
		if err != nil {
			return nil, fmt.Errorf("generate validator key: %w", err)
		}
		pv.Save()
		nk, err := p2p.LoadOrGenNodeKey(c.NodeKeyFile())
		if err != nil {
			return nil, err
		}
		pub, err := pv.GetPubKey()
		if err != nil {
			return nil, err
		}
		genVals[i] = types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: 10, Name: fmt.Sprintf("node%d", i)}
		peers[i] = p2p.IDAddressString(nk.ID(), fmt.Sprintf("127.0.0.1:%d", Ports{spec.BasePort + i*PortStride}.P2P()))
	}
	gen := &types.GenesisDoc{
		ChainID:         spec.ChainID,
		GenesisTime:     cmttime.Now(),
		ConsensusParams: types.DefaultConsensusParams(),
		Validators:      genVals,
		AppState:        appState,
	}
	for i, home := range homes {
		c := cfg.DefaultConfig()
		c.SetRoot(home)
		c.Moniker = fmt.Sprintf("node%d", i)
		var others []string
		for j, p := range peers {
			if j != i {
				others = append(others, p)
			}
		}
		c.P2P.PersistentPeers = strings.Join(others, ",")
		ApplyDefaults(c, Ports{spec.BasePort + i*PortStride}, spec.BlockTime)
		if spec.Tune != nil {
			spec.Tune(i, c)
		}
		if err := gen.SaveAs(c.GenesisFile()); err != nil {
			return nil, err
		}
		cfg.WriteConfigFile(filepath.Join(home, "config", "config.toml"), c)
		if err := WriteAppConfig(home, spec.App); err != nil {
			return nil, err
		}
	}
	return homes, nil
}

// ApplyDefaults sets what every Phala-Go node needs on top of CometBFT's
// defaults: loopback listeners at ports, the block time, room for the app's
// own size limit (so its precise error, not the mempool's, reaches users),
// and a local peer exchange that accepts loopback addresses.
func ApplyDefaults(c *cfg.Config, ports Ports, blockTime time.Duration) {
	if blockTime <= 0 {
		blockTime = time.Second
	}
	c.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", ports.RPC())
	c.RPC.MaxBodyBytes = 12 << 20
	c.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", ports.P2P())
	c.P2P.AddrBookStrict = false
	c.P2P.AllowDuplicateIP = true
	c.Instrumentation.Prometheus = true
	c.Instrumentation.PrometheusListenAddr = fmt.Sprintf("127.0.0.1:%d", ports.Metrics())
	c.Consensus.TimeoutCommit = blockTime
	c.Consensus.TimeoutPropose = max(time.Second, blockTime)
	c.Mempool.MaxTxBytes = 4 << 20
}
