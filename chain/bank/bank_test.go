package bank

import (
	"strings"
	"testing"

	"github.com/phala-go/phala/crypto"
)

func TestGenesisDistribution(t *testing.T) {
	alice := crypto.ModuleAddress("test-alice")
	g, err := NewGenesis(Grant{Name: "alice", Category: "developers_community", Address: alice, Amount: 1_000 * UnitsPerPHA})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{ // PHA, per the token economics
		"miner_rewards_pool":   700_000_000,
		"stakedrop_auction":    90_000_000,
		"private_sale":         150_000_000,
		"developers_community": 50_000_000 - 1_000,
		"incentives":           10_000_000,
		"alice":                1_000,
	}
	var total uint64
	for _, a := range g.Accounts {
		if w, ok := want[a.Name]; !ok || a.Balance != w*UnitsPerPHA {
			t.Errorf("%s: %d uPHA, want %d PHA", a.Name, a.Balance, w)
		}
		if a.Name != "alice" && a.Address != crypto.ModuleAddress(a.Name) {
			t.Errorf("pool %s at %s, want its module address", a.Name, a.Address)
		}
		total += a.Balance
	}
	if total != TotalSupply || TotalSupply != 1_000_000_000*UnitsPerPHA {
		t.Fatalf("total %d", total)
	}
}

func TestGenesisValidateRefuses(t *testing.T) {
	good, _ := NewGenesis()
	cases := map[string]func(g *Genesis){
		"a category short":  func(g *Genesis) { g.Accounts[0].Balance-- },
		"unknown category":  func(g *Genesis) { g.Accounts[0].Category = "airdrop" },
		"missing pool":      func(g *Genesis) { g.Accounts = g.Accounts[1:] },
		"duplicate address": func(g *Genesis) { g.Accounts[1].Address = g.Accounts[0].Address },
		"pool not at its module address": func(g *Genesis) {
			g.Accounts[0].Address = crypto.ModuleAddress("elsewhere")
		},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			g := Genesis{Accounts: append([]GenesisAccount(nil), good.Accounts...)}
			mut(&g)
			if err := g.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewGenesis(Grant{Name: "greedy", Category: "incentives", Address: crypto.ModuleAddress("g"), Amount: TotalSupply}); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Fatalf("over-granting: %v", err)
	}
}

func TestParseAndFormatAmount(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1_000_000, "1.5": 1_500_000, "1.5PHA": 1_500_000, "0.000001": 1, "2500upha": 2500,
		"-3": -3_000_000, " 7 pha ": 7_000_000, ".5": 500_000,
	} {
		got, err := ParseAmount(in)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "1.0000001", "1e5", "1.2.3", "9999999999999999999", "12xpha"} {
		if v, err := ParseAmount(bad); err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", bad, v)
		}
	}
	for units, want := range map[uint64]string{0: "0 PHA", 1: "0.000001 PHA", 1_500_000: "1.5 PHA", 7_000_000: "7 PHA"} {
		if got := FormatAmount(units); got != want {
			t.Errorf("FormatAmount(%d) = %q, want %q", units, got, want)
		}
	}
}
