package gatekeeper

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
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

// The root key rotation between eras (paper 4.7; docs/eras.md).

var eraKey = []byte("gatekeeper/era")

// rotKeyKey holds a contract's k_c re-encrypted under the rotation's new
// root key until Rotation Ready.
func rotKeyKey(contract []byte) []byte { return append([]byte("gatekeeper/rotkey/"), contract...) }

// Limits on rotation messages: the outgoing leader's state comes in parts
// of at most MaxStateKeys keys.
const (
	MaxStateKeys  = crypto.RotationStateKeys
	maxStateParts = 10_000
	maxEnvelope   = 4096
)

// RotationHooks are what a rotation needs from other modules, besides
// Hooks.
type RotationHooks struct {
	Hooks
	// KeyedContracts lists, in ascending id order, the contracts whose k_c
	// the chain keeps (wrapped under the current root key).
	KeyedContracts func() ([][]byte, error)
	// SetWrappedKey replaces a contract's stored k_c (at Rotation Ready).
	SetWrappedKey func(contract, wrapped []byte) error
	// Awaiting lists the miners still owed a contract key.
	Awaiting func() ([]*chainpb.AwaitingKey, error)
	// Slash takes the unresponsive gatekeeper's slash and returns it.
	Slash func(worker []byte) (uint64, error)
}

// Era reads the current root key's era; nil before the launch.
func Era(r store.Reader) (*chainpb.EraState, error) {
	b, err := r.Get(eraKey)
	if err != nil || b == nil {
		return nil, err
	}
	var es chainpb.EraState
	if err := proto.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("era record is corrupt: %w", err)
	}
	return &es, nil
}

func saveEra(kv store.KV, es *chainpb.EraState) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(es)
	if err != nil {
		return err
	}
	return kv.Set(eraKey, b)
}

// Rotating reports whether a root key rotation is in progress: key traffic
// between miners and gatekeepers is paused.
func Rotating(r store.Reader) (bool, error) {
	es, err := Era(r)
	return es != nil && es.Rotation != nil, err
}

// Involved reports whether worker holds a seat or is elected to one in the
// rotation in progress: it may neither leave nor unbond below the minimum.
func Involved(r store.Reader, worker []byte) (bool, error) {
	es, err := Era(r)
	if err != nil || es == nil {
		return false, err
	}
	if hasGatekeeper(es.Gatekeepers, worker) {
		return true, nil
	}
	return es.Rotation != nil && hasGatekeeper(es.Rotation.Incoming, worker), nil
}

func hasGatekeeper(gs []*chainpb.Gatekeeper, w []byte) bool {
	return slices.ContainsFunc(gs, func(g *chainpb.Gatekeeper) bool { return bytes.Equal(g.SigningKey, w) })
}

// eraEndBlock runs the eras after the launch: it starts a rotation in the
// last block of an era and expires an attempt whose deadline passed.
func eraEndBlock(kv store.KV, log *mq.Log, height int64, blockHash []byte, p Params, h RotationHooks) error {
	es, err := Era(kv)
	if err != nil || es == nil || p.EraBlocks == 0 {
		return err
	}
	if rot := es.Rotation; rot != nil {
		if height < rot.Deadline {
			return nil
		}
		return expire(kv, log, es, height, blockHash, p, h)
	}
	if height%p.EraBlocks != 0 || height <= es.Since {
		return nil
	}
	next := uint64(height / p.EraBlocks)
	if next <= es.Era {
		return nil
	}
	return start(kv, log, es, next, 1, height, blockHash, p, h)
}

