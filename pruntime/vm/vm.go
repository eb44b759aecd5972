// Package vm runs confidential contracts: WebAssembly modules executed by
// wazero (compiler engine, compiled-module cache). A contract's state is a
// Store on the host side, not wasm memory, so it has a state root and can be
// checkpointed. A call runs in a fresh instance, or in a Session with the
// calls before it in the same block, with a deterministic environment: the clock is the block time, randomness comes from the
// call's seed, and there is no filesystem, network or environment. The
// same calls on the same state give the same state root on every worker.
//
// The contract ABI (module "phala") is what package sdk uses; see abi.go.
package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/phala-go/phala/internal/detrand"
)

// Entry is a function a contract exports.
type Entry string

const (
	// EntryInit runs once, when the contract is instantiated on its miner.
	EntryInit Entry = "phala_init"
	// EntryCommand runs a command, in block order. It may write state.
	EntryCommand Entry = "phala_command"
	// EntryQuery answers a query. It may not write state.
	EntryQuery Entry = "phala_query"
)

// Errors. A contract's own failure is not an error of Execute: it is
// Result.Err, wrapping ErrContract.
var (
	ErrUnknownCode = errors.New("vm: no compiled code with this hash; compile it first")
	ErrBadCode     = errors.New("vm: code refused")
	ErrContract    = errors.New("contract failed")
	ErrTimeout     = errors.New("contract ran past the wall-clock limit")
	ErrOutOfGas    = errors.New("out of gas")
)

// Config configures an Engine. Zero fields take the defaults noted.
type Config struct {
	// MemoryLimitPages bounds a contract's linear memory, in 64 KiB pages.
	// Default 512 (32 MiB).
	MemoryLimitPages uint32
	// MaxCodeBytes bounds a contract's code. Default 8 MiB.
	MaxCodeBytes int
	// CacheDir keeps compiled modules on disk across restarts; "" keeps
	// them in memory only.
	CacheDir string
	// Timeout bounds one call's wall-clock time; default 5 s. It is a
	// safety net against a worker stalling, not a consensus rule: gas is.
	Timeout time.Duration
	// GasLimit is a call's gas when Env.Gas is 0. Default 100,000,000.
	GasLimit uint64
	// InitGas bounds the language runtime's start-up in each fresh
	// instance (Go's _initialize); it is not charged to the caller.
	// Default 2,000,000,000.
	InitGas uint64
}

func (c *Config) defaults() {
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = 512
	}
	if c.MaxCodeBytes == 0 {
		c.MaxCodeBytes = 8 << 20
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.GasLimit == 0 {
		c.GasLimit = 100_000_000
	}
	if c.InitGas == 0 {
		c.InitGas = 2_000_000_000
	}
}

// CodeHash names contract code: SHA-256 of the wasm bytes.
type CodeHash [32]byte

// Engine compiles contract code and executes calls. It is safe for
// concurrent use; each call gets its own instance.
type Engine struct {
	cfg   Config
	rt    wazero.Runtime
	cache wazero.CompilationCache

	mu    sync.RWMutex
	codes map[CodeHash]wazero.CompiledModule
}

// NewEngine starts a wazero runtime with the compiler engine, the WASI
// functions Go's runtime needs (made deterministic per call) and the phala
// host module.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.defaults()
	var cache wazero.CompilationCache
	var err error
	if cfg.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("vm: compilation cache %s: %w", cfg.CacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(cfg.MemoryLimitPages).
		WithCloseOnContextDone(true).
		WithCompilationCache(cache)
	e := &Engine{cfg: cfg, rt: wazero.NewRuntimeWithConfig(ctx, rc), cache: cache, codes: map[CodeHash]wazero.CompiledModule{}}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		e.Close(ctx)
		return nil, err
	}
	if err := instantiateHost(ctx, e.rt); err != nil {
		e.Close(ctx)
		return nil, err
	}
	return e, nil
}

// Close releases the runtime and its compiled code.
func (e *Engine) Close(ctx context.Context) error {
	err := e.rt.Close(ctx)
	e.cache.Close(ctx)
	return err
}

