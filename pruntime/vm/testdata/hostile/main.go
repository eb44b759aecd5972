// Command hostile is a test contract that misbehaves on request, to show
// the VM ends each such call with an error and carries on.
package main

import (
	"encoding/hex"
	"strings"

	"github.com/phala-go/phala/sdk"
)

var sink [][]byte

func init() {
	sdk.Command("set", func(ctx *sdk.Context, kv map[string]string) error {
		for k, v := range kv {
			ctx.Set([]byte(k), []byte(v))
		}
		return nil
	})
	sdk.Command("set_then_fail", func(ctx *sdk.Context, k string) error {
		ctx.Set([]byte(k), []byte("written"))
		panic("failing after a write")
	})
	sdk.Command("loop", func(ctx *sdk.Context, _ struct{}) error {
		for i := 0; ; i++ {
			if i < 0 {
				return nil
			}
		}
	})
	sdk.Command("bomb", func(ctx *sdk.Context, _ struct{}) error {
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	})
	sdk.Command("trap", func(ctx *sdk.Context, _ struct{}) error {
		var m map[string]int
		m["x"] = 1 // nil map write: a runtime panic
		return nil
	})
	sdk.Command("random", func(ctx *sdk.Context, _ struct{}) error {
		ctx.Set([]byte("random"), []byte(hex.EncodeToString(ctx.Random(16))))
		ctx.Set([]byte("time"), []byte(ctx.Time().String()))
		return nil
	})
	sdk.Command("send", func(ctx *sdk.Context, to string) error {
		return ctx.Send(to, "hello", map[string]string{"from": ctx.Contract()})
	})
	sdk.Query("huge", func(ctx *sdk.Context, _ struct{}) (string, error) {
		return strings.Repeat("x", 70<<10), nil
	})
	sdk.Query("write", func(ctx *sdk.Context, _ struct{}) (string, error) {
		ctx.Set([]byte("k"), []byte("v"))
		return "wrote", nil
	})
	sdk.Query("get", func(ctx *sdk.Context, k string) (string, error) {
		v, _ := ctx.Get([]byte(k))
		return string(v), nil
	})
	sdk.Query("whoami", func(ctx *sdk.Context, _ struct{}) ([2]string, error) {
		return [2]string{ctx.Caller(), ctx.Contract()}, nil
	})
}

func main() {}
