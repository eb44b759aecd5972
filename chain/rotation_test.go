package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// The root key rotation between eras (docs/eras.md), the chain's side,
// with test workers acting as the pRuntimes: real HPKE sealing of shares
// and keys, crypto.RotationRootKey, contract keys unwrapped and wrapped
// again.

// eraLen and rotLen are the eras and attempts of most tests: short, with
// an era long enough for the monitor's default heartbeat interval.
const eraLen, rotLen = 40, 5

// leaderSeed is docs/eras.md's seed, computed here rather than by
// gatekeeper.LeaderSeed: SHA-256 of the domain tag (NUL-terminated), the
// era and attempt (8 bytes big endian each) and the block hash.
func leaderSeed(era, attempt uint64, blockHash []byte) []byte {
	h := sha256.New()
	h.Write([]byte("phala/rotation/leaders/v1\x00"))
	h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, era), attempt))
	h.Write(blockHash)
	return h.Sum(nil)
}

// drawLeaders is docs/eras.md's draw: l_{n-1} uniformly from the outgoing
// set (minus the excluded), l_n from the incoming set minus l_{n-1}.
func drawLeaders(seed []byte, outgoing, incoming [][]byte) (lOut, lIn []byte) {
	lOut = outgoing[binary.BigEndian.Uint64(seed[:8])%uint64(len(outgoing))]
	var in [][]byte
	for _, g := range incoming {
		if !bytes.Equal(g, lOut) {
			in = append(in, g)
		}
	}
	if len(in) == 0 {
		return lOut, incoming[0]
	}
	return lOut, in[binary.BigEndian.Uint64(seed[8:16])%uint64(len(in))]
}

