package gatekeeper

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

var (
	paramsKey = []byte("gatekeeper/params")
	launchKey = []byte("gatekeeper/launch")
	// PhaseKey holds the network phase as text.
	PhaseKey = []byte("chain/phase")
)

func excludedKey(worker []byte) []byte { return append([]byte("gatekeeper/excluded/"), worker...) }

// InitGenesis writes the launch's genesis state; genesisWorker is the
// registry's genesis worker key.
func InitGenesis(kv store.KV, g Genesis, genesisWorker []byte) error {
	if err := g.Validate(); err != nil {
		return err
	}
	if len(genesisWorker) == 0 {
		return errors.New("the launch needs a genesis worker (registry genesis_worker)")
	}
	if err := store.SetJSON(kv, paramsKey, g.Params); err != nil {
		return err
	}
	if err := kv.Set(PhaseKey, []byte(PhasePreLaunch)); err != nil {
		return err
	}
	return save(kv, &chainpb.LaunchState{Phase: string(PhasePreLaunch), RootPublicKey: g.RootPublicKey, GenesisWorker: genesisWorker})
}

// SetParams validates and replaces the launch parameters (a param_change
// referendum; the app keeps era_blocks as the genesis set it).
func SetParams(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the launch parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "gatekeeper parameters")
}

// LoadPhase reads the network phase.
func LoadPhase(r store.Reader) (Phase, error) {
	b, err := r.Get(PhaseKey)
	return Phase(b), err
}

// Launch reads the launch's progress; nil if the genesis configured no
// launch.
func Launch(r store.Reader) (*chainpb.LaunchState, error) {
	b, err := r.Get(launchKey)
	if err != nil || b == nil {
		return nil, err
	}
	var st chainpb.LaunchState
	if err := proto.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("launch record is corrupt: %w", err)
	}
	return &st, nil
}

func save(kv store.KV, st *chainpb.LaunchState) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(st)
	if err != nil {
		return err
	}
	return kv.Set(launchKey, b)
}

// Excluded reports whether a candidate missed a handover deadline; a new
// bond (MsgStake) clears it.
func Excluded(r store.Reader, worker []byte) (bool, error) {
	v, err := r.Get(excludedKey(worker))
	return v != nil, err
}

// Exclude bars a candidate from elections until its operator bonds again
// (the monitor excludes unresponsive gatekeepers).
func Exclude(kv store.KV, worker []byte) error { return kv.Set(excludedKey(worker), []byte{1}) }

// ClearExclusion makes a candidate electable again.
func ClearExclusion(kv store.KV, worker []byte) error { return kv.Delete(excludedKey(worker)) }

// Hooks are what the launch needs from other modules.
type Hooks struct {
	// Eligible reports whether a bonded worker may stand (registered,
	// active, not the genesis worker).
	Eligible func(worker []byte) (bool, error)
	// HPKEKey returns a registered worker's HPKE public key.
	HPKEKey func(worker []byte) ([]byte, error)
	// Retire retires a worker.
	Retire func(worker []byte) error
}

