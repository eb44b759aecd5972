package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/rewards"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// governanceHooks wire the referenda (chain/governance) to the modules they
// change; docs/governance.md states what may be proposed and why the rest
// is refused.
func governanceHooks(env execEnv) governance.Hooks {
	return governance.Hooks{
		Check:   func(a *chainpb.ProposalAction) error { return checkAction(env.kv, a) },
		Execute: executeAction,
		Weight: func(a crypto.Address) (uint64, error) {
			bal, err := bank.Balance(env.kv, a)
			if err != nil {
				return 0, err
			}
			bonded, err := staking.Bonded(env.kv, a)
			if err != nil {
				return 0, err
			}
			w, carry := bits.Add64(bal, bonded, 0)
			if carry != 0 {
				return 0, fmt.Errorf("voting weight of %s overflows", a)
			}
			return w, nil
		},
		Supply: func() (uint64, error) { return bank.Supply(env.kv) },
	}
}

// checkAction judges an action at submission. Besides what would fail at
// execution, it refuses a proposal that would change nothing (parameters
// equal to the current ones, a build already allowed, a platform already
// frozen), so no referendum is spent on a no-op.
func checkAction(r store.Reader, a *chainpb.ProposalAction) error {
	switch k := a.GetKind().(type) {
	case *chainpb.ProposalAction_ParamChange:
		_, err := paramChange(r, k.ParamChange, true)
		return err
	case *chainpb.ProposalAction_SetMeasurement:
		sm := k.SetMeasurement
		if err := checkPlatform(r, sm.Platform); err != nil {
			return err
		}
		allowed, err := registry.MeasurementAllowed(r, sm.Platform, sm.Measurement)
		switch {
		case err != nil:
			return err
		case allowed && sm.Allowed:
			return fmt.Errorf("%s build %X is already on the allowlist", sm.Platform, sm.Measurement)
		case !allowed && !sm.Allowed:
			return fmt.Errorf("%s build %X is not on the allowlist; there is nothing to remove", sm.Platform, sm.Measurement)
		}
		return nil
	case *chainpb.ProposalAction_FreezePlatform:
		fp := k.FreezePlatform
		id, frozen, err := registry.FrozenBy(r, fp.Platform)
		switch {
		case err != nil:
			return err
		case frozen && fp.Frozen:
			return fmt.Errorf("platform %q is already frozen by referendum %d", fp.Platform, id)
		case !frozen && !fp.Frozen:
			return fmt.Errorf("platform %q is not frozen; there is nothing to unfreeze", fp.Platform)
		case fp.Frozen:
			return checkPlatform(r, fp.Platform)
		}
		return nil
	case *chainpb.ProposalAction_TreasurySpend:
		bal, err := bank.Balance(r, governance.Treasury)
		if err != nil {
			return err
		}
		if uint64(k.TreasurySpend.Amount) > bal {
			return fmt.Errorf("the spend of %s exceeds the %s the treasury holds", bank.FormatAmount(uint64(k.TreasurySpend.Amount)), bank.FormatAmount(bal))
		}
		return nil
	}
	return fmt.Errorf("unknown action kind %T", a.GetKind())
}

// executeAction applies referendum id's passed action. A parameter change
// is judged again against the state when voting ends (another change may
// have passed meanwhile); the other actions are idempotent.
func executeAction(kv store.KV, id uint64, a *chainpb.ProposalAction) error {
	switch k := a.GetKind().(type) {
	case *chainpb.ProposalAction_ParamChange:
		apply, err := paramChange(kv, k.ParamChange, false)
		if err != nil {
			return err
		}
		return apply(kv)
	case *chainpb.ProposalAction_SetMeasurement:
		sm := k.SetMeasurement
		return registry.SetMeasurement(kv, sm.Platform, sm.Measurement, sm.Allowed)
	case *chainpb.ProposalAction_FreezePlatform:
		return registry.SetFrozen(kv, k.FreezePlatform.Platform, k.FreezePlatform.Frozen, id)
	case *chainpb.ProposalAction_TreasurySpend:
		return governance.ExecuteTreasurySpend(kv, k.TreasurySpend)
	}
	return fmt.Errorf("unknown action kind %T", a.GetKind())
}

// checkPlatform refuses a platform this chain does not verify.
func checkPlatform(r store.Reader, platform string) error {
	p, err := registry.LoadParams(r)
	if err != nil {
		return err
	}
	if _, err := platformVerifier(p, platform); err != nil {
		return fmt.Errorf("platform %q: %w", platform, err)
	}
	return nil
}

// paramModule is a module whose parameters a param_change may replace.
type paramModule struct {
	// current reads the module's parameters.
	current func(r store.Reader) (any, error)
	// prepare decodes params_json strictly, judges it against r and
	// returns what writes it. With noop it refuses parameters equal to
	// the current ones.
	prepare func(r store.Reader, raw []byte, noop bool) (func(store.KV) error, error)
}

type validator interface{ Validate() error }

// moduleParams builds a paramModule: load reads the parameters, judge (if
// any) checks a change against the current ones, set writes them.
func moduleParams[T validator](load func(store.Reader) (T, error), judge func(old, p T) error, set func(store.KV, T) error) paramModule {
	return paramModule{
		current: func(r store.Reader) (any, error) { return load(r) },
		prepare: func(r store.Reader, raw []byte, noop bool) (func(store.KV) error, error) {
			old, err := load(r)
			if err != nil {
				return nil, err
			}
			p, err := decodeParams(raw, old)
			if err != nil {
				return nil, err
			}
			if err := p.Validate(); err != nil {
				return nil, err
			}
			if judge != nil {
				if err := judge(old, p); err != nil {
					return nil, err
				}
			}
			if noop {
				a, _ := json.Marshal(old)
				b, _ := json.Marshal(p)
				if bytes.Equal(a, b) {
					return nil, errors.New("params_json equals the current parameters; the proposal would change nothing")
				}
			}
			return func(kv store.KV) error { return set(kv, p) }, nil
		},
	}
}