// TestRootKeyRotationRekeysContractsAndSeatsTheNewSet: the happy path.
// At the last block of era 0 the chain elects the next set (d outbid c)
// and draws the leaders from the block hash; key traffic pauses while
// deployments go on; shares, then the distribution with the state in two
// parts, then confirmations reach Rotation Ready: the contract records
// hold k_c under the new root key, the era and the seats move to the new
// set, the retired gatekeeper may mine, key traffic resumes, and the next
// era's boundary starts the next rotation.
func TestRootKeyRotationRekeysContractsAndSeatsTheNewSet(t *testing.T) {
	f := newRotationFixture(t, eraLen, rotLen, 3)
	const S = eraLen // the last block of era 0
	mustApply(t, "stake on d", f.block(f.tx("bob", &chainpb.MsgStake{Worker: f.d.pub(), Amount: 10 * 1_000_000})))
	old := f.era()
	oldRoot := f.root
	f.advanceTo(S - 1)
	if es := f.era(); es.Rotation != nil || f.startedAt(S-1) != nil {
		t.Fatalf("a rotation before the era's last block: %v", es.Rotation)
	}

	// Start, in the last block of era 0.
	f.block()
	ev := f.startedAt(S)
	if ev == nil {
		t.Fatal("no RotationStarted at the end of era 0")
	}
	seed := gatekeeper.LeaderSeed(1, 1, blockHash(S))
	if !bytes.Equal(seed, leaderSeed(1, 1, blockHash(S))) {
		t.Fatalf("gatekeeper.LeaderSeed %X, docs/eras.md's seed %X", seed, leaderSeed(1, 1, blockHash(S)))
	}
	if ev.Era != 1 || ev.Attempt != 1 || ev.Deadline != S+rotLen || ev.Keys != 3 || !bytes.Equal(ev.Seed, seed) {
		t.Fatalf("RotationStarted era %d attempt %d deadline %d keys %d seed %X, want 1 1 %d 3 %X", ev.Era, ev.Attempt, ev.Deadline, ev.Keys, ev.Seed, S+rotLen, seed)
	}
	if !sameKeySet(gatekeeperKeys(ev.Incoming), pubs(f.a, f.b, f.d)) || !slices.EqualFunc(ev.Outgoing, gatekeeperKeys(old.Gatekeepers), bytes.Equal) {
		t.Fatalf("incoming %X outgoing %X, want {a b d} and the seated {a b c}", gatekeeperKeys(ev.Incoming), ev.Outgoing)
	}
	for _, g := range ev.Incoming {
		if !bytes.Equal(g.HpkeKey, f.worker(g.SigningKey).HpkeKey) || g.Backing == 0 {
			t.Fatalf("incoming gatekeeper %X: HPKE key or backing wrong: %v", g.SigningKey, g)
		}
	}
	lOut, lIn := drawLeaders(seed, ev.Outgoing, gatekeeperKeys(ev.Incoming))
	if !bytes.Equal(ev.OutgoingLeader, lOut) || !bytes.Equal(ev.IncomingLeader, lIn) {
		t.Fatalf("leaders %X %X, the seed draws %X %X", ev.OutgoingLeader, ev.IncomingLeader, lOut, lIn)
	}
	if !containsBytes(ev.Outgoing, lOut) || !containsBytes(gatekeeperKeys(ev.Incoming), lIn) || bytes.Equal(lOut, lIn) {
		t.Fatalf("leaders %X (outgoing) %X (incoming): not in their sets, or one worker", lOut, lIn)
	}
	es := f.era()
	wantRot := &chainpb.Rotation{Era: 1, Attempt: 1, Incoming: ev.Incoming, OutgoingLeader: lOut, IncomingLeader: lIn, Started: S, Deadline: S + rotLen, KeysExpected: 3}
	if es.Era != 0 || !proto.Equal(es.Rotation, wantRot) || !bytes.Equal(es.RootPublicKey, old.RootPublicKey) || !slices.EqualFunc(es.Gatekeepers, old.Gatekeepers, func(x, y *chainpb.Gatekeeper) bool { return proto.Equal(x, y) }) {
		t.Fatalf("era during the rotation: %v", es)
	}
	r := f.run(ev)

	// Block S+1: a deployment goes through, its key does not (traffic is
	// paused); both leaders post their shares.
	during := crypto.NewContractID(addr(f.keys["alice"]), f.nonces["alice"])
	deploy := f.tx("alice", f.deployMsg(f.miner.pub()))
	keyWM, _ := f.contractKey(during, f.miner)
	so, si := r.share(false), r.share(true)
	res := f.block(deploy, f.message(f.a, keyWM), f.message(r.out, shareMsg(so)), f.message(r.in, shareMsg(si)))
	if c := res.TxResults[0]; c.Code != 0 {
		t.Fatalf("deploy during the rotation: %s %s", code(c), c.Log)
	}
	if e := effect(res.TxResults[1]); e != "ignored: key traffic is paused for the root key rotation; the gatekeepers serve this key at Rotation Ready" {
		t.Fatalf("contract key during the rotation: %q", e)
	}
	if c := f.getContract(during); c.PublicKey != nil || c.WrappedKey != nil || !slices.EqualFunc(c.AwaitingKey, pubs(f.miner), bytes.Equal) {
		t.Fatalf("contract deployed during the rotation: %v", c)
	}
	for i, x := range res.TxResults[2:] {
		if effect(x) != "applied" {
			t.Fatalf("share %d: %s %q %s", i, code(x), effect(x), x.Log)
		}
	}
	r.took(so, si)
	if rot := f.era().Rotation; !rot.OutgoingShared || !rot.IncomingShared || rot.SharesHeight != S+1 || rot.KeysHeight != 0 {
		t.Fatalf("rotation after the shares: %v", rot)
	}

	// Block S+2: the distribution and the state in two parts.
	r.keysAndState(2)
	rot := f.era().Rotation
	if rot.KeysHeight != S+2 || rot.StateHeight != S+2 || !bytes.Equal(rot.RootPublicKey, crypto.RootPublicKey(r.root)) ||
		rot.KeysReceived != 3 || rot.Parts != 2 || rot.PartsReceived != 2 || len(rot.Confirmed) != 0 {
		t.Fatalf("rotation after keys and state: %v", rot)
	}
	for _, id := range f.keyed {
		if kc, err := crypto.UnwrapContractKey(r.root, testChainID, id, f.rotKey(id[:])); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("re-encrypted key of %s kept aside: %v", id, err)
		}
		// The records keep the old wrapping until Ready.
		if kc, err := crypto.UnwrapContractKey(oldRoot, testChainID, id, f.getContract(id).WrappedKey); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("stored key of %s changed before Ready: %v", id, err)
		}
	}

	// Blocks S+3 and S+4: confirmations; Ready with the last.
	members := r.members()
	f.applied("two confirmations", post{members[0], confirmMsg(r.confirmBy(members[0]))}, post{members[1], confirmMsg(r.confirmBy(members[1]))})
	if f.readyAt(S+3) != nil || f.era().Rotation == nil || len(f.era().Rotation.Confirmed) != 2 {
		t.Fatalf("Ready before every member confirmed: %v", f.era())
	}
	f.applied("last confirmation", post{members[2], confirmMsg(r.confirmBy(members[2]))})
	ready := f.readyAt(S + 4)
	want := &chainpb.RotationReady{Era: 1, Gatekeepers: gatekeeperKeys(ev.Incoming), RootPublicKey: crypto.RootPublicKey(r.root), RootHpkeKey: rootHPKE(t, r.root),
		Retired: pubs(f.c), Awaiting: []*chainpb.AwaitingKey{{Contract: during.Bytes(), Miners: pubs(f.miner)}}}
	if !proto.Equal(ready, want) {
		t.Fatalf("RotationReady\n got %v\nwant %v", ready, want)
	}
	for _, id := range f.keyed {
		w := f.getContract(id).WrappedKey
		if kc, err := crypto.UnwrapContractKey(r.root, testChainID, id, w); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("contract %s after Ready: its key does not open under the new root key to k_c: %v", id, err)
		}
		if _, err := crypto.UnwrapContractKey(oldRoot, testChainID, id, w); err == nil {
			t.Fatalf("contract %s after Ready: its key still opens under the old root key", id)
		}
		if rk := f.rotKey(id[:]); len(rk) != 0 {
			t.Fatalf("contract %s after Ready: the re-encrypted key is still kept aside", id)
		}
	}
	es = f.era()
	wantEra := &chainpb.EraState{Era: 1, Gatekeepers: ev.Incoming, RootPublicKey: crypto.RootPublicKey(r.root), RootHpkeKey: rootHPKE(t, r.root), Since: S + 4, Rotations: 1}
	if !proto.Equal(es, wantEra) {
		t.Fatalf("era after Ready\n got %v\nwant %v", es, wantEra)
	}
	for _, c := range []struct {
		id     identity
		seated bool
	}{{f.a, true}, {f.b, true}, {f.c, false}, {f.d, true}, {f.miner, false}} {
		if s, err := gatekeeper.Seated(f.app.view, c.id.pub()); err != nil || s != c.seated {
			t.Fatalf("Seated(%X) = %v %v, want %v", c.id.pub(), s, err, c.seated)
		}
	}
	f.root = r.root

	// Key traffic resumes: the new set serves the key owed, under the new
	// root key; the retired c serves nothing and may now run contracts.
	served, kc := f.contractKey(during, f.miner)
	res = f.block(f.message(f.c, served), f.message(f.d, served))
	if e := effect(res.TxResults[0]); e != "ignored: contract key from a worker that holds no gatekeeper seat" {
		t.Fatalf("contract key from the retired gatekeeper: %q", e)
	}
	if e := effect(res.TxResults[1]); e != "applied" {
		t.Fatalf("contract key from the new gatekeeper d: %q %s", e, res.TxResults[1].Log)
	}
	if c := f.getContract(during); len(c.AwaitingKey) != 0 || c.WrappedKey == nil {
		t.Fatalf("contract deployed during the rotation after its key: %v", c)
	} else if got, err := crypto.UnwrapContractKey(r.root, testChainID, during, c.WrappedKey); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("key of the contract deployed during the rotation: %v", err)
	}
	if res := f.block(f.tx("alice", f.deployMsg(f.c.pub()))).TxResults[0]; res.Code != 0 {
		t.Fatalf("deploy on the retired gatekeeper c: %s %s", code(res), res.Log)
	}
	f.refuse("deploy on the new gatekeeper d", "alice", f.deployMsg(f.d.pub()), "contracts/6", false)

	// The next era's last block starts the next rotation, from the new set.
	f.advanceTo(2*eraLen - 1)
	if f.era().Rotation != nil {
		t.Fatal("a rotation started before the end of era 1")
	}
	f.block()
	next := f.startedAt(2 * eraLen)
	if next == nil || next.Era != 2 || next.Attempt != 1 || next.Keys != 4 || !slices.EqualFunc(next.Outgoing, ready.Gatekeepers, bytes.Equal) ||
		!bytes.Equal(next.Seed, leaderSeed(2, 1, blockHash(2*eraLen))) {
		t.Fatalf("rotation to era 2: %v", next)
	}
}

