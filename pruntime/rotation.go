package pruntime

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// The root key rotation between eras, pRuntime's side (docs/eras.md).
// Every pRuntime follows a rotation from the verified event log (it must
// know the new wrapped contract keys at Rotation Ready); the leaders and
// the incoming gatekeepers act in it.

// rotation is a rotation in progress as this pRuntime follows it. Secrets
// (shares, the next root key) are sealed with the rest of the state and
// erased when the attempt ends.
type rotation struct {
	Era            uint64            `json:"era"`
	Attempt        uint64            `json:"attempt"`
	Incoming       [][]byte          `json:"incoming"`
	IncomingHPKE   map[string][]byte `json:"incoming_hpke"`
	OutgoingLeader []byte            `json:"outgoing_leader"`
	IncomingLeader []byte            `json:"incoming_leader"`
	KeysExpected   uint64            `json:"keys_expected"`
	// Salts by role (out, in), once on chain.
	SaltOut []byte `json:"salt_out,omitempty"`
	SaltIn  []byte `json:"salt_in,omitempty"`
	// A leader's own shares (by role) and the other leader's share opened.
	ShareOut []byte `json:"share_out,omitempty"`
	ShareIn  []byte `json:"share_in,omitempty"`
	// NextRootKey is k_r^(era) once computed or received; RootPublicKey is
	// the one the incoming leader announced.
	NextRootKey   []byte `json:"next_root_key,omitempty"`
	RootPublicKey []byte `json:"root_public_key,omitempty"`
	Distributed   bool   `json:"distributed,omitempty"`
	StateSent     bool   `json:"state_sent,omitempty"`
	// State is the re-encrypted contract keys by hex id, as the outgoing
	// leader posted them; Parts how many parts of how many arrived.
	State         map[string][]byte `json:"state,omitempty"`
	StateRootKey  []byte            `json:"state_root_public_key,omitempty"`
	PartsReceived uint32            `json:"parts_received,omitempty"`
	Parts         uint32            `json:"parts,omitempty"`
	Confirmed     bool              `json:"confirmed,omitempty"`
}

func (rt *rotation) erase() {
	if rt == nil {
		return
	}
	for _, b := range [][]byte{rt.ShareOut, rt.ShareIn, rt.NextRootKey} {
		clear(b)
	}
	rt.ShareOut, rt.ShareIn, rt.NextRootKey = nil, nil, nil
}

func (rt *rotation) stateComplete() bool {
	return rt.Parts > 0 && rt.PartsReceived == rt.Parts && uint64(len(rt.State)) == rt.KeysExpected
}

// onRotationStarted: every pRuntime follows the new attempt; the leaders
// post their shares.
func (r *Runtime) onRotationStarted(e *chainpb.RotationStarted) error {
	r.st.Rotation.erase()
	rt := &rotation{Era: e.Era, Attempt: e.Attempt, OutgoingLeader: e.OutgoingLeader, IncomingLeader: e.IncomingLeader,
		KeysExpected: e.Keys, IncomingHPKE: map[string][]byte{}, State: map[string][]byte{}}
	for _, g := range e.Incoming {
		rt.Incoming = append(rt.Incoming, g.SigningKey)
		rt.IncomingHPKE[hexKey(g.SigningKey)] = g.HpkeKey
	}
	r.st.Rotation = rt
	if r.id == nil {
		return nil
	}
	if r.isMe(rt.OutgoingLeader) {
		if r.st.RootKey == nil {
			r.log.Warn("elected outgoing rotation leader without the root key", "era", rt.Era)
		} else if err := r.sendShare(rt, false); err != nil {
			return err
		}
	}
	if r.isMe(rt.IncomingLeader) {
		return r.sendShare(rt, true)
	}
	return nil
}

