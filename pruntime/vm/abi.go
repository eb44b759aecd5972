package vm

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/phala-go/phala/internal/detrand"
)

// The contract ABI: functions of the host module "phala" a contract imports.
// Pointers and lengths are into the contract's linear memory. A call that
// breaks a rule (a write in a query, an oversize value, memory out of
// range) traps the contract.
//
//	read(kind, ptr, cap) i32       copy input (0), caller (1) or contract id (2); returns its length
//	storage_read(kptr, klen, vptr, vcap) i32
//	                               copy a value; returns its length, or -1 if absent
//	storage_write(kptr, klen, vptr, vlen)
//	storage_delete(kptr, klen)
//	block_height() i64, block_time() i64 (unix nanoseconds)
//	random(ptr, len)               deterministic random bytes
//	emit(ptr, len)                 an event
//	send(tptr, tlen, mptr, mlen)   a message to contract tptr
//	output(ptr, len)               the call's return data (or error message)
//
// A contract exports phala_init, phala_command and phala_query, each
// returning 0 for success.
const hostModule = "phala"

// Limits of the ABI.
const (
	MaxKeyBytes    = 1 << 10
	MaxValueBytes  = 64 << 10
	MaxOutputBytes = 64 << 10
	MaxEventBytes  = 4 << 10
	MaxEvents      = 64
	MaxMessages    = 16
	MaxInputBytes  = 64 << 10
)

// Kinds for read.
const (
	readInput    = 0
	readCaller   = 1
	readContract = 2
)

type callKey struct{}

// call is one Execute call's host-side state.
type call struct {
	env      Env
	state    *overlay
	input    []byte
	readOnly bool
	rand     *detrand.Reader
	output   []byte
	events   [][]byte
	messages []Message
}

func callOf(ctx context.Context) *call { return ctx.Value(callKey{}).(*call) }

// Gas costs of host functions, on top of the instructions that call them:
// a base per call and a cost per byte moved.
const (
	gasHostCall    = 100
	gasPerByte     = 1
	gasStorageRead = 1_000
	gasStorageSet  = 5_000
)

// charge takes n gas from the calling instance, trapping when it runs out
// (leaving -1, as the metered code does).
func charge(m api.Module, n uint64) {
	g, ok := m.ExportedGlobal(GasExport).(api.MutableGlobal)
	if !ok {
		trap("the contract has no gas global")
	}
	left := int64(g.Get())
	if left < 0 || uint64(left) < n {
		g.Set(^uint64(0)) // -1
		trap("out of gas")
	}
	g.Set(uint64(left) - n)
}

// trap aborts the contract with a reason.
func trap(format string, args ...any) { panic(fmt.Errorf(format, args...)) }

func mem(m api.Module, ptr, n uint32, what string) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		trap("%s: %d bytes at %d are outside the contract's memory", what, n, ptr)
	}
	return b
}

func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(hostModule)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, kind, ptr, capacity uint32) int32 {
		c := callOf(ctx)
		var v []byte
		switch kind {
		case readInput:
			v = c.input
		case readCaller:
			v = []byte(c.env.Caller)
		case readContract:
			v = []byte(c.env.Contract)
		default:
			trap("read: unknown kind %d", kind)
		}
		n := min(uint32(len(v)), capacity)
		charge(m, gasHostCall+gasPerByte*uint64(n))
		if n > 0 {
			copy(mem(m, ptr, n, "read"), v)
		}
		return int32(len(v))
	}).Export("read")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, kp, kl, vp, vcap uint32) int32 {
		c := callOf(ctx)
		k := key(m, kp, kl)
		charge(m, gasStorageRead+gasPerByte*uint64(kl))
		v, ok := c.state.Get(k)
		if !ok {
			return -1
		}
		n := min(uint32(len(v)), vcap)
		charge(m, gasPerByte*uint64(n))
		if n > 0 {
			copy(mem(m, vp, n, "storage_read"), v)
		}
		return int32(len(v))
	}).Export("storage_read")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, kp, kl, vp, vl uint32) {
		c := callOf(ctx)
		if c.readOnly {
			trap("storage_write: a query may not write state")
		}
		if vl > MaxValueBytes {
			trap("storage_write: a %d-byte value, limit %d", vl, MaxValueBytes)
		}
		charge(m, gasStorageSet+gasPerByte*uint64(kl+vl))
		c.state.Set(key(m, kp, kl), mem(m, vp, vl, "storage_write"))
	}).Export("storage_write")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, kp, kl uint32) {
		c := callOf(ctx)
		if c.readOnly {
			trap("storage_delete: a query may not write state")
		}
		charge(m, gasStorageSet+gasPerByte*uint64(kl))
		c.state.Delete(key(m, kp, kl))
	}).Export("storage_delete")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context) int64 { return callOf(ctx).env.Height }).Export("block_height")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context) int64 { return callOf(ctx).env.Time.UnixNano() }).Export("block_time")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) {
		if n > MaxValueBytes {
			trap("random: %d bytes, limit %d", n, MaxValueBytes)
		}
		charge(m, gasHostCall+gasPerByte*uint64(n))
		callOf(ctx).rand.Read(mem(m, ptr, n, "random"))
	}).Export("random")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) {
		c := callOf(ctx)
		if n > MaxEventBytes || len(c.events) >= MaxEvents {
			trap("emit: events are limited to %d of %d bytes", MaxEvents, MaxEventBytes)
		}
		charge(m, gasHostCall+gasPerByte*uint64(n))
		c.events = append(c.events, clone(mem(m, ptr, n, "emit")))
	}).Export("emit")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, tp, tl, mp, ml uint32) {
		c := callOf(ctx)
		if c.readOnly {
			trap("send: a query may not send messages")
		}
		if tl > MaxKeyBytes || ml > MaxInputBytes || len(c.messages) >= MaxMessages {
			trap("send: at most %d messages of %d bytes", MaxMessages, MaxInputBytes)
		}
		charge(m, gasStorageSet+gasPerByte*uint64(tl+ml))
		to := string(mem(m, tp, tl, "send"))
		if c.env.CheckSend != nil {
			if err := c.env.CheckSend(to); err != nil {
				trap("send: %v", err)
			}
		}
		c.messages = append(c.messages, Message{To: to, Payload: clone(mem(m, mp, ml, "send"))})
	}).Export("send")
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) {
		if n > MaxOutputBytes {
			trap("output: %d bytes, limit %d", n, MaxOutputBytes)
		}
		charge(m, gasHostCall+gasPerByte*uint64(n))
		callOf(ctx).output = clone(mem(m, ptr, n, "output"))
	}).Export("output")
	_, err := b.Instantiate(ctx)
	return err
}

func key(m api.Module, ptr, n uint32) []byte {
	if n == 0 || n > MaxKeyBytes {
		trap("storage: keys are 1 to %d bytes, got %d", MaxKeyBytes, n)
	}
	return clone(mem(m, ptr, n, "storage key"))
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