// EndBlock advances the launch at the end of block height: it holds the
// election once pre-launch may end, and expires a round whose deadline
// passed.
//
// After the launch it runs the eras: blockHash (this block's hash) seeds
// the draw of a rotation's leaders.
func EndBlock(kv store.KV, log *mq.Log, height int64, blockHash []byte, h RotationHooks) error {
	st, err := Launch(kv)
	if err != nil || st == nil {
		return err
	}
	p, err := LoadParams(kv)
	if err != nil {
		return err
	}
	if st.Phase != string(PhasePreLaunch) {
		return eraEndBlock(kv, log, height, blockHash, p, h)
	}
	if len(st.Elected) > 0 {
		if height < st.Deadline {
			return nil
		}
		var missing [][]byte
		for _, g := range st.Elected {
			if !containsKey(st.Confirmed, g.SigningKey) {
				missing = append(missing, g.SigningKey)
			}
		}
		// Without a handover nobody could confirm: the genesis worker is at
		// fault, not the gatekeepers, so nobody is excluded.
		if st.HandedOver {
			for _, m := range missing {
				if err := kv.Set(excludedKey(m), []byte{1}); err != nil {
					return err
				}
			}
		}
		if err := log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ElectionExpired{ElectionExpired: &chainpb.ElectionExpired{Round: st.Round, Missing: missing}}}); err != nil {
			return err
		}
		st.Elected, st.Confirmed, st.Deadline, st.HandedOver = nil, nil, 0, false
		return save(kv, st)
	}
	if height < p.ElectionHeight {
		return nil
	}
	winners, err := staking.Elect(kv, p.NGatekeepers, func(w []byte) (bool, error) {
		if bytes.Equal(w, st.GenesisWorker) {
			return false, nil
		}
		if ex, err := Excluded(kv, w); err != nil || ex {
			return false, err
		}
		return h.Eligible(w)
	})
	if errors.Is(err, staking.ErrNotEnoughCandidates) {
		return nil // retried next block
	}
	if err != nil {
		return fmt.Errorf("gatekeeper election at height %d: %w", height, err)
	}
	st.Round++
	st.Elected = st.Elected[:0]
	for _, w := range winners {
		key := []byte(w.ID)
		hk, err := h.HPKEKey(key)
		if err != nil {
			return err
		}
		st.Elected = append(st.Elected, &chainpb.Gatekeeper{SigningKey: key, HpkeKey: hk, Backing: w.Backing})
	}
	st.Deadline = height + p.HandoverBlocks
	if err := save(kv, st); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_GatekeepersElected{GatekeepersElected: &chainpb.GatekeepersElected{
		Round: st.Round, Gatekeepers: st.Elected, Deadline: st.Deadline, GenesisWorker: st.GenesisWorker,
	}}})
}

// HandleMessage applies a delivered worker message to the launch. A message
// that does not fit the launch's state (another round, a wrong key, a
// sender with no part in it) has no effect: ignored names why. It is not an
// error, because the message was delivered and its sequence consumed.
func HandleMessage(kv store.KV, log *mq.Log, sender []byte, wm *chainpb.WorkerMessage, h RotationHooks) (ignored string, err error) {
	switch wm.Kind.(type) {
	case *chainpb.WorkerMessage_RotationShare, *chainpb.WorkerMessage_RotationKeys, *chainpb.WorkerMessage_RotationState, *chainpb.WorkerMessage_RotationConfirm:
		return handleRotation(kv, log, sender, wm, h)
	}
	st, err := Launch(kv)
	if err != nil {
		return "", err
	}
	if st == nil {
		return "no launch is configured", nil
	}
	if st.Phase != string(PhasePreLaunch) {
		return "the network has launched", nil
	}
	switch m := wm.Kind.(type) {
	case *chainpb.WorkerMessage_Handover:
		ho := m.Handover
		switch {
		case !bytes.Equal(sender, st.GenesisWorker):
			return "only the genesis worker hands the root key over", nil
		case len(st.Elected) == 0 || ho.Round != st.Round:
			return fmt.Sprintf("handover for round %d; the open round is %d", ho.Round, openRound(st)), nil
		case st.HandedOver:
			return "the root key was already handed over this round", nil
		case !bytes.Equal(ho.RootPublicKey, st.RootPublicKey):
			return "handover names another root key", nil
		case !sameRecipients(ho.Keys, st.Elected):
			return "handover must seal the key to exactly the elected gatekeepers", nil
		case !validHPKEKey(ho.RootHpkeKey):
			return "handover without a well-formed root encryption key", nil
		}
		st.HandedOver, st.RootHpkeKey = true, ho.RootHpkeKey
		return "", save(kv, st)
	case *chainpb.WorkerMessage_Confirm:
		c := m.Confirm
		switch {
		case len(st.Elected) == 0 || c.Round != st.Round:
			return fmt.Sprintf("confirmation for round %d; the open round is %d", c.Round, openRound(st)), nil
		case !st.HandedOver:
			return "nothing was handed over yet", nil
		case !slices.ContainsFunc(st.Elected, func(g *chainpb.Gatekeeper) bool { return bytes.Equal(g.SigningKey, sender) }):
			return "the sender is not an elected gatekeeper", nil
		case containsKey(st.Confirmed, sender):
			return "already confirmed", nil
		case !bytes.Equal(c.RootPublicKey, st.RootPublicKey):
			return "confirms another root key", nil
		}
		st.Confirmed = append(st.Confirmed, sender)
		if len(st.Confirmed) < len(st.Elected) {
			return "", save(kv, st)
		}
		return "", launch(kv, log, st, h.Hooks)
	}
	return "not a launch message", nil
}