// sendShare draws this leader's share and salt and seals the share to the
// other leader.
func (r *Runtime) sendShare(rt *rotation, incoming bool) error {
	other := rt.IncomingLeader
	otherHPKE := rt.IncomingHPKE[hexKey(other)]
	if incoming {
		other = rt.OutgoingLeader
		otherHPKE = r.st.WorkerKeys[hexKey(other)]
	}
	if otherHPKE == nil {
		r.log.Warn("the other rotation leader's HPKE key is unknown; not sending a share", "era", rt.Era)
		return nil
	}
	share, salt := make([]byte, crypto.RotationShareSize), make([]byte, crypto.RotationShareSize)
	rand.Read(share)
	rand.Read(salt)
	me := r.id.Public()
	env, err := crypto.Seal(otherHPKE, crypto.RotationShareInfo(r.chainID, rt.Era, rt.Attempt, me, other), share)
	if err != nil {
		r.log.Warn("cannot seal the rotation share", "era", rt.Era, "err", err)
		return nil
	}
	if incoming {
		rt.ShareIn = share
	} else {
		rt.ShareOut = share
	}
	r.log.Info("sending this leader's share of the next root key", "era", rt.Era, "attempt", rt.Attempt, "incoming", incoming)
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationShare{RotationShare: &chainpb.RotationShare{
		Era: rt.Era, Attempt: rt.Attempt, Incoming: incoming, Salt: salt, Share: &chainpb.SealedKey{Recipient: other, Envelope: env},
	}}})
}

// onRotationMessage follows a delivered rotation message. Only the
// expected sender for the attempt in progress counts, as on chain.
func (r *Runtime) onRotationMessage(sender []byte, wm *chainpb.WorkerMessage) error {
	rt := r.st.Rotation
	if rt == nil {
		return nil
	}
	switch m := wm.Kind.(type) {
	case *chainpb.WorkerMessage_RotationShare:
		return r.onShare(rt, sender, m.RotationShare)
	case *chainpb.WorkerMessage_RotationKeys:
		k := m.RotationKeys
		if k.Era != rt.Era || k.Attempt != rt.Attempt || !bytes.Equal(sender, rt.IncomingLeader) || rt.RootPublicKey != nil ||
			rt.SaltOut == nil || rt.SaltIn == nil {
			return nil
		}
		rt.RootPublicKey = k.RootPublicKey
		if r.id != nil && slices.ContainsFunc(rt.Incoming, r.isMe) && rt.NextRootKey == nil {
			for _, sk := range k.Keys {
				if !r.isMe(sk.Recipient) {
					continue
				}
				key, err := r.id.HPKE.Open(sk.Envelope, crypto.RotationKeyInfo(r.chainID, rt.Era, rt.Attempt, sk.Recipient))
				if err == nil {
					var rk *crypto.HPKEKey
					if rk, err = crypto.RootHPKEKey(key); err == nil && !bytes.Equal(rk.PublicKey(), k.RootHpkeKey) {
						err = errors.New("its encryption key differs from the one published")
					}
				}
				if err != nil || !bytes.Equal(crypto.RootPublicKey(key), k.RootPublicKey) {
					r.log.Warn("the new root key sealed to this gatekeeper does not open or match", "era", rt.Era, "err", err)
					break
				}
				rt.NextRootKey = key
			}
		}
	case *chainpb.WorkerMessage_RotationState:
		s := m.RotationState
		if s.Era != rt.Era || s.Attempt != rt.Attempt || !bytes.Equal(sender, rt.OutgoingLeader) || s.Part != rt.PartsReceived ||
			(rt.Parts != 0 && s.Parts != rt.Parts) || rt.stateComplete() {
			return nil
		}
		for _, k := range s.Keys {
			rt.State[hexKey(k.Contract)] = k.WrappedKey
		}
		rt.Parts, rt.StateRootKey = s.Parts, s.RootPublicKey
		rt.PartsReceived++
	default:
		return nil
	}
	return r.confirmRotation(rt)
}