// start elects G_n and the leaders and opens attempt of the rotation to
// era n.
func start(kv store.KV, log *mq.Log, es *chainpb.EraState, n, attempt uint64, height int64, blockHash []byte, p Params, h RotationHooks) error {
	st, err := Launch(kv)
	if err != nil {
		return err
	}
	eligible := func(w []byte) (bool, error) {
		if st != nil && bytes.Equal(w, st.GenesisWorker) {
			return false, nil
		}
		if ex, err := Excluded(kv, w); err != nil || ex {
			return false, err
		}
		return h.Eligible(w)
	}
	// Fewer candidates than seats elect a smaller set rather than none.
	var winners []staking.Winner
	for seats := p.NGatekeepers; seats >= 1; seats-- {
		winners, err = staking.Elect(kv, seats, eligible)
		if !errors.Is(err, staking.ErrNotEnoughCandidates) {
			break
		}
	}
	if errors.Is(err, staking.ErrNotEnoughCandidates) {
		// Nobody can stand: the current set keeps the key for another era.
		es.Rotation = nil
		return saveEra(kv, es)
	}
	if err != nil {
		return fmt.Errorf("gatekeeper election for era %d at height %d: %w", n, height, err)
	}
	incoming := make([]*chainpb.Gatekeeper, 0, len(winners))
	for _, w := range winners {
		key := []byte(w.ID)
		hk, err := h.HPKEKey(key)
		if err != nil {
			return err
		}
		incoming = append(incoming, &chainpb.Gatekeeper{SigningKey: key, HpkeKey: hk, Backing: w.Backing})
	}
	seed := LeaderSeed(n, attempt, blockHash)
	var outCands [][]byte
	for _, g := range es.Gatekeepers {
		if ex, err := Excluded(kv, g.SigningKey); err != nil {
			return err
		} else if !ex {
			outCands = append(outCands, g.SigningKey)
		}
	}
	if len(outCands) == 0 {
		for _, g := range es.Gatekeepers {
			outCands = append(outCands, g.SigningKey)
		}
	}
	lOut := outCands[binary.BigEndian.Uint64(seed[:8])%uint64(len(outCands))]
	var inCands [][]byte
	for _, g := range incoming {
		if !bytes.Equal(g.SigningKey, lOut) {
			inCands = append(inCands, g.SigningKey)
		}
	}
	if len(inCands) == 0 {
		inCands = [][]byte{incoming[0].SigningKey}
	}
	lIn := inCands[binary.BigEndian.Uint64(seed[8:16])%uint64(len(inCands))]
	keyed, err := h.KeyedContracts()
	if err != nil {
		return err
	}
	for _, id := range keyed {
		if err := kv.Delete(rotKeyKey(id)); err != nil {
			return err
		}
	}
	rot := &chainpb.Rotation{Era: n, Attempt: attempt, Incoming: incoming, OutgoingLeader: lOut, IncomingLeader: lIn,
		Started: height, Deadline: height + p.RotationBlocks, KeysExpected: uint64(len(keyed))}
	es.Rotation = rot
	if err := saveEra(kv, es); err != nil {
		return err
	}
	outgoing := make([][]byte, len(es.Gatekeepers))
	for i, g := range es.Gatekeepers {
		outgoing[i] = g.SigningKey
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_RotationStarted{RotationStarted: &chainpb.RotationStarted{
		Era: n, Attempt: attempt, Incoming: incoming, Outgoing: outgoing, OutgoingLeader: lOut, IncomingLeader: lIn,
		Deadline: rot.Deadline, Keys: rot.KeysExpected, Seed: seed,
	}}})
}

// LeaderSeed is the randomness that draws a rotation's leaders: the hash of
// the block that starts the attempt, bound to the era and attempt.
func LeaderSeed(era, attempt uint64, blockHash []byte) []byte {
	hs := sha256.New()
	hs.Write([]byte("phala/rotation/leaders/v1\x00"))
	hs.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, era), attempt))
	hs.Write(blockHash)
	return hs.Sum(nil)
}