// Compile validates and compiles code, once per hash. Code may import only
// the phala host module and WASI, and must export the phala_* entries it
// is called through and, for Go, _initialize.
func (e *Engine) Compile(ctx context.Context, code []byte) (CodeHash, error) {
	h := CodeHash(sha256.Sum256(code))
	e.mu.RLock()
	_, ok := e.codes[h]
	e.mu.RUnlock()
	if ok {
		return h, nil
	}
	if len(code) > e.cfg.MaxCodeBytes {
		return h, fmt.Errorf("%w: %d bytes, limit %d", ErrBadCode, len(code), e.cfg.MaxCodeBytes)
	}
	metered, err := instrument(code)
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadCode, err)
	}
	cm, err := e.rt.CompileModule(ctx, metered)
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadCode, err)
	}
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != hostModule && mod != wasi_snapshot_preview1.ModuleName {
			cm.Close(ctx)
			return h, fmt.Errorf("%w: it imports %s.%s; contracts may import only %q and WASI", ErrBadCode, mod, name, hostModule)
		}
	}
	if len(cm.ImportedMemories()) > 0 {
		cm.Close(ctx)
		return h, fmt.Errorf("%w: it imports a memory", ErrBadCode)
	}
	exp := cm.ExportedFunctions()
	if _, ok := exp[string(EntryCommand)]; !ok {
		cm.Close(ctx)
		return h, fmt.Errorf("%w: it does not export %s (build it with the phala sdk)", ErrBadCode, EntryCommand)
	}
	e.mu.Lock()
	if _, ok := e.codes[h]; ok {
		cm.Close(ctx)
	} else {
		e.codes[h] = cm
	}
	e.mu.Unlock()
	return h, nil
}

// Env is what a call knows of the world.
type Env struct {
	// Contract is the called contract's instance id.
	Contract string
	// Caller is the authenticated caller: an account address, or the id
	// of the contract that sent the message.
	Caller string
	// Height and Time are the block's; Time is the contract's only clock.
	Height int64
	Time   time.Time
	// Seed is the call's randomness seed (from the contract key, height
	// and command index): unpredictable outside pRuntime, identical on
	// every worker.
	Seed []byte
	// Gas is the call's gas limit; 0 means Config.GasLimit.
	Gas uint64
	// CheckSend, if set, vets each message the call sends as it sends it;
	// an error fails the call (so a call never half-happens because one
	// of its messages could not be delivered).
	CheckSend func(to string) error
}

// Message is a message a contract sends to another contract.
type Message struct {
	To      string
	Payload []byte
}

// Result is a call's outcome.
type Result struct {
	// Output is the returned data (a query's answer, a command's reply);
	// on failure, the contract's error message if it gave one.
	Output   []byte
	Events   [][]byte
	Messages []Message
	// GasUsed is the gas the call consumed (its limit if it ran out).
	GasUsed uint64
	// Err, if set, wraps ErrContract (and ErrOutOfGas or ErrTimeout when
	// that stopped it): the call failed, its writes were discarded and its
	// events and messages dropped.
	Err error
}

// Execute calls entry of the compiled code in a fresh instance. A command
// or init applies its writes to store only if it succeeds; a query never
// writes. Execute's own error means the call could not be made at all.
func (e *Engine) Execute(ctx context.Context, code CodeHash, entry Entry, env Env, store Store, input []byte) (*Result, error) {
	s := e.NewSession(code)
	defer s.Close(ctx)
	return s.Execute(ctx, entry, env, store, input)
}

// Session runs calls to one contract in order in one instance, so Go's
// runtime starts once for them all instead of once per call. A call that
// fails (trap, out of gas, error) ends the instance, and the next call
// starts a fresh one. Determinism: a call's gas and result depend on the
// calls before it in the session, so every miner must draw the same
// session boundaries; pRuntime uses one session per contract per block.
// A Session is not safe for concurrent use.
type Session struct {
	e    *Engine
	code CodeHash
	inst *instance
}

// NewSession starts a session; the instance is made by the first call.
func (e *Engine) NewSession(code CodeHash) *Session { return &Session{e: e, code: code} }

// Close ends the session's instance.
func (s *Session) Close(ctx context.Context) {
	if s.inst != nil {
		s.inst.mod.Close(ctx)
		s.inst = nil
	}
}

// instance is a live module and the per-call plumbing its WASI functions
// read: the current call's clock and randomness.
type instance struct {
	mod    api.Module
	gas    api.MutableGlobal
	rand   switchReader
	stderr switchWriter
	now    time.Time
}

type switchReader struct{ r io.Reader }

func (s *switchReader) Read(p []byte) (int, error) { return s.r.Read(p) }