// TestRootKeyRotationIgnoresMisfitMessages: every rotation message that
// does not fit the attempt in progress is delivered (its sequence used)
// without effect, with a note saying why, and changes neither the era and
// rotation record nor the keys kept aside; the genuine messages after
// them still complete the rotation.
func TestRootKeyRotationIgnoresMisfitMessages(t *testing.T) {
	// One block per misfit: a long attempt.
	f := newRotationFixture(t, 80, 75, 3)
	unkeyed := f.deployMany(1)[0] // awaits its key: the chain keeps none
	unknown := crypto.ContractID(bytes.Repeat([]byte{0xee}, crypto.AddressLen))
	extra := [][]byte{unkeyed[:], unknown[:]}
	ignored := func(name string, from identity, wm *chainpb.WorkerMessage, want string) {
		t.Helper()
		f.ignored(name, from, wm, want, extra...)
	}
	f.ignored("share before any rotation", f.a, shareMsg(&chainpb.RotationShare{Era: 1, Attempt: 1, Salt: make([]byte, 32), Share: &chainpb.SealedKey{Recipient: f.b.pub(), Envelope: []byte{1}}}),
		"no root key rotation is in progress")
	f.advanceTo(80)
	r := f.run(f.startedAt(80))
	members := r.members()
	by := r.bystander()
	otherRoot := randomBytes(32)
	var nonMember identity // a candidate the election left out
	for _, id := range []identity{f.a, f.b, f.c, f.d} {
		if !containsBytes(gatekeeperKeys(r.ev.Incoming), id.pub()) {
			nonMember = id
		}
	}

	// Before any share.
	ignored("share from a worker that is no leader", by, shareMsg(r.share(false)), "rotation share from a worker that is not that leader")
	ignored("incoming leader's share from the outgoing leader", r.out, shareMsg(r.share(true)), "rotation share from a worker that is not that leader")
	wrongTo := r.share(false)
	env, err := crypto.Seal(by.hpke.PublicKey(), crypto.RotationShareInfo(testChainID, 1, 1, r.out.pub(), by.pub()), randomBytes(32))
	if err != nil {
		t.Fatal(err)
	}
	wrongTo.Share = &chainpb.SealedKey{Recipient: by.pub(), Envelope: env}
	ignored("share sealed to the wrong recipient", r.out, shareMsg(wrongTo), "rotation share not sealed to the other leader")
	noShare := r.share(false)
	noShare.Share = nil
	ignored("share without the sealed share", r.out, shareMsg(noShare), "rotation share not sealed to the other leader")
	bigShare := r.share(false)
	bigShare.Share.Envelope = make([]byte, 4097)
	ignored("share with an oversized envelope", r.out, shareMsg(bigShare), "rotation share not sealed to the other leader")
	shortSalt := r.share(false)
	shortSalt.Salt = shortSalt.Salt[:31]
	ignored("share with a 31-byte salt", r.out, shareMsg(shortSalt), "rotation share with a 31-byte salt, want 32")
	longSalt := r.share(true)
	longSalt.Salt = append(longSalt.Salt, 0)
	ignored("share with a 33-byte salt", r.in, shareMsg(longSalt), "rotation share with a 33-byte salt, want 32")
	nextAttempt := r.share(false)
	nextAttempt.Attempt = 2
	ignored("share for the next attempt", r.out, shareMsg(nextAttempt), "rotation share for era 1 attempt 2; the rotation in progress is era 1 attempt 1")
	nextEra := r.share(true)
	nextEra.Era = 2
	ignored("share for the next era", r.in, shareMsg(nextEra), "rotation share for era 2 attempt 1; the rotation in progress is era 1 attempt 1")
	ignored("keys before any share", r.in, keysMsg(r.keysFor(otherRoot, members...)), "both leaders' shares must be in before the new root key")
	ignored("state before any share", r.out, stateMsg(r.state(otherRoot, 0, 1, f.keyed...)), "both leaders' shares must be in before the state")
	ignored("confirmation before anything", members[0], confirmMsg(&chainpb.RotationConfirm{Era: 1, Attempt: 1, RootPublicKey: crypto.RootPublicKey(otherRoot)}),
		"nothing to confirm yet")

	so := r.share(false)
	f.applied("outgoing share", post{r.out, shareMsg(so)})
	r.took(so)
	ignored("keys after one share", r.in, keysMsg(r.keysFor(otherRoot, members...)), "both leaders' shares must be in before the new root key")
	ignored("state after one share", r.out, stateMsg(r.state(otherRoot, 0, 1, f.keyed...)), "both leaders' shares must be in before the state")
	ignored("second outgoing share", r.out, shareMsg(r.share(false)), "this leader's share is already in")
	si := r.share(true)
	f.applied("incoming share", post{r.in, shareMsg(si)})
	r.took(si)
	ignored("second incoming share", r.in, shareMsg(r.share(true)), "this leader's share is already in")

	// Both shares in: the distribution.
	ignored("keys from the outgoing leader", r.out, keysMsg(r.keysFor(r.root, members...)), "only the incoming leader distributes the new root key")
	ignored("keys from a bystander", by, keysMsg(r.keysFor(r.root, members...)), "only the incoming leader distributes the new root key")
	const notExactly = "the new root key must be sealed to exactly the incoming gatekeepers"
	ignored("keys missing a member", r.in, keysMsg(r.keysFor(r.root, members[:2]...)), notExactly)
	ignored("keys to a non-member too", r.in, keysMsg(r.keysFor(r.root, append(slices.Clone(members), nonMember)...)), notExactly)
	ignored("keys to a non-member instead of a member", r.in, keysMsg(r.keysFor(r.root, members[0], members[1], nonMember)), notExactly)
	ignored("keys to one member twice", r.in, keysMsg(r.keysFor(r.root, members[0], members[0], members[1])), notExactly)
	emptyEnv := r.keysFor(r.root, members...)
	emptyEnv.Keys[1].Envelope = nil
	ignored("keys with an empty envelope", r.in, keysMsg(emptyEnv), notExactly)
	shortPub := r.keysFor(r.root, members...)
	shortPub.RootPublicKey = shortPub.RootPublicKey[:31]
	ignored("keys with a malformed root public key", r.in, keysMsg(shortPub), "rotation keys with a malformed root public key")
	keysEra := r.keysFor(r.root, members...)
	keysEra.Era = 2
	ignored("keys for the next era", r.in, keysMsg(keysEra), "rotation keys for era 2 attempt 1; the rotation in progress is era 1 attempt 1")
	keysAttempt := r.keysFor(r.root, members...)
	keysAttempt.Attempt = 0
	ignored("keys for attempt 0", r.in, keysMsg(keysAttempt), "rotation keys for era 1 attempt 0")

	// The state.
	k0, k1, k2 := f.keyed[0], f.keyed[1], f.keyed[2]
	ignored("state from the incoming leader", r.in, stateMsg(r.state(r.root, 0, 1, f.keyed...)), "only the outgoing leader re-encrypts the state")
	ignored("state from a bystander", by, stateMsg(r.state(r.root, 0, 1, f.keyed...)), "only the outgoing leader re-encrypts the state")
	ignored("state part 1 first", r.out, stateMsg(r.state(r.root, 1, 2, k1, k2)), "rotation state part 1; the next is 0")
	ignored("state naming an unknown contract", r.out, stateMsg(r.state(r.root, 0, 2, unknown)), "rotation state names a contract whose key the chain does not keep")
	ignored("state naming a contract not keyed", r.out, stateMsg(r.state(r.root, 0, 2, unkeyed)), "rotation state names a contract whose key the chain does not keep")
	ignored("state keys out of order", r.out, stateMsg(r.state(r.root, 0, 1, k1, k0, k2)), "rotation state keys out of contract id order")
	ignored("state key repeated in a part", r.out, stateMsg(r.state(r.root, 0, 2, k0, k0)), "rotation state keys out of contract id order")
	more := append(slices.Clone(f.keyed), unknown)
	slices.SortFunc(more, func(x, y crypto.ContractID) int { return bytes.Compare(x[:], y[:]) })
	ignored("state with more keys than kept", r.out, stateMsg(r.state(r.root, 0, 1, more...)), "rotation state has more keys than the chain keeps")
	ignored("state in 0 parts", r.out, stateMsg(r.state(r.root, 0, 0, f.keyed...)), "rotation state in 0 parts")
	ignored("state in too many parts", r.out, stateMsg(r.state(r.root, 0, 10_001, f.keyed...)), "rotation state in 10001 parts")
	emptyKey := r.state(r.root, 0, 1, f.keyed...)
	emptyKey.Keys[1].WrappedKey = nil
	ignored("state with an empty wrapped key", r.out, stateMsg(emptyKey), "rotation state with a malformed wrapped key")
	statePub := r.state(r.root, 0, 1, f.keyed...)
	statePub.RootPublicKey = nil
	ignored("state with no root public key", r.out, stateMsg(statePub), "rotation state with a malformed root public key")
	stateAttempt := r.state(r.root, 0, 1, f.keyed...)
	stateAttempt.Attempt = 2
	ignored("state for the next attempt", r.out, stateMsg(stateAttempt), "rotation state for era 1 attempt 2; the rotation in progress is era 1 attempt 1")

	// Part 0 of 2 comes before the distribution.
	f.applied("state part 0", post{r.out, stateMsg(r.state(r.root, 0, 2, k0))})
	if rk := f.rotKey(k0[:]); len(rk) == 0 {
		t.Fatal("part 0's key is not kept aside")
	}
	ignored("state part 0 again", r.out, stateMsg(r.state(r.root, 0, 2, k1)), "rotation state part 0; the next is 1")
	ignored("state part 2 of 2", r.out, stateMsg(r.state(r.root, 2, 2, k1, k2)), "rotation state part 2; the next is 1")
	ignored("state part 1 of another count", r.out, stateMsg(r.state(r.root, 1, 3, k1, k2)), "rotation state in 3 parts; expected 2")
	ignored("state part 1 repeating a contract of part 0", r.out, stateMsg(r.state(r.root, 1, 2, k0, k1)), "rotation state repeats a contract")
	ignored("state part 1 under another root key", r.out, stateMsg(r.state(otherRoot, 1, 2, k1, k2)), "this part names another root key than the earlier parts")
	ignored("keys under another root key than the state's", r.in, keysMsg(r.keysFor(otherRoot, members...)), "the new root key differs from the one the state was re-encrypted under")
	ignored("confirmation before the keys", members[0], confirmMsg(&chainpb.RotationConfirm{Era: 1, Attempt: 1, RootPublicKey: crypto.RootPublicKey(r.root)}), "nothing to confirm yet")

	keys := r.keysFor(r.root, members...)
	f.applied("keys", post{r.in, keysMsg(keys)})
	r.keys = keys
	ignored("keys again", r.in, keysMsg(r.keysFor(r.root, members...)), "the new root key was already distributed")
	ignored("confirmation before the state is complete", members[0], confirmMsg(&chainpb.RotationConfirm{Era: 1, Attempt: 1, RootPublicKey: crypto.RootPublicKey(r.root)}), "nothing to confirm yet")
	f.applied("state part 1", post{r.out, stateMsg(r.state(r.root, 1, 2, k1, k2))})
	ignored("state after it is complete", r.out, stateMsg(r.state(r.root, 1, 2, k1, k2)), "the state is already complete")

	// Confirmations.
	good := r.confirmBy(members[0])
	wrongPub := proto.Clone(good).(*chainpb.RotationConfirm)
	wrongPub.RootPublicKey = crypto.RootPublicKey(otherRoot)
	ignored("confirmation naming another root key", members[0], confirmMsg(wrongPub), "the confirmation names another root key")
	ignored("confirmation from a candidate left out", nonMember, confirmMsg(good), "rotation confirmation from a worker not in the incoming set")
	ignored("confirmation from a plain worker", f.miner, confirmMsg(good), "rotation confirmation from a worker not in the incoming set")
	confirmEra := proto.Clone(good).(*chainpb.RotationConfirm)
	confirmEra.Era = 0
	ignored("confirmation for era 0", members[0], confirmMsg(confirmEra), "rotation confirmation for era 0 attempt 1; the rotation in progress is era 1 attempt 1")
	f.applied("first confirmation", post{members[0], confirmMsg(good)})
	ignored("second confirmation of one member", members[0], confirmMsg(r.confirmBy(members[0])), "already confirmed")

	f.applied("other confirmations", post{members[1], confirmMsg(r.confirmBy(members[1]))}, post{members[2], confirmMsg(r.confirmBy(members[2]))})
	ready := f.readyAt(f.height)
	if ready == nil || ready.Era != 1 || !bytes.Equal(ready.RootPublicKey, crypto.RootPublicKey(r.root)) {
		t.Fatalf("Ready after the misfits: %v", ready)
	}
	if f.height > r.ev.Deadline {
		t.Fatalf("the test ran past the deadline %d (block %d)", r.ev.Deadline, f.height)
	}
	f.ignored("share after Ready", r.out, shareMsg(r.share(false)), "no root key rotation is in progress")
}