// paramModules are the modules a param_change may change (docs/governance.md).
var paramModules = map[string]paramModule{
	"auth":     moduleParams(loadParams, nil, setParams),
	"registry": moduleParams(registry.LoadParams, nil, registry.SetParams),
	// staking.InitGenesis writes the parameters only.
	"staking":    moduleParams(staking.LoadParams, nil, staking.InitGenesis),
	"gatekeeper": moduleParams(loadGatekeeperParams, judgeGatekeeper, gatekeeper.SetParams),
	// contracts.InitGenesis writes the parameters only. An instance keeps
	// the checkpoint interval it was deployed with; a key rotation in
	// progress keeps its deadline.
	"contracts":  moduleParams(contracts.LoadParams, nil, contracts.InitGenesis),
	"rewards":    moduleParams(loadRewardsParams, nil, func(kv store.KV, p rewards.Params) error { return store.SetJSON(kv, rewardsParamsKey, p) }),
	"governance": moduleParams(governance.LoadParams, nil, governance.SetParams),
}

// fixedParams are the modules whose parameters no referendum changes, and why.
var fixedParams = map[string]string{
	"monitor": "monitor parameters are fixed at genesis: every pRuntime reads heartbeat_blocks from the genesis document, so a change on chain would judge workers by an interval they do not keep",
	"bank":    "the bank has no parameters (the supply is fixed at genesis; the treasury pays by treasury_spend)",
}

// paramModuleNames lists the modules a param_change may change.
func paramModuleNames() []string {
	ms := make([]string, 0, len(paramModules))
	for m := range paramModules {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

// paramChange judges a param_change against r and returns what applies it.
func paramChange(r store.Reader, pc *chainpb.ParamChange, noop bool) (func(store.KV) error, error) {
	m, ok := paramModules[pc.Module]
	if !ok {
		if why, fixed := fixedParams[pc.Module]; fixed {
			return nil, errors.New(why)
		}
		return nil, fmt.Errorf("no module %q has parameters a referendum may change; the modules are %s", pc.Module, strings.Join(paramModuleNames(), ", "))
	}
	apply, err := m.prepare(r, pc.ParamsJson, noop)
	if err != nil {
		return nil, fmt.Errorf("%s parameters: %w", pc.Module, err)
	}
	return apply, nil
}

// moduleParamsJSON is module's current parameters as JSON (the object a
// param_change must carry, changed where it should).
func moduleParamsJSON(r store.Reader, module string) ([]byte, error) {
	m, ok := paramModules[module]
	if !ok {
		return nil, ErrBadQuery.Wrapf("no module %q has parameters a referendum may change; the modules are %s", module, strings.Join(paramModuleNames(), ", "))
	}
	p, err := m.current(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// decodeParams reads params_json as the whole parameters of old's type:
// one JSON object, no unknown field, and every field old has, since a
// field left out would silently become zero.
func decodeParams[T any](raw []byte, old T) (T, error) {
	var p T
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("params_json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return p, errors.New("params_json: data after the JSON object")
	}
	var given, want map[string]json.RawMessage
	if err := json.Unmarshal(raw, &given); err != nil {
		return p, fmt.Errorf("params_json: %w", err)
	}
	b, err := json.Marshal(old)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &want); err != nil {
		return p, err
	}
	var missing []string
	for k := range want {
		if _, ok := given[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return p, fmt.Errorf("params_json lacks %s: a param_change replaces the module's whole parameters; start from the current ones (`phala gov params MODULE`)", strings.Join(missing, ", "))
	}
	return p, nil
}

// loadGatekeeperParams reads the launch parameters, which exist only on a
// chain whose genesis configures a launch.
func loadGatekeeperParams(r store.Reader) (gatekeeper.Params, error) {
	if st, err := gatekeeper.Launch(r); err != nil {
		return gatekeeper.Params{}, err
	} else if st == nil {
		return gatekeeper.Params{}, errors.New("this chain configures no launch (its genesis has no gatekeeper section), so it has no gatekeeper parameters")
	}
	return gatekeeper.LoadParams(r)
}

// judgeGatekeeper keeps era_blocks: eras are numbered height / era_blocks
// by the rotations, the monitor and the rewards alike, and every pRuntime
// reads era_blocks from the genesis document. The other parameters apply
// from the next election or attempt: a running round or rotation attempt
// keeps the deadline it was given.
func judgeGatekeeper(old, p gatekeeper.Params) error {
	if p.EraBlocks != old.EraBlocks {
		return fmt.Errorf("era_blocks must stay %d: eras are numbered by it (height / era_blocks) on chain and in every pRuntime, which reads it from the genesis document", old.EraBlocks)
	}
	return nil
}

// actionKind names an action's kind as the proto does (param_change, ...).
func actionKind(a *chainpb.ProposalAction) string {
	m := a.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("kind")); fd != nil {
		return string(fd.Name())
	}
	return "none"
}

// voteOption names an option as the CLI takes it.
func voteOption(o chainpb.VoteOption) string {
	switch o {
	case chainpb.VoteOption_VOTE_OPTION_YES:
		return "yes"
	case chainpb.VoteOption_VOTE_OPTION_NO:
		return "no"
	case chainpb.VoteOption_VOTE_OPTION_ABSTAIN:
		return "abstain"
	}
	return o.String()
}