type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// Execute runs one call in the session's instance (starting one if
// needed), with the semantics of Engine.Execute.
func (s *Session) Execute(ctx context.Context, entry Entry, env Env, store Store, input []byte) (*Result, error) {
	e := s.e
	e.mu.RLock()
	cm, ok := e.codes[s.code]
	e.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownCode
	}
	c := &call{env: env, state: newOverlay(store), input: input, readOnly: entry == EntryQuery}
	c.rand = detrand.New(env.Seed)
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, callKey{}, c), e.cfg.Timeout)
	defer cancel()
	var stderr limitedBuffer
	res := &Result{}
	limit := env.Gas
	if limit == 0 {
		limit = e.cfg.GasLimit
	}
	var gas api.MutableGlobal
	fail := func(err error) (*Result, error) {
		switch {
		case gas != nil && int64(gas.Get()) == -1:
			err = fmt.Errorf("%w (limit %d)", ErrOutOfGas, limit)
		case cctx.Err() != nil && ctx.Err() == nil:
			err = fmt.Errorf("%w (%s): %w", ErrTimeout, e.cfg.Timeout, err)
		}
		res.Err = fmt.Errorf("%w: %w%s", ErrContract, err, stderr.tail())
		res.Output = c.output
		s.Close(ctx) // a trap may leave the runtime mid-way: start afresh
		return res, nil
	}
	if s.inst == nil {
		in := &instance{now: env.Time}
		in.rand.r, in.stderr.w = c.rand, &stderr
		var mono int64
		mc := wazero.NewModuleConfig().
			WithName("").
			WithStartFunctions(). // _initialize runs below, metered
			WithRandSource(&in.rand).
			WithWalltime(func() (int64, int32) { return in.now.Unix(), int32(in.now.Nanosecond()) }, sys.ClockResolution(1)).
			WithNanotime(func() int64 { mono++; return mono }, sys.ClockResolution(1)).
			WithNanosleep(func(int64) {}).
			WithOsyield(func() {}).
			WithStdout(io.Discard).
			WithStderr(&in.stderr)
		mod, err := e.rt.InstantiateModule(cctx, cm, mc)
		if err != nil {
			return fail(fmt.Errorf("instantiate: %w", err))
		}
		in.mod = mod
		s.inst = in
		if in.gas, _ = mod.ExportedGlobal(GasExport).(api.MutableGlobal); in.gas == nil {
			s.Close(ctx)
			return nil, fmt.Errorf("vm: compiled code lacks its gas global")
		}
		if start := mod.ExportedFunction("_initialize"); start != nil {
			in.gas.Set(e.cfg.InitGas)
			if _, err := start.Call(cctx); err != nil {
				if int64(in.gas.Get()) == -1 {
					return fail(fmt.Errorf("the contract's start-up ran past %d gas", e.cfg.InitGas))
				}
				return fail(fmt.Errorf("start-up: %w", err))
			}
		}
	}
	in := s.inst
	in.now, in.rand.r, in.stderr.w = env.Time, c.rand, &stderr
	gas = in.gas
	fn := in.mod.ExportedFunction(string(entry))
	if fn == nil {
		return fail(fmt.Errorf("the contract does not export %s", entry))
	}
	gas.Set(limit)
	out, err := fn.Call(cctx)
	if left := int64(gas.Get()); left >= 0 {
		res.GasUsed = limit - uint64(left)
	} else {
		res.GasUsed = limit
	}
	if err != nil {
		return fail(err)
	}
	if len(out) != 1 || out[0] != 0 {
		msg := "the contract returned an error"
		if len(c.output) > 0 {
			msg = string(c.output)
		}
		// The contract returned normally with an error: its runtime is
		// intact, the session keeps the instance.
		res.Err, res.Output = fmt.Errorf("%w: %s%s", ErrContract, msg, stderr.tail()), c.output
		return res, nil
	}
	if !c.readOnly {
		c.state.commit()
	}
	res.Output, res.Events, res.Messages = c.output, c.events, c.messages
	return res, nil
}

// limitedBuffer keeps the first 4 KiB written (a contract's panic message).
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) tail() string {
	s := bytes.TrimSpace(l.b.Bytes())
	if len(s) == 0 {
		return ""
	}
	if i := bytes.IndexByte(s, '\n'); i > 0 {
		s = s[:i] // the first line: "panic: ..."
	}
	return " (" + string(s) + ")"
}