// TestRootKeyRotationExpiresAndSlashesSilentIncomingLeader: the incoming
// leader never posts its share. At the deadline the chain names it
// unresponsive, slashes slash_gatekeeper_permille of its self stake into
// the treasury, excludes it and starts attempt 2 in the same block with
// leaders and a set without it. The old root key stays current meanwhile
// (nothing lost), a message for attempt 1 has no effect, and attempt 2
// completes.
func TestRootKeyRotationExpiresAndSlashesSilentIncomingLeader(t *testing.T) {
	f := newRotationFixture(t, eraLen, rotLen, 3)
	const S, deadline = eraLen, eraLen + rotLen
	f.advanceTo(S)
	old := f.era()
	r := f.run(f.startedAt(S))
	so := r.share(false)
	f.applied("outgoing share", post{r.out, shareMsg(so)})
	f.advanceTo(deadline - 1)
	if es := f.era(); es.Rotation == nil || es.Rotation.Attempt != 1 || f.expiredAt(deadline-1) != nil {
		t.Fatalf("the attempt ended before its deadline: %v", es)
	}
	before := f.stakes()
	f.block() // the deadline
	exp := f.expiredAt(deadline)
	if !proto.Equal(exp, &chainpb.RotationExpired{Era: 1, Attempt: 1, Unresponsive: [][]byte{r.in.pub()}}) {
		t.Fatalf("RotationExpired %v, want the incoming leader %X", exp, r.in.pub())
	}
	f.checkSlashed(before, f.stakes(), r.in.pub())
	if ex, err := gatekeeper.Excluded(f.app.view, r.in.pub()); err != nil || !ex {
		t.Fatalf("the silent leader is not excluded: %v", err)
	}
	var kinds []string
	for _, e := range f.eventLog(deadline) {
		switch {
		case e.GetRotationExpired() != nil:
			kinds = append(kinds, "expired")
		case e.GetRotationStarted() != nil:
			kinds = append(kinds, "started")
		}
	}
	if !slices.Equal(kinds, []string{"expired", "started"}) {
		t.Fatalf("events of the deadline block: %v", kinds)
	}
	ev := f.startedAt(deadline)
	if ev.Era != 1 || ev.Attempt != 2 || ev.Deadline != deadline+rotLen || ev.Keys != 3 || !bytes.Equal(ev.Seed, leaderSeed(1, 2, blockHash(deadline))) {
		t.Fatalf("attempt 2: %v", ev)
	}
	if bytes.Equal(ev.OutgoingLeader, r.in.pub()) || bytes.Equal(ev.IncomingLeader, r.in.pub()) || containsBytes(gatekeeperKeys(ev.Incoming), r.in.pub()) || len(ev.Incoming) != 3 {
		t.Fatalf("attempt 2 still counts on the excluded %X: %v", r.in.pub(), ev)
	}
	// Nothing lost: the old root key and its gatekeepers are current, the
	// stored keys still open under it, nothing is kept aside.
	es := f.era()
	if es.Era != 0 || !bytes.Equal(es.RootPublicKey, old.RootPublicKey) || es.Since != old.Since || es.Expired != 1 || es.Rotations != 0 ||
		!slices.EqualFunc(es.Gatekeepers, old.Gatekeepers, func(x, y *chainpb.Gatekeeper) bool { return proto.Equal(x, y) }) {
		t.Fatalf("era after the expiry: %v, before %v", es, old)
	}
	for _, id := range f.keyed {
		if kc, err := crypto.UnwrapContractKey(f.root, testChainID, id, f.getContract(id).WrappedKey); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("contract %s after the expiry: %v", id, err)
		}
	}
	f.ignored("attempt 1's share in attempt 2", r.out, shareMsg(so), "rotation share for era 1 attempt 1; the rotation in progress is era 1 attempt 2")

	ready := f.run(ev).complete(1)
	if ready.Era != 1 || containsBytes(ready.Gatekeepers, r.in.pub()) || len(ready.Gatekeepers) != 3 {
		t.Fatalf("Ready of attempt 2: %v", ready)
	}
	for _, id := range f.keyed {
		if kc, err := crypto.UnwrapContractKey(f.root, testChainID, id, f.getContract(id).WrappedKey); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("contract %s after attempt 2: %v", id, err)
		}
	}
	if es := f.era(); es.Era != 1 || es.Rotations != 1 || es.Expired != 1 || es.Rotation != nil {
		t.Fatalf("era after attempt 2: %v", es)
	}
}

