package chain

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/store"
)

// Genesis is the application's part of CometBFT's genesis file
// (genesis.json "app_state").
type Genesis struct {
	Auth auth.Params  `json:"auth"`
	Bank bank.Genesis `json:"bank"`
}

// DefaultGenesis distributes the supply with the given grants and default
// parameters.
func DefaultGenesis(grants ...bank.Grant) (Genesis, error) {
	b, err := bank.NewGenesis(grants...)
	return Genesis{Auth: auth.DefaultParams(), Bank: b}, err
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
	return g.Bank.Validate()
}

// Phase is where the network is in its life (paper section 4.4).
type Phase string

// PhasePreLaunch: after the genesis block and until the elected gatekeepers
// hold the root key; confidential contracts are disabled.
const PhasePreLaunch Phase = "pre-launch"

var phaseKey = []byte("chain/phase")

func initGenesis(kv store.KV, g Genesis) error {
	params, err := json.Marshal(g.Auth)
	if err != nil {
		return err
	}
	if err := kv.Set(auth.ParamsKey, params); err != nil {
		return err
	}
	if err := kv.Set(phaseKey, []byte(PhasePreLaunch)); err != nil {
		return err
	}
	return bank.InitGenesis(kv, g.Bank)
}

func loadParams(r store.Reader) (auth.Params, error) {
	var p auth.Params
	b, err := r.Get(auth.ParamsKey)
	if err != nil {
		return p, err
	}
	if b == nil {
		return p, fmt.Errorf("state has no transaction parameters")
	}
	return p, json.Unmarshal(b, &p)
}

func loadPhase(r store.Reader) (Phase, error) {
	b, err := r.Get(phaseKey)
	return Phase(b), err
}
