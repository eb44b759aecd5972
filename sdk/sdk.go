// Package sdk is what a Phala-Go contract is written with: typed handlers
// for commands and queries, the authenticated caller, the block height and
// time, a key-value store kept by pRuntime (not in wasm memory), random
// bytes that are deterministic inside pRuntime and unpredictable outside,
// events, and messages to other contracts.
//
// A contract is a main package that registers its handlers in init and
// builds with `phala contract build` (GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared):
//
//	func init() {
//		sdk.Init(func(ctx *sdk.Context, a InitArgs) error { ... })
//		sdk.Command("transfer", func(ctx *sdk.Context, a Transfer) error { ... })
//		sdk.Query("balance", func(ctx *sdk.Context, a Balance) (uint64, error) { ... })
//	}
//	func main() {}
//
// Commands and queries arrive as JSON objects with one member naming the
// handler: {"transfer": {"to": "...", "amount": 5}}. A handler's error (or
// panic) fails the call: its writes are discarded and the error text is
// what the caller sees. Contract state must live in the store: Go variables
// never survive past a block (a block's calls to a contract may share one
// instance, later ones start afresh), so results must not depend on them.
package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Context is a call's view of the world.
type Context struct{}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func readKind(kind uint32) []byte {
	n := hostRead(kind, nil, 0)
	b := make([]byte, n)
	if n > 0 {
		hostRead(kind, ptr(b), uint32(n))
	}
	return b
}

// Caller is the authenticated caller: the account that signed the command
// or query (a phala1... address), or the instance id of the contract that
// sent the message.
func (*Context) Caller() string { return string(readKind(1)) }

// Contract is this contract's instance id.
func (*Context) Contract() string { return string(readKind(2)) }

// Height is the block height of the command (for a query: of the state it
// reads).
func (*Context) Height() int64 { return hostBlockHeight() }

// Time is the block time: the contract's only clock.
func (*Context) Time() time.Time { return time.Unix(0, hostBlockTime()).UTC() }

// Get reads key; ok is false if it is absent.
func (*Context) Get(key []byte) (value []byte, ok bool) {
	buf := make([]byte, 256)
	n := hostStorageRead(ptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)))
	if n < 0 {
		return nil, false
	}
	if int(n) > len(buf) {
		buf = make([]byte, n)
		hostStorageRead(ptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)))
	}
	return buf[:n], true
}

// Set writes value under key (keys are 1 to 1024 bytes, values up to 64 KiB).
func (*Context) Set(key, value []byte) {
	hostStorageWrite(ptr(key), uint32(len(key)), ptr(value), uint32(len(value)))
}

// Delete removes key.
func (*Context) Delete(key []byte) { hostStorageDelete(ptr(key), uint32(len(key))) }

// GetJSON reads key into v; ok is false if it is absent.
func (c *Context) GetJSON(key string, v any) (ok bool, err error) {
	b, ok := c.Get([]byte(key))
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(b, v)
}

// SetJSON writes v, JSON-encoded, under key.
func (c *Context) SetJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Set([]byte(key), b)
	return nil
}

// Random returns n random bytes: derived from the contract key, the block
// and the command, so identical on every worker and unknown outside.
func (*Context) Random(n int) []byte {
	b := make([]byte, n)
	hostRandom(ptr(b), uint32(n))
	return b
}

// Emit records an event of the call, JSON-encoded with its kind.
func (*Context) Emit(kind string, attrs any) error {
	b, err := json.Marshal(struct {
		Kind  string `json:"kind"`
		Attrs any    `json:"attrs,omitempty"`
	}{kind, attrs})
	if err != nil {
		return err
	}
	hostEmit(ptr(b), uint32(len(b)))
	return nil
}

// Send sends msg (a handler name and its arguments, as a command) to the
// contract with instance id to. It is delivered as a command in a later
// block, in order and exactly once, with this contract as the caller.
// Messages of a failed call are not sent.
func (*Context) Send(to, handler string, args any) error {
	b, err := json.Marshal(map[string]any{handler: args})
	if err != nil {
		return err
	}
	t := []byte(to)
	hostSend(ptr(t), uint32(len(t)), ptr(b), uint32(len(b)))
	return nil
}

type handler func(*Context, json.RawMessage) ([]byte, error)

var (
	initHandler handler
	commands    = map[string]handler{}
	queries     = map[string]handler{}
)

// Init registers the initialiser, run once when the contract is
// instantiated, with the deployer as caller and the deploy arguments.
func Init[T any](h func(*Context, T) error) {
	initHandler = func(c *Context, raw json.RawMessage) ([]byte, error) {
		var a T
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("init arguments: %w", err)
			}
		}
		return nil, h(c, a)
	}
}

// Command registers a command handler.
func Command[T any](name string, h func(*Context, T) error) {
	commands[name] = func(c *Context, raw json.RawMessage) ([]byte, error) {
		var a T
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("%s arguments: %w", name, err)
		}
		return nil, h(c, a)
	}
}

// Query registers a query handler; its result is returned JSON-encoded.
// Queries cannot write state or send messages.
func Query[T, R any](name string, h func(*Context, T) (R, error)) {
	queries[name] = func(c *Context, raw json.RawMessage) ([]byte, error) {
		var a T
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("%s arguments: %w", name, err)
		}
		r, err := h(c, a)
		if err != nil {
			return nil, err
		}
		return json.Marshal(r)
	}
}

func runInit() int32 {
	return run(func(c *Context, input []byte) ([]byte, error) {
		if initHandler == nil {
			return nil, nil
		}
		return initHandler(c, input)
	})
}

func dispatch(table map[string]handler) int32 {
	return run(func(c *Context, input []byte) ([]byte, error) {
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(input, &msg); err != nil || len(msg) != 1 {
			return nil, errors.New(`the message must be a JSON object with one member naming the handler, like {"transfer": {...}}`)
		}
		for name, args := range msg {
			h, ok := table[name]
			if !ok {
				return nil, fmt.Errorf("no handler %q", name)
			}
			return h(c, args)
		}
		return nil, nil
	})
}

// run calls f with the input, returns its output, and turns an error or
// panic into a failed call with the message as output.
func run(f func(*Context, []byte) ([]byte, error)) (code int32) {
	defer func() {
		if r := recover(); r != nil {
			fail(fmt.Sprintf("panic: %v", r))
			code = 1
		}
	}()
	out, err := f(&Context{}, readKind(0))
	if err != nil {
		fail(err.Error())
		return 1
	}
	if len(out) > 0 {
		hostOutput(ptr(out), uint32(len(out)))
	}
	return 0
}

func fail(msg string) {
	b := []byte(msg)
	hostOutput(ptr(b), uint32(len(b)))
}
