// Command token is a confidential fungible token: the owner mints, holders
// transfer, a balance is visible only to its holder, the total supply is
// public. Another contract holding tokens transfers them by message (its
// instance id is then the caller).
package main

import (
	"errors"
	"fmt"
	"math"

	"github.com/phala-go/phala/sdk"
)

type InitArgs struct {
	Name string `json:"name"`
}

type Mint struct {
	To     string `json:"to"`
	Amount uint64 `json:"amount"`
}

type Transfer struct {
	To     string `json:"to"`
	Amount uint64 `json:"amount"`
}

type Account struct {
	Account string `json:"account"`
}

type Info struct {
	Name        string `json:"name"`
	Owner       string `json:"owner"`
	TotalSupply uint64 `json:"total_supply"`
}

const (
	infoKey   = "info"
	balanceNS = "balance/"
)

func balance(ctx *sdk.Context, who string) (uint64, error) {
	var b uint64
	_, err := ctx.GetJSON(balanceNS+who, &b)
	return b, err
}

func setBalance(ctx *sdk.Context, who string, b uint64) error {
	if b == 0 {
		ctx.Delete([]byte(balanceNS + who))
		return nil
	}
	return ctx.SetJSON(balanceNS+who, b)
}

func info(ctx *sdk.Context) (Info, error) {
	var in Info
	ok, err := ctx.GetJSON(infoKey, &in)
	if err == nil && !ok {
		err = errors.New("the token is not initialised")
	}
	return in, err
}

func init() {
	sdk.Init(func(ctx *sdk.Context, a InitArgs) error {
		return ctx.SetJSON(infoKey, Info{Name: a.Name, Owner: ctx.Caller()})
	})
	sdk.Command("mint", func(ctx *sdk.Context, a Mint) error {
		in, err := info(ctx)
		if err != nil {
			return err
		}
		if ctx.Caller() != in.Owner {
			return errors.New("only the owner may mint")
		}
		if a.To == "" || a.Amount == 0 {
			return errors.New("mint needs a recipient and a positive amount")
		}
		if in.TotalSupply > math.MaxUint64-a.Amount {
			return errors.New("the total supply would overflow")
		}
		b, err := balance(ctx, a.To)
		if err != nil {
			return err
		}
		in.TotalSupply += a.Amount
		if err := ctx.SetJSON(infoKey, in); err != nil {
			return err
		}
		return setBalance(ctx, a.To, b+a.Amount)
	})
	sdk.Command("transfer", func(ctx *sdk.Context, a Transfer) error {
		from := ctx.Caller()
		if a.To == "" || a.Amount == 0 {
			return errors.New("transfer needs a recipient and a positive amount")
		}
		fb, err := balance(ctx, from)
		if err != nil {
			return err
		}
		if fb < a.Amount {
			return fmt.Errorf("insufficient balance: have %d, need %d", fb, a.Amount)
		}
		if a.To == from {
			return nil
		}
		tb, err := balance(ctx, a.To)
		if err != nil {
			return err
		}
		if err := setBalance(ctx, from, fb-a.Amount); err != nil {
			return err
		}
		// Events carry no amounts or parties: they are for the holder's
		// own records through queries, not for the chain.
		return setBalance(ctx, a.To, tb+a.Amount)
	})
	sdk.Query("balance", func(ctx *sdk.Context, a Account) (uint64, error) {
		if a.Account == "" {
			a.Account = ctx.Caller()
		}
		if a.Account != ctx.Caller() {
			return 0, errors.New("only the holder may read a balance")
		}
		return balance(ctx, a.Account)
	})
	sdk.Query("info", func(ctx *sdk.Context, _ struct{}) (Info, error) { return info(ctx) })
}

func main() {}
