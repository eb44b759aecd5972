package bank

import (
	"fmt"

	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
)

// Category is a slice of the genesis distribution.
type Category struct {
	Name string `json:"name"`
	// Pool is the named module account that holds the category's share not
	// granted to individual accounts at genesis.
	Pool string `json:"pool"`
	// Permille of TotalSupply.
	Permille uint64 `json:"permille"`
}

// Categories is the genesis distribution of PHA (DESIGN.md section 4).
var Categories = []Category{
	{Name: "miner_rewards", Pool: minerRewardsPool, Permille: 700},
	{Name: "stakedrop_auction", Pool: "stakedrop_auction", Permille: 90},
	{Name: "private_sale", Pool: "private_sale", Permille: 150},
	{Name: "developers_community", Pool: "developers_community", Permille: 50},
	{Name: "incentives", Pool: "incentives", Permille: 10},
}

// GenesisAccount is one account funded at genesis.
type GenesisAccount struct {
	// Name is informational for individual accounts; for pools it is the
	// module account name the address is derived from.
	Name     string         `json:"name"`
	Category string         `json:"category"`
	Address  crypto.Address `json:"address"`
	Balance  uint64         `json:"balance"`
}

// Genesis is the bank module's part of the genesis app state.
type Genesis struct {
	Accounts []GenesisAccount `json:"accounts"`
}

// Grant funds an individual account at genesis out of a category's share.
type Grant struct {
	Name     string
	Category string
	Address  crypto.Address
	Amount   uint64
}

// NewGenesis distributes TotalSupply over Categories: grants first, the rest
// of each category to its pool account.
func NewGenesis(grants ...Grant) (Genesis, error) {
	var g Genesis
	for _, c := range Categories {
		share := TotalSupply / 1000 * c.Permille
		var granted uint64
		for _, gr := range grants {
			if gr.Category != c.Name {
				continue
			}
			granted += gr.Amount
			g.Accounts = append(g.Accounts, GenesisAccount{Name: gr.Name, Category: c.Name, Address: gr.Address, Balance: gr.Amount})
		}
		if granted > share {
			return g, fmt.Errorf("grants of %s from %s exceed its share of %s", FormatAmount(granted), c.Name, FormatAmount(share))
		}
		g.Accounts = append(g.Accounts, GenesisAccount{Name: c.Pool, Category: c.Name, Address: crypto.ModuleAddress(c.Pool), Balance: share - granted})
	}
	for _, gr := range grants {
		if categoryByName(gr.Category) == nil {
			return g, fmt.Errorf("grant to %s names unknown category %q", gr.Name, gr.Category)
		}
	}
	return g, g.Validate()
}

func categoryByName(name string) *Category {
	for i := range Categories {
		if Categories[i].Name == name {
			return &Categories[i]
		}
	}
	return nil
}

// Validate checks that the accounts distribute exactly TotalSupply in the
// category proportions, that every pool account exists under its derived
// address, and that no address appears twice.
func (g Genesis) Validate() error {
	sums := map[string]uint64{}
	seen := map[crypto.Address]string{}
	pools := map[string]bool{}
	for _, a := range g.Accounts {
		c := categoryByName(a.Category)
		if c == nil {
			return fmt.Errorf("genesis account %s (%s) has unknown category %q", a.Name, a.Address, a.Category)
		}
		if prev, dup := seen[a.Address]; dup {
			return fmt.Errorf("genesis address %s appears twice (%s and %s)", a.Address, prev, a.Name)
		}
		seen[a.Address] = a.Name
		if a.Name == c.Pool {
			if a.Address != crypto.ModuleAddress(c.Pool) {
				return fmt.Errorf("pool %s must have address %s, got %s", c.Pool, crypto.ModuleAddress(c.Pool), a.Address)
			}
			pools[c.Pool] = true
		}
		if a.Balance > TotalSupply || sums[a.Category] > TotalSupply-a.Balance {
			return fmt.Errorf("genesis account %s (%s) holds %d uPHA: the %s category exceeds the total supply", a.Name, a.Address, a.Balance, a.Category)
		}
		sums[a.Category] += a.Balance
	}
	var total uint64
	for _, c := range Categories {
		if !pools[c.Pool] {
			return fmt.Errorf("genesis lacks the %s pool account", c.Pool)
		}
		want := TotalSupply / 1000 * c.Permille
		if sums[c.Name] != want {
			return fmt.Errorf("category %s distributes %s, want %s (%d‰ of the supply)", c.Name, FormatAmount(sums[c.Name]), FormatAmount(want), c.Permille)
		}
		total += sums[c.Name]
	}
	if total != TotalSupply {
		return fmt.Errorf("genesis distributes %s, want %s", FormatAmount(total), FormatAmount(TotalSupply))
	}
	return nil
}

// InitGenesis writes the validated genesis balances.
func InitGenesis(kv store.KV, g Genesis) error {
	if err := g.Validate(); err != nil {
		return err
	}
	var total uint64
	for _, a := range g.Accounts {
		if err := Credit(kv, a.Address, a.Balance); err != nil {
			return err
		}
		total += a.Balance
	}
	return store.SetUint64(kv, SupplyKey, total)
}