// expire ends an attempt that missed its deadline: it slashes and excludes
// whoever stalled it (docs/eras.md step 7) and starts the next attempt.
func expire(kv store.KV, log *mq.Log, es *chainpb.EraState, height int64, blockHash []byte, p Params, h RotationHooks) error {
	rot := es.Rotation
	var late [][]byte
	add := func(w []byte) {
		if !slices.ContainsFunc(late, func(x []byte) bool { return bytes.Equal(x, w) }) {
			late = append(late, w)
		}
	}
	switch {
	case !rot.OutgoingShared || !rot.IncomingShared:
		if !rot.OutgoingShared {
			add(rot.OutgoingLeader)
		}
		if !rot.IncomingShared {
			add(rot.IncomingLeader)
		}
	case rot.KeysHeight == 0 || rot.StateHeight == 0:
		if rot.KeysHeight == 0 {
			add(rot.IncomingLeader)
		}
		if rot.StateHeight == 0 {
			add(rot.OutgoingLeader)
		}
	default:
		for _, g := range rot.Incoming {
			if !containsKey(rot.Confirmed, g.SigningKey) {
				add(g.SigningKey)
			}
		}
	}
	for _, w := range late {
		if _, err := h.Slash(w); err != nil {
			return err
		}
		if err := kv.Set(excludedKey(w), []byte{1}); err != nil {
			return err
		}
	}
	if err := log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_RotationExpired{RotationExpired: &chainpb.RotationExpired{
		Era: rot.Era, Attempt: rot.Attempt, Unresponsive: late,
	}}}); err != nil {
		return err
	}
	es.Expired++
	es.Rotation = nil
	return start(kv, log, es, rot.Era, rot.Attempt+1, height, blockHash, p, h)
}