// TestRootKeyRotationExpiresAndSlashesOnlyTheStateless: both shares and
// the distribution are in but the outgoing leader never posts the state:
// at the deadline only it is slashed and excluded.
func TestRootKeyRotationExpiresAndSlashesOnlyTheStateless(t *testing.T) {
	f := newRotationFixture(t, eraLen, rotLen, 3)
	const S, deadline = eraLen, eraLen + rotLen
	f.advanceTo(S)
	r := f.run(f.startedAt(S))
	r.sharesIn()
	k := r.keysFor(r.root, r.members()...)
	f.applied("keys", post{r.in, keysMsg(k)})
	f.advanceTo(deadline - 1)
	before := f.stakes()
	f.block()
	if exp := f.expiredAt(deadline); !proto.Equal(exp, &chainpb.RotationExpired{Era: 1, Attempt: 1, Unresponsive: [][]byte{r.out.pub()}}) {
		t.Fatalf("RotationExpired %v, want only the outgoing leader %X", exp, r.out.pub())
	}
	f.checkSlashed(before, f.stakes(), r.out.pub())
	for _, id := range []identity{f.a, f.b, f.c, f.d} {
		ex, err := gatekeeper.Excluded(f.app.view, id.pub())
		if err != nil || ex != bytes.Equal(id.pub(), r.out.pub()) {
			t.Fatalf("Excluded(%X) = %v %v", id.pub(), ex, err)
		}
	}
	if ev := f.startedAt(deadline); ev == nil || ev.Attempt != 2 || bytes.Equal(ev.OutgoingLeader, r.out.pub()) || bytes.Equal(ev.IncomingLeader, r.out.pub()) {
		t.Fatalf("attempt 2: %v", ev)
	}
}

