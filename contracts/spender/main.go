// Command spender is a contract that holds tokens of a token contract and
// pays them out by message: the token contract sees this contract as the
// caller. Its owner instructs it.
package main

import (
	"errors"

	"github.com/phala-go/phala/sdk"
)

type InitArgs struct {
	Token string `json:"token"`
}

type Pay struct {
	To     string `json:"to"`
	Amount uint64 `json:"amount"`
}

type config struct {
	Owner string `json:"owner"`
	Token string `json:"token"`
}

func init() {
	sdk.Init(func(ctx *sdk.Context, a InitArgs) error {
		if a.Token == "" {
			return errors.New("init needs the token contract's instance id")
		}
		return ctx.SetJSON("config", config{Owner: ctx.Caller(), Token: a.Token})
	})
	sdk.Command("pay", func(ctx *sdk.Context, a Pay) error {
		var c config
		if _, err := ctx.GetJSON("config", &c); err != nil {
			return err
		}
		if ctx.Caller() != c.Owner {
			return errors.New("only the owner may pay")
		}
		return ctx.Send(c.Token, "transfer", map[string]any{"to": a.To, "amount": a.Amount})
	})
}

func main() {}