// handleRotation applies a delivered rotation message. ignored names why a
// message had no effect; it is not an error (the sequence was consumed).
func handleRotation(kv store.KV, log *mq.Log, sender []byte, wm *chainpb.WorkerMessage, h RotationHooks) (ignored string, err error) {
	es, err := Era(kv)
	if err != nil {
		return "", err
	}
	if es == nil || es.Rotation == nil {
		return "no root key rotation is in progress", nil
	}
	rot := es.Rotation
	mismatch := func(era, attempt uint64) string {
		if era != rot.Era || attempt != rot.Attempt {
			return fmt.Sprintf("for era %d attempt %d; the rotation in progress is era %d attempt %d", era, attempt, rot.Era, rot.Attempt)
		}
		return ""
	}
	height := log.Height()
	switch m := wm.Kind.(type) {
	case *chainpb.WorkerMessage_RotationShare:
		s := m.RotationShare
		if note := mismatch(s.Era, s.Attempt); note != "" {
			return "rotation share " + note, nil
		}
		leader, other, done := rot.OutgoingLeader, rot.IncomingLeader, rot.OutgoingShared
		if s.Incoming {
			leader, other, done = rot.IncomingLeader, rot.OutgoingLeader, rot.IncomingShared
		}
		switch {
		case !bytes.Equal(sender, leader):
			return "rotation share from a worker that is not that leader", nil
		case done:
			return "this leader's share is already in", nil
		case len(s.Salt) != crypto.RotationShareSize:
			return fmt.Sprintf("rotation share with a %d-byte salt, want %d", len(s.Salt), crypto.RotationShareSize), nil
		case s.Share == nil || !bytes.Equal(s.Share.Recipient, other) || len(s.Share.Envelope) == 0 || len(s.Share.Envelope) > maxEnvelope:
			return "rotation share not sealed to the other leader", nil
		}
		if s.Incoming {
			rot.IncomingShared = true
		} else {
			rot.OutgoingShared = true
		}
		if rot.IncomingShared && rot.OutgoingShared {
			rot.SharesHeight = height
		}
	case *chainpb.WorkerMessage_RotationKeys:
		k := m.RotationKeys
		if note := mismatch(k.Era, k.Attempt); note != "" {
			return "rotation keys " + note, nil
		}
		switch {
		case !bytes.Equal(sender, rot.IncomingLeader):
			return "only the incoming leader distributes the new root key", nil
		case rot.SharesHeight == 0:
			return "both leaders' shares must be in before the new root key", nil
		case rot.KeysHeight != 0:
			return "the new root key was already distributed", nil
		case len(k.RootPublicKey) != ed25519.PublicKeySize:
			return "rotation keys with a malformed root public key", nil
		case rot.StateRootPublicKey != nil && !bytes.Equal(rot.StateRootPublicKey, k.RootPublicKey):
			return "the new root key differs from the one the state was re-encrypted under", nil
		case !validHPKEKey(k.RootHpkeKey):
			return "rotation keys without a well-formed root encryption key", nil
		case !sameRecipients(k.Keys, rot.Incoming) || slices.ContainsFunc(k.Keys, func(sk *chainpb.SealedKey) bool { return len(sk.Envelope) == 0 || len(sk.Envelope) > maxEnvelope }):
			return "the new root key must be sealed to exactly the incoming gatekeepers", nil
		}
		rot.RootPublicKey, rot.RootHpkeKey, rot.KeysHeight = k.RootPublicKey, k.RootHpkeKey, height
	case *chainpb.WorkerMessage_RotationState:
		if note, err := takeState(kv, rot, sender, m.RotationState, height, h); note != "" || err != nil {
			return note, err
		}
	case *chainpb.WorkerMessage_RotationConfirm:
		c := m.RotationConfirm
		if note := mismatch(c.Era, c.Attempt); note != "" {
			return "rotation confirmation " + note, nil
		}
		switch {
		case !hasGatekeeper(rot.Incoming, sender):
			return "rotation confirmation from a worker not in the incoming set", nil
		case rot.KeysHeight == 0 || rot.StateHeight == 0:
			return "nothing to confirm yet: the new root key and the whole state must be on chain", nil
		case !bytes.Equal(c.RootPublicKey, rot.RootPublicKey):
			return "the confirmation names another root key", nil
		case containsKey(rot.Confirmed, sender):
			return "already confirmed", nil
		}
		rot.Confirmed = append(rot.Confirmed, sender)
		if len(rot.Confirmed) == len(rot.Incoming) {
			return "", ready(kv, log, es, height, h)
		}
	default:
		return "not a rotation message", nil
	}
	return "", saveEra(kv, es)
}