// onShare records a leader's salt; the other leader opens the share, and
// a leader holding both computes the next root key and does its part.
func (r *Runtime) onShare(rt *rotation, sender []byte, s *chainpb.RotationShare) error {
	if s.Era != rt.Era || s.Attempt != rt.Attempt || len(s.Salt) != crypto.RotationShareSize || s.Share == nil {
		return nil
	}
	leader, other := rt.OutgoingLeader, rt.IncomingLeader
	if s.Incoming {
		leader, other = rt.IncomingLeader, rt.OutgoingLeader
	}
	if !bytes.Equal(sender, leader) || !bytes.Equal(s.Share.Recipient, other) {
		return nil
	}
	if s.Incoming {
		if rt.SaltIn != nil {
			return nil
		}
		rt.SaltIn = s.Salt
	} else {
		if rt.SaltOut != nil {
			return nil
		}
		rt.SaltOut = s.Salt
	}
	if r.id != nil && r.isMe(other) {
		share, err := r.id.HPKE.Open(s.Share.Envelope, crypto.RotationShareInfo(r.chainID, rt.Era, rt.Attempt, sender, other))
		if err != nil || len(share) != crypto.RotationShareSize {
			r.log.Warn("the other leader's rotation share does not open", "era", rt.Era, "err", err)
			return nil
		}
		if s.Incoming {
			rt.ShareIn = share
		} else {
			rt.ShareOut = share
		}
	}
	if rt.SaltOut == nil || rt.SaltIn == nil || rt.ShareOut == nil || rt.ShareIn == nil || r.id == nil {
		return nil
	}
	key, err := crypto.RotationRootKey(r.chainID, rt.Era, rt.Attempt, rt.ShareOut, rt.ShareIn, rt.SaltOut, rt.SaltIn)
	if err != nil {
		return err
	}
	rt.NextRootKey = key
	// The shares have served; only the key remains.
	clear(rt.ShareOut)
	clear(rt.ShareIn)
	rt.ShareOut, rt.ShareIn = nil, nil
	if r.isMe(rt.IncomingLeader) && !rt.Distributed {
		if err := r.distribute(rt); err != nil {
			return err
		}
	}
	if r.isMe(rt.OutgoingLeader) && !rt.StateSent {
		return r.reencrypt(rt)
	}
	return nil
}

// distribute: the incoming leader seals the new root key to every member
// of the incoming set.
func (r *Runtime) distribute(rt *rotation) error {
	enc, err := crypto.RootHPKEKey(rt.NextRootKey)
	if err != nil {
		return err
	}
	rk := &chainpb.RotationKeys{Era: rt.Era, Attempt: rt.Attempt, RootPublicKey: crypto.RootPublicKey(rt.NextRootKey), RootHpkeKey: enc.PublicKey()}
	for _, g := range rt.Incoming {
		env, err := crypto.Seal(rt.IncomingHPKE[hexKey(g)], crypto.RotationKeyInfo(r.chainID, rt.Era, rt.Attempt, g), rt.NextRootKey)
		if err != nil {
			r.log.Warn("cannot seal the new root key to an incoming gatekeeper", "gatekeeper", hexKey(g), "err", err)
			return nil
		}
		rk.Keys = append(rk.Keys, &chainpb.SealedKey{Recipient: g, Envelope: env})
	}
	rt.Distributed = true
	r.log.Info("distributing the next root key", "era", rt.Era, "attempt", rt.Attempt, "gatekeepers", len(rk.Keys))
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationKeys{RotationKeys: rk}})
}

// reencrypt: the outgoing leader re-encrypts every stored contract key
// under the new root key and posts them in parts.
func (r *Runtime) reencrypt(rt *rotation) error {
	var ids []string
	for k, c := range r.st.Contracts {
		if c.Wrapped != nil {
			ids = append(ids, k)
		}
	}
	sort.Strings(ids) // hex order is byte order
	if uint64(len(ids)) != rt.KeysExpected {
		r.log.Warn("this pRuntime knows another number of stored contract keys than the chain", "have", len(ids), "chain", rt.KeysExpected)
	}
	pub := crypto.RootPublicKey(rt.NextRootKey)
	keys := crypto.NewKeyUnwrapper(r.st.RootKey) // derives the root encryption key once
	parts := max(1, (len(ids)+crypto.RotationStateKeys-1)/crypto.RotationStateKeys)
	for p := range parts {
		st := &chainpb.RotationState{Era: rt.Era, Attempt: rt.Attempt, RootPublicKey: pub, Part: uint32(p), Parts: uint32(parts)}
		for _, k := range ids[p*crypto.RotationStateKeys : min(len(ids), (p+1)*crypto.RotationStateKeys)] {
			c := r.st.Contracts[k]
			id := idOf(k)
			kc, err := keys.Unwrap(r.chainID, id, c.Wrapped)
			if err != nil {
				return fmt.Errorf("re-encrypt contract %s for the rotation: %w", id, err)
			}
			w, err := crypto.WrapContractKey(rt.NextRootKey, r.chainID, id, kc)
			clear(kc)
			if err != nil {
				return err
			}
			st.Keys = append(st.Keys, &chainpb.WrappedContractKey{Contract: id.Bytes(), WrappedKey: w})
		}
		if err := r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationState{RotationState: st}}); err != nil {
			return err
		}
	}
	rt.StateSent = true
	r.log.Info("re-encrypted the gatekeeper state under the next root key", "era", rt.Era, "keys", len(ids), "parts", parts)
	return nil
}

