// Package bank holds PHA balances: transfers, fees, and the genesis
// distribution of the supply.
package bank

import (
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
)

// Codespace of the errors below.
const Codespace = "bank"

// Stable rejection codes. Never renumber.
var (
	ErrInvalidAmount     = errs.Register(Codespace, 2, "invalid amount")
	ErrInsufficientFunds = errs.Register(Codespace, 3, "insufficient funds")
	ErrInvalidRecipient  = errs.Register(Codespace, 4, "invalid recipient")
	ErrBalanceOverflow   = errs.Register(Codespace, 5, "balance overflow")
)

const (
	// Denom is the token's display name.
	Denom = "PHA"
	// BaseDenom names the smallest unit; every on-chain amount is in it.
	BaseDenom = "uPHA"
	// UnitsPerPHA is how many uPHA make one PHA.
	UnitsPerPHA = 1_000_000
	// TotalSupply is the genesis supply: 1,000,000,000 PHA.
	TotalSupply uint64 = 1_000_000_000 * UnitsPerPHA
)

var balanceKeyPrefix = []byte("bank/balance/")

// BalanceKey is where an account's balance is stored (8 bytes, big endian;
// absent means zero).
func BalanceKey(a crypto.Address) []byte {
	return append(append(make([]byte, 0, len(balanceKeyPrefix)+crypto.AddressLen), balanceKeyPrefix...), a[:]...)
}

// FeePool is the module account that collects transaction fees until the
// staking and rewards module distributes them.
var FeePool = crypto.ModuleAddress("fee_pool")

// Treasury is the module account that collects slashes and forfeited
// deposits; referenda spend it.
var Treasury = crypto.ModuleAddress("treasury")

const minerRewardsPool = "miner_rewards_pool"

// MinerRewardsPool holds the genesis miner rewards category (70% of the
// supply); the eras pay miners from it.
var MinerRewardsPool = crypto.ModuleAddress(minerRewardsPool)