func launch(kv store.KV, log *mq.Log, st *chainpb.LaunchState, h Hooks) error {
	st.Phase = string(PhaseLaunched)
	if err := save(kv, st); err != nil {
		return err
	}
	if err := kv.Set(PhaseKey, []byte(PhaseLaunched)); err != nil {
		return err
	}
	if err := saveEra(kv, &chainpb.EraState{Gatekeepers: st.Elected, RootPublicKey: st.RootPublicKey, RootHpkeKey: st.RootHpkeKey, Since: log.Height()}); err != nil {
		return err
	}
	gks := make([][]byte, len(st.Elected))
	for i, g := range st.Elected {
		gks[i] = g.SigningKey
	}
	if err := log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_Launched{Launched: &chainpb.Launched{Round: st.Round, Gatekeepers: gks, RootPublicKey: st.RootPublicKey, RootHpkeKey: st.RootHpkeKey}}}); err != nil {
		return err
	}
	return h.Retire(st.GenesisWorker)
}

func openRound(st *chainpb.LaunchState) uint64 {
	if len(st.Elected) == 0 {
		return 0
	}
	return st.Round
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
}

func sameRecipients(keys []*chainpb.SealedKey, elected []*chainpb.Gatekeeper) bool {
	if len(keys) != len(elected) {
		return false
	}
	for _, g := range elected {
		n := 0
		for _, k := range keys {
			if bytes.Equal(k.Recipient, g.SigningKey) {
				n++
			}
		}
		if n != 1 {
			return false
		}
	}
	return true
}

// Renew passes worker old's gatekeeper seat (and any exclusion) to its
// successor identity. While a launch round is open its elected workers may
// not renew: the genesis worker seals the root key to the keys it elected.
func Renew(kv store.KV, old *chainpb.Worker, successor *chainpb.Worker) error {
	if ex, err := Excluded(kv, old.SigningKey); err != nil {
		return err
	} else if ex {
		if err := kv.Set(excludedKey(successor.SigningKey), []byte{1}); err != nil {
			return err
		}
	}
	st, err := Launch(kv)
	if err != nil || st == nil {
		return err
	}
	i := slices.IndexFunc(st.Elected, func(g *chainpb.Gatekeeper) bool { return bytes.Equal(g.SigningKey, old.SigningKey) })
	if i >= 0 && st.Phase != string(PhaseLaunched) {
		return ErrInOpenRound.Wrapf("worker %X is elected in launch round %d; renew once the round launches or expires", old.SigningKey, st.Round)
	}
	es, err := Era(kv)
	if err != nil {
		return err
	}
	if r := es.GetRotation(); r != nil && (hasGatekeeper(r.Incoming, old.SigningKey) || hasGatekeeper(es.Gatekeepers, old.SigningKey)) {
		return ErrInRotation.Wrapf("worker %X takes part in the root key rotation to era %d; renew once it is ready", old.SigningKey, r.Era)
	}
	if i >= 0 {
		st.Elected[i] = &chainpb.Gatekeeper{SigningKey: successor.SigningKey, HpkeKey: successor.HpkeKey, Backing: st.Elected[i].Backing}
		for j, c := range st.Confirmed {
			if bytes.Equal(c, old.SigningKey) {
				st.Confirmed[j] = successor.SigningKey
			}
		}
		if err := save(kv, st); err != nil {
			return err
		}
	}
	if es == nil {
		return nil
	}
	j := slices.IndexFunc(es.Gatekeepers, func(g *chainpb.Gatekeeper) bool { return bytes.Equal(g.SigningKey, old.SigningKey) })
	if j < 0 {
		return nil
	}
	es.Gatekeepers[j] = &chainpb.Gatekeeper{SigningKey: successor.SigningKey, HpkeKey: successor.HpkeKey, Backing: es.Gatekeepers[j].Backing}
	return saveEra(kv, es)
}

// Seated reports whether worker holds a gatekeeper seat: the network has
// launched and worker is in the current era's set (following renewals).
func Seated(r store.Reader, worker []byte) (bool, error) {
	es, err := Era(r)
	if err != nil || es == nil {
		return false, err
	}
	return hasGatekeeper(es.Gatekeepers, worker), nil
}

// validHPKEKey: a root encryption key the chain passes on must parse (of
// the default suite, at its exact size), so miners never seal a contract
// key to garbage.
func validHPKEKey(b []byte) bool {
	_, err := crypto.ParseHPKEPublicKey(b)
	return err == nil
}