// confirmRotation: a member of the incoming set holding the new key, once
// the whole state is on chain, checks that every re-encrypted key opens
// to the contract's published public key, then confirms.
func (r *Runtime) confirmRotation(rt *rotation) error {
	if rt.Confirmed || r.id == nil || rt.NextRootKey == nil || rt.RootPublicKey == nil || !rt.stateComplete() ||
		!slices.ContainsFunc(rt.Incoming, r.isMe) {
		return nil
	}
	pub := crypto.RootPublicKey(rt.NextRootKey)
	if !bytes.Equal(pub, rt.RootPublicKey) || !bytes.Equal(pub, rt.StateRootKey) {
		r.log.Warn("the rotation's announced root keys disagree; not confirming", "era", rt.Era)
		return nil
	}
	keys := crypto.NewKeyUnwrapper(rt.NextRootKey)
	for k, w := range rt.State {
		c := r.st.Contracts[k]
		id := idOf(k)
		if c == nil {
			r.log.Warn("the re-encrypted state names an unknown contract; not confirming", "contract", k)
			return nil
		}
		kc, err := keys.Unwrap(r.chainID, id, w)
		if err != nil {
			r.log.Warn("a re-encrypted contract key does not open; not confirming", "contract", id.String(), "err", err)
			return nil
		}
		in, err := crypto.ContractInputKey(kc)
		clear(kc)
		if err != nil || !bytes.Equal(in.PublicKey(), c.PublicKey) {
			r.log.Warn("a re-encrypted contract key does not match the contract's public key; not confirming", "contract", id.String())
			return nil
		}
	}
	rt.Confirmed = true
	r.log.Info("holding the next root key and checked the re-encrypted state; confirming", "era", rt.Era, "keys", len(rt.State))
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationConfirm{RotationConfirm: &chainpb.RotationConfirm{
		Era: rt.Era, Attempt: rt.Attempt, RootPublicKey: pub,
	}}})
}

// onRotationReady: Key Rotation Ready. Every pRuntime takes the new
// wrapped keys and seats; the incoming set switches to the new root key and
// erases the old; retired gatekeepers erase theirs; the gatekeepers serve
// the keys owed.
func (r *Runtime) onRotationReady(e *chainpb.RotationReady) error {
	rt := r.st.Rotation
	if rt == nil || rt.Era != e.Era {
		return fmt.Errorf("rotation to era %d is ready but this pRuntime did not follow it", e.Era)
	}
	if uint64(len(rt.State)) != rt.KeysExpected {
		return fmt.Errorf("rotation to era %d is ready with %d re-encrypted keys seen here, %d expected", e.Era, len(rt.State), rt.KeysExpected)
	}
	for k, w := range rt.State {
		if c := r.st.Contracts[k]; c != nil {
			c.Wrapped = w
		}
	}
	r.st.Gatekeepers, r.st.RootHPKE = e.Gatekeepers, e.RootHpkeKey
	old := r.st.RootKey
	switch {
	case r.id != nil && slices.ContainsFunc(e.Gatekeepers, r.isMe):
		if rt.NextRootKey == nil || !bytes.Equal(crypto.RootPublicKey(rt.NextRootKey), e.RootPublicKey) {
			return fmt.Errorf("seated in era %d without its root key", e.Era)
		}
		r.st.RootKey, rt.NextRootKey = rt.NextRootKey, nil
		r.st.Role = RoleGatekeeper
		r.log.Info("rotation ready: holding the new root key, the old one erased", "era", e.Era)
	case r.st.Role == RoleGatekeeper:
		r.st.RootKey = nil
		r.st.Role = RoleWorker
		r.log.Info("rotation ready: left the gatekeeper set, root key erased", "era", e.Era)
	}
	clear(old)
	rt.erase()
	r.st.Rotation = nil
	for _, a := range e.Awaiting {
		id, err := crypto.ContractIDFromBytes(a.Contract)
		if err != nil {
			continue
		}
		if err := r.sendContractKey(id, a.Miners); err != nil {
			return err
		}
	}
	return nil
}

// onRotationExpired: the attempt ended without Ready; its secrets go.
// The old root key stays: it is still the current one.
func (r *Runtime) onRotationExpired(e *chainpb.RotationExpired) {
	if rt := r.st.Rotation; rt != nil && rt.Era == e.Era && rt.Attempt == e.Attempt {
		rt.erase()
		r.st.Rotation = nil
	}
}