// TestRootKeyRotationExpiresAndSlashesOnlyTheUnconfirmed: everything is
// in but one member of the incoming set never confirms: at the deadline
// only it is slashed; attempt 2 starts from a clean slate (no key kept
// aside from attempt 1) and completes without it.
func TestRootKeyRotationExpiresAndSlashesOnlyTheUnconfirmed(t *testing.T) {
	f := newRotationFixture(t, eraLen, rotLen, 3)
	const S, deadline = eraLen, eraLen + rotLen
	f.advanceTo(S)
	r := f.run(f.startedAt(S))
	r.sharesIn()
	r.keysAndState(1)
	members := r.members()
	late := members[0]
	for _, m := range members { // prefer a member that is no leader
		if !bytes.Equal(m.pub(), r.out.pub()) && !bytes.Equal(m.pub(), r.in.pub()) {
			late = m
		}
	}
	var confirms []post
	for _, m := range members {
		if !bytes.Equal(m.pub(), late.pub()) {
			confirms = append(confirms, post{m, confirmMsg(r.confirmBy(m))})
		}
	}
	f.applied("confirmations but one", confirms...)
	f.advanceTo(deadline - 1)
	before := f.stakes()
	f.block()
	if exp := f.expiredAt(deadline); !proto.Equal(exp, &chainpb.RotationExpired{Era: 1, Attempt: 1, Unresponsive: [][]byte{late.pub()}}) {
		t.Fatalf("RotationExpired %v, want only the member %X that did not confirm", exp, late.pub())
	}
	f.checkSlashed(before, f.stakes(), late.pub())
	ev := f.startedAt(deadline)
	if ev == nil || ev.Attempt != 2 || containsBytes(gatekeeperKeys(ev.Incoming), late.pub()) {
		t.Fatalf("attempt 2: %v", ev)
	}
	for _, id := range f.keyed {
		if rk := f.rotKey(id[:]); len(rk) != 0 {
			t.Fatalf("attempt 2 starts with attempt 1's re-encrypted key of %s kept aside", id)
		}
	}
	if ready := f.run(ev).complete(2); containsBytes(ready.Gatekeepers, late.pub()) {
		t.Fatalf("Ready of attempt 2 seats the unresponsive member: %v", ready)
	}
	for _, id := range f.keyed {
		if kc, err := crypto.UnwrapContractKey(f.root, testChainID, id, f.getContract(id).WrappedKey); err != nil || !bytes.Equal(kc, f.kc[id]) {
			t.Fatalf("contract %s after attempt 2: %v", id, err)
		}
	}
}

