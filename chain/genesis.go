package chain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/rewards"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/proof"
)

// Genesis is the application's part of CometBFT's genesis file
// (genesis.json "app_state").
type Genesis struct {
	Auth     auth.Params      `json:"auth"`
	Bank     bank.Genesis     `json:"bank"`
	Registry registry.Genesis `json:"registry"`
	Staking  staking.Params   `json:"staking"`
	// Gatekeeper configures the launch; without it (and a registry
	// genesis_worker) the chain stays in pre-launch.
	Gatekeeper *gatekeeper.Genesis `json:"gatekeeper,omitempty"`
	// Contracts are the contract module's parameters; absent means
	// contracts.DefaultParams.
	Contracts *contracts.Params `json:"contracts,omitempty"`
	// Monitor is the responsiveness monitor's parameters; absent means
	// monitor.DefaultParams. pRuntimes read the heartbeat interval here.
	Monitor *monitor.Params `json:"monitor,omitempty"`
	// Rewards is the era rewards' parameters; absent means
	// rewards.DefaultParams.
	Rewards *rewards.Params `json:"rewards,omitempty"`
	// Governance is the referenda's parameters; absent means
	// governance.DefaultParams.
	Governance *governance.Params `json:"governance,omitempty"`
}

// governanceParams is g's governance parameters, defaulted.
func (g Genesis) governanceParams() governance.Params {
	if g.Governance == nil {
		return governance.DefaultParams()
	}
	return *g.Governance
}

// rewardsParams is g's rewards parameters, defaulted.
func (g Genesis) rewardsParams() rewards.Params {
	if g.Rewards == nil {
		return rewards.DefaultParams()
	}
	return *g.Rewards
}

// monitorParams is g's monitor parameters, defaulted.
func (g Genesis) monitorParams() monitor.Params {
	if g.Monitor == nil {
		return monitor.DefaultParams()
	}
	return *g.Monitor
}

// contractParams is g's contract parameters, defaulted.
func (g Genesis) contractParams() contracts.Params {
	if g.Contracts == nil {
		return contracts.DefaultParams()
	}
	return *g.Contracts
}

// DefaultGenesis distributes the supply with the given grants and default
// parameters.
func DefaultGenesis(grants ...bank.Grant) (Genesis, error) {
	b, err := bank.NewGenesis(grants...)
	reg := registry.Genesis{Params: registry.DefaultParams()}
	return Genesis{Auth: auth.DefaultParams(), Bank: b, Registry: reg, Staking: staking.DefaultParams()}, err
}

// ParseGenesis decodes and validates app_state. Unknown fields are refused,
// so a misspelt parameter is not silently ignored.
func ParseGenesis(raw []byte) (Genesis, error) {
	var g Genesis
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return g, fmt.Errorf("genesis app_state: %w", err)
	}
	return g, g.Validate()
}

// Validate checks the genesis state.
func (g Genesis) Validate() error {
	if err := g.Auth.Validate(); err != nil {
		return fmt.Errorf("genesis auth: %w", err)
	}
	if err := g.Registry.Validate(); err != nil {
		return fmt.Errorf("genesis registry: %w", err)
	}
	if err := g.Staking.Validate(); err != nil {
		return fmt.Errorf("genesis staking: %w", err)
	}
	var eraBlocks int64
	if g.Gatekeeper != nil {
		eraBlocks = g.Gatekeeper.Params.EraBlocks
	}
	if err := g.monitorParams().Validate(eraBlocks); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if err := g.rewardsParams().Validate(); err != nil {
		return fmt.Errorf("genesis rewards: %w", err)
	}
	if err := g.contractParams().Validate(); err != nil {
		return fmt.Errorf("genesis contracts: %w", err)
	}
	if err := g.governanceParams().Validate(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if g.Gatekeeper != nil {
		if err := g.Gatekeeper.Validate(); err != nil {
			return fmt.Errorf("genesis gatekeeper: %w", err)
		}
		if g.Registry.GenesisWorker == nil {
			return fmt.Errorf("genesis gatekeeper: the launch needs registry.genesis_worker")
		}
	}
	return g.Bank.Validate()
}

func initGenesis(kv store.KV, g Genesis, genesisHash []byte, genesisTime time.Time) error {
	if err := setParams(kv, g.Auth); err != nil {
		return err
	}
	if err := kv.Set(gatekeeper.PhaseKey, []byte(gatekeeper.PhasePreLaunch)); err != nil {
		return err
	}
	if err := registry.InitGenesis(kv, g.Registry, genesisHash, genesisTime); err != nil {
		return err
	}
	if err := staking.InitGenesis(kv, g.Staking); err != nil {
		return err
	}
	if err := contracts.InitGenesis(kv, g.contractParams()); err != nil {
		return err
	}
	if err := monitor.InitGenesis(kv, g.monitorParams()); err != nil {
		return err
	}
	if err := initRewards(kv, g.rewardsParams(), genesisTime); err != nil {
		return err
	}
	if err := governance.InitGenesis(kv, g.governanceParams()); err != nil {
		return err
	}
	if g.Gatekeeper != nil {
		if err := gatekeeper.InitGenesis(kv, *g.Gatekeeper, g.Registry.GenesisWorker.SigningKey); err != nil {
			return err
		}
	}
	return bank.InitGenesis(kv, g.Bank)
}

// loadParams reads the transaction parameters (auth's).
func loadParams(r store.Reader) (auth.Params, error) {
	return store.LoadJSON[auth.Params](r, auth.ParamsKey, "transaction parameters")
}

// setParams writes the transaction parameters (at genesis, and when a
// param_change referendum for module "auth" passes).
func setParams(kv store.KV, p auth.Params) error { return store.SetJSON(kv, auth.ParamsKey, p) }

// GenesisHash is the chain's genesis hash as InitChain sees it (see
// proof.GenesisHash; a pRuntime computes the same from the genesis document).
func GenesisHash(req *abci.InitChainRequest) []byte {
	vals := make([]proof.GenesisValidator, len(req.Validators))
	for i, v := range req.Validators {
		vals[i] = proof.GenesisValidator{KeyType: v.PubKeyType, PubKey: v.PubKeyBytes, Power: v.Power}
	}
	return proof.GenesisHash(req.ChainId, req.InitialHeight, req.Time, vals, req.AppStateBytes)
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }
