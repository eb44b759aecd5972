package bank

import (
	"math"

	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// Balance returns the account's balance in uPHA.
func Balance(r store.Reader, a crypto.Address) (uint64, error) {
	return store.Uint64(r, BalanceKey(a), "the balance record of "+a.String())
}

func setBalance(kv store.KV, a crypto.Address, v uint64) error {
	if v == 0 {
		return kv.Delete(BalanceKey(a))
	}
	return store.SetUint64(kv, BalanceKey(a), v)
}

// Debit takes amount from a, refusing to go below zero.
func Debit(kv store.KV, a crypto.Address, amount uint64, what string) error {
	bal, err := Balance(kv, a)
	if err != nil {
		return err
	}
	if bal < amount {
		return ErrInsufficientFunds.Wrapf("%s needs %s but %s holds %s", what, FormatAmount(amount), a, FormatAmount(bal))
	}
	return setBalance(kv, a, bal-amount)
}

// Credit adds amount to a.
func Credit(kv store.KV, a crypto.Address, amount uint64) error {
	bal, err := Balance(kv, a)
	if err != nil {
		return err
	}
	if amount > math.MaxUint64-bal {
		return ErrBalanceOverflow.Wrapf("crediting %d to %s", amount, a)
	}
	return setBalance(kv, a, bal+amount)
}

// ValidateTransfer checks a transfer without reading state.
func ValidateTransfer(m *chainpb.MsgTransfer) error {
	if m.Amount <= 0 {
		return ErrInvalidAmount.Wrapf("amount must be positive, got %d %s", m.Amount, BaseDenom)
	}
	if _, err := crypto.AddressFromBytes(m.To); err != nil {
		return ErrInvalidRecipient.Wrapf("%v", err)
	}
	return nil
}

// Transfer executes a validated MsgTransfer signed by from.
func Transfer(kv store.KV, from crypto.Address, m *chainpb.MsgTransfer) error {
	to, _ := crypto.AddressFromBytes(m.To)
	if err := Debit(kv, from, uint64(m.Amount), "transfer"); err != nil {
		return err
	}
	return Credit(kv, to, uint64(m.Amount))
}

// SupplyKey holds the total supply in uPHA (8 bytes, big endian): the
// genesis supply plus everything minted since.
var SupplyKey = []byte("bank/supply")

// Supply is the total supply.
func Supply(r store.Reader) (uint64, error) { return store.Uint64(r, SupplyKey, "the supply record") }

// Mint creates amount uPHA for a: the supply grows by as much (staking
// inflation).
func Mint(kv store.KV, to crypto.Address, amount uint64) error {
	s, err := Supply(kv)
	if err != nil {
		return err
	}
	if s+amount < s {
		return ErrBalanceOverflow.Wrapf("minting %d uPHA overflows the supply", amount)
	}
	if err := Credit(kv, to, amount); err != nil {
		return err
	}
	return store.SetUint64(kv, SupplyKey, s+amount)
}