// TestRootKeyRotationPinsSeatedAndIncomingGatekeepers: while a rotation
// runs, neither a seated gatekeeper (c, leaving) nor an incoming one (d,
// arriving) may deregister, unbond below the candidate minimum or renew
// its identity; a worker with no part in it may leave. After Ready the
// retired c may do both; the seated d still may not deregister.
func TestRootKeyRotationPinsSeatedAndIncomingGatekeepers(t *testing.T) {
	f := newRotationFixture(t, 40, 20, 1)
	mustApply(t, "stake on d", f.block(f.tx("bob", &chainpb.MsgStake{Worker: f.d.pub(), Amount: 10 * 1_000_000})))
	f.advanceTo(40)
	r := f.run(f.startedAt(40))
	if !sameKeySet(gatekeeperKeys(r.ev.Incoming), pubs(f.a, f.b, f.d)) {
		t.Fatalf("incoming %X, want a, b, d", gatekeeperKeys(r.ev.Incoming))
	}
	rotBefore := f.era()
	for _, c := range []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"retire the seated c", &chainpb.MsgRetireWorker{Worker: f.c.pub()}, "registry/19"},
		{"retire the incoming d", &chainpb.MsgRetireWorker{Worker: f.d.pub()}, "registry/19"},
		{"retire a, seated and incoming", &chainpb.MsgRetireWorker{Worker: f.a.pub()}, "registry/19"},
		{"unbond c below the minimum", &chainpb.MsgUnbond{Worker: f.c.pub(), Amount: stakeC - 10*1_000_000 + 1}, "staking/8"},
		{"unbond d below the minimum", &chainpb.MsgUnbond{Worker: f.d.pub(), Amount: stakeD + 1}, "staking/8"},
		{"renew the incoming d", f.renewal(f.d, newIdentity(t, 14), "bob", f.d.sign), "gatekeeper/3"},
		{"renew the seated c", f.renewal(f.c, newIdentity(t, 13), "bob", f.c.sign), "gatekeeper/3"},
	} {
		f.refuse(c.name, "bob", c.msg, c.want, false)
	}
	for _, id := range []identity{f.a, f.c, f.d} {
		if w := f.worker(id.pub()); w.Retired || len(w.Successor) != 0 {
			t.Fatalf("a refused message changed worker %X: %v", id.pub(), w)
		}
	}
	if f.selfStake(f.c.pub()) != stakeC || f.selfStake(f.d.pub()) != stakeD+10*1_000_000 {
		t.Fatalf("a refused unbond changed a stake: c %d d %d", f.selfStake(f.c.pub()), f.selfStake(f.d.pub()))
	}
	if es := f.era(); !proto.Equal(es, rotBefore) {
		t.Fatalf("the refusals changed the era: %v", es)
	}
	// Down to exactly the minimum is allowed; a worker with no part leaves.
	mustApply(t, "unbond d to the minimum", f.block(f.tx("bob", &chainpb.MsgUnbond{Worker: f.d.pub(), Amount: stakeD})))
	mustApply(t, "retire other", f.block(f.tx("bob", &chainpb.MsgRetireWorker{Worker: f.other.pub()})))

	if ready := r.complete(1); !slices.EqualFunc(ready.Retired, pubs(f.c), bytes.Equal) {
		t.Fatalf("retired %X, want c", ready.Retired)
	}
	mustApply(t, "c unbonds below the minimum and retires after Ready", f.block(
		f.tx("bob", &chainpb.MsgUnbond{Worker: f.c.pub(), Amount: stakeC}), f.tx("bob", &chainpb.MsgRetireWorker{Worker: f.c.pub()})))
	if w := f.worker(f.c.pub()); !w.Retired {
		t.Fatal("c is not retired")
	}
	f.refuse("retire the seated d after Ready", "bob", &chainpb.MsgRetireWorker{Worker: f.d.pub()}, "registry/19", false)
}