// takeState keeps one part of the outgoing leader's re-encrypted state.
func takeState(kv store.KV, rot *chainpb.Rotation, sender []byte, s *chainpb.RotationState, height int64, h RotationHooks) (string, error) {
	if s.Era != rot.Era || s.Attempt != rot.Attempt {
		return fmt.Sprintf("rotation state for era %d attempt %d; the rotation in progress is era %d attempt %d", s.Era, s.Attempt, rot.Era, rot.Attempt), nil
	}
	switch {
	case !bytes.Equal(sender, rot.OutgoingLeader):
		return "only the outgoing leader re-encrypts the state", nil
	case rot.SharesHeight == 0:
		return "both leaders' shares must be in before the state", nil
	case rot.StateHeight != 0:
		return "the state is already complete", nil
	case len(s.RootPublicKey) != ed25519.PublicKeySize:
		return "rotation state with a malformed root public key", nil
	case rot.RootPublicKey != nil && !bytes.Equal(rot.RootPublicKey, s.RootPublicKey):
		return "the state is re-encrypted under another root key than the one distributed", nil
	case rot.StateRootPublicKey != nil && !bytes.Equal(rot.StateRootPublicKey, s.RootPublicKey):
		return "this part names another root key than the earlier parts", nil
	case s.Parts == 0 || s.Parts > maxStateParts || (rot.Parts != 0 && s.Parts != rot.Parts):
		return fmt.Sprintf("rotation state in %d parts; expected %d", s.Parts, rot.Parts), nil
	case s.Part != rot.PartsReceived:
		return fmt.Sprintf("rotation state part %d; the next is %d", s.Part, rot.PartsReceived), nil
	case len(s.Keys) > MaxStateKeys:
		return fmt.Sprintf("rotation state part with %d keys; at most %d", len(s.Keys), MaxStateKeys), nil
	case rot.KeysReceived+uint64(len(s.Keys)) > rot.KeysExpected:
		return "rotation state has more keys than the chain keeps", nil
	}
	stored, err := h.KeyedContracts()
	if err != nil {
		return "", err
	}
	var prev []byte
	for _, k := range s.Keys {
		if len(k.WrappedKey) == 0 || len(k.WrappedKey) > 256 {
			return "rotation state with a malformed wrapped key", nil
		}
		if prev != nil && bytes.Compare(k.Contract, prev) <= 0 {
			return "rotation state keys out of contract id order", nil
		}
		prev = k.Contract
		if _, found := slices.BinarySearchFunc(stored, k.Contract, bytes.Compare); !found {
			return "rotation state names a contract whose key the chain does not keep", nil
		}
		if v, err := kv.Get(rotKeyKey(k.Contract)); err != nil {
			return "", err
		} else if v != nil {
			return "rotation state repeats a contract", nil
		}
	}
	if s.Part+1 == s.Parts && rot.KeysReceived+uint64(len(s.Keys)) != rot.KeysExpected {
		// The leader may still send a complete last part; the deadline
		// slashes it if it does not.
		return fmt.Sprintf("the last part leaves the state incomplete: %d of %d keys", rot.KeysReceived+uint64(len(s.Keys)), rot.KeysExpected), nil
	}
	for _, k := range s.Keys {
		if err := kv.Set(rotKeyKey(k.Contract), k.WrappedKey); err != nil {
			return "", err
		}
	}
	rot.Parts, rot.StateRootPublicKey = s.Parts, s.RootPublicKey
	rot.PartsReceived++
	rot.KeysReceived += uint64(len(s.Keys))
	if rot.PartsReceived == rot.Parts {
		rot.StateHeight = height
	}
	return "", nil
}

// ready: Key Rotation Ready. The new wrapped keys replace the old, G_n
// takes the seats, and key traffic resumes.
func ready(kv store.KV, log *mq.Log, es *chainpb.EraState, height int64, h RotationHooks) error {
	rot := es.Rotation
	keyed, err := h.KeyedContracts()
	if err != nil {
		return err
	}
	for _, id := range keyed {
		w, err := kv.Get(rotKeyKey(id))
		if err != nil {
			return err
		}
		if w == nil {
			return fmt.Errorf("rotation to era %d is complete but contract %X has no re-encrypted key", rot.Era, id)
		}
		if err := h.SetWrappedKey(id, w); err != nil {
			return err
		}
		if err := kv.Delete(rotKeyKey(id)); err != nil {
			return err
		}
	}
	var retired, gks [][]byte
	for _, g := range es.Gatekeepers {
		if !hasGatekeeper(rot.Incoming, g.SigningKey) {
			retired = append(retired, g.SigningKey)
		}
	}
	for _, g := range rot.Incoming {
		gks = append(gks, g.SigningKey)
	}
	awaiting, err := h.Awaiting()
	if err != nil {
		return err
	}
	es.Era, es.Gatekeepers, es.RootPublicKey, es.RootHpkeKey, es.Since = rot.Era, rot.Incoming, rot.RootPublicKey, rot.RootHpkeKey, height
	es.Rotation = nil
	es.Rotations++
	if err := saveEra(kv, es); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_RotationReady{RotationReady: &chainpb.RotationReady{
		Era: es.Era, Gatekeepers: gks, RootPublicKey: es.RootPublicKey, RootHpkeKey: es.RootHpkeKey, Retired: retired, Awaiting: awaiting,
	}}})
}
