package chain

import (
	"bytes"
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// rotationFixture is a launched chain with three gatekeeper seats and four
// candidates operated by bob: a (40 PHA), b (30), c (20) and d (15). The
// launch seated a, b and c under the root key f.root. miner runs the
// keyed contracts, keyed by a before the first era ends.
type rotationFixture struct {
	*contractFixture
	c, d  identity
	ids   map[string]identity // every identity, by signing key
	keyed []crypto.ContractID // the keyed contracts, ascending id
	kc    map[crypto.ContractID][]byte
}

const (
	stakeA = 40 * 1_000_000
	stakeB = 30 * 1_000_000
	stakeC = 20 * 1_000_000
	stakeD = 15 * 1_000_000
)

// newRotationFixture launches at block 4 with eras of eraBlocks blocks and
// rotationBlocks per attempt, and keys `keyed` contracts (blocks 5 and 6).
func newRotationFixture(t *testing.T, eraBlocks, rotationBlocks int64, keyed int) *rotationFixture {
	t.Helper()
	gen := newIdentity(t, 100)
	root := bytes.Repeat([]byte{42}, 32)
	p := contracts.DefaultParams()
	p.MaxCodeBytes = testMaxCode
	af := newAttestFixtureWith(t, func(g *Genesis) {
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: gen.pub(), HPKEKey: gen.hpke.PublicKey()}
		g.Gatekeeper = &gatekeeper.Genesis{Params: gatekeeper.Params{NGatekeepers: 3, ElectionHeight: 3, HandoverBlocks: 4,
			EraBlocks: eraBlocks, RotationBlocks: rotationBlocks}, RootPublicKey: crypto.RootPublicKey(root)}
		g.Staking.MinCandidateStake = 10 * 1_000_000
		g.Staking.MinMinerStake = 0
		g.Contracts = &p
	})
	f := &rotationFixture{
		contractFixture: &contractFixture{
			launchFixture: &launchFixture{attestFixture: af, genesis: gen, root: root, seqs: map[string]uint64{}, nonces: map[string]uint64{}},
			params:        p,
		},
		ids: map[string]identity{},
		kc:  map[crypto.ContractID][]byte{},
	}
	f.a, f.b, f.c, f.d = newIdentity(t, 1), newIdentity(t, 2), newIdentity(t, 3), newIdentity(t, 4)
	f.miner, f.other = newIdentity(t, 5), newIdentity(t, 6)
	f.block()
	var txs [][]byte
	for _, c := range []struct {
		id    identity
		stake int64
	}{{f.a, stakeA}, {f.b, stakeB}, {f.c, stakeC}, {f.d, stakeD}, {f.miner, 0}, {f.other, 0}} {
		f.ids[string(c.id.pub())] = c.id
		info := f.info(c.id, "bob", f.genHash)
		txs = append(txs, f.tx("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}))
		if c.stake > 0 {
			txs = append(txs, f.tx("bob", &chainpb.MsgStake{Worker: c.id.pub(), Amount: c.stake}))
		}
	}
	mustApply(t, "registrations", f.block(txs...))
	f.block() // the election
	st := f.launch()
	if got := gatekeeperKeys(st.Elected); !sameKeySet(got, pubs(f.a, f.b, f.c)) {
		t.Fatalf("launch election: %X", got)
	}
	mustApply(t, "launch", f.block(f.message(f.genesis, f.handover(st.Round, f.a, f.b, f.c)),
		f.message(f.a, confirm(st.Round, crypto.RootPublicKey(root))), f.message(f.b, confirm(st.Round, crypto.RootPublicKey(root))),
		f.message(f.c, confirm(st.Round, crypto.RootPublicKey(root)))))
	if es := f.era(); es.Era != 0 || !sameKeySet(gatekeeperKeys(es.Gatekeepers), pubs(f.a, f.b, f.c)) {
		t.Fatalf("era after the launch: %v", es)
	}
	if keyed > 0 {
		f.keyed = f.deployMany(keyed)
		var msgs [][]byte
		for _, id := range f.keyed {
			wm, kc := f.contractKey(id, f.miner)
			f.kc[id] = kc
			msgs = append(msgs, f.message(f.a, wm))
		}
		mustApply(t, "contract keys", f.block(msgs...))
		slices.SortFunc(f.keyed, func(x, y crypto.ContractID) int { return bytes.Compare(x[:], y[:]) })
	}
	if f.height >= eraBlocks {
		t.Fatalf("fixture took %d blocks, the first era ends at %d", f.height, eraBlocks)
	}
	return f
}

// deployMany deploys n contracts run by miner in one block.
func (f *rotationFixture) deployMany(n int) []crypto.ContractID {
	f.t.Helper()
	var ids []crypto.ContractID
	var txs [][]byte
	for range n {
		ids = append(ids, crypto.NewContractID(addr(f.keys["alice"]), f.nonces["alice"]))
		txs = append(txs, f.tx("alice", f.deployMsg(f.miner.pub())))
	}
	for i, r := range f.block(txs...).TxResults {
		if r.Code != 0 {
			f.t.Fatalf("deploy %d: %s %s", i, code(r), r.Log)
		}
	}
	return ids
}

// mustApply fails unless every transaction of the block succeeded and
// every worker message in it had its effect.
func mustApply(t testing.TB, what string, res *abci.FinalizeBlockResponse) {
	t.Helper()
	for i, r := range res.TxResults {
		if r.Code != 0 || (effect(r) != "" && effect(r) != "applied") {
			t.Fatalf("%s: tx %d: %s %q %s", what, i, code(r), effect(r), r.Log)
		}
	}
}

// advanceTo runs empty blocks up to height.
func (f *rotationFixture) advanceTo(height int64) {
	f.t.Helper()
	for f.height < height {
		f.block()
	}
}

func (f *rotationFixture) era() *chainpb.EraState {
	f.t.Helper()
	res := f.query(QueryEra, nil)
	if res.Code != 0 {
		f.t.Fatalf("era query: %s %s", code(res), res.Log)
	}
	var es chainpb.EraState
	if err := proto.Unmarshal(res.Value, &es); err != nil {
		f.t.Fatal(err)
	}
	return &es
}

// rotKey is contract id's key re-encrypted for the rotation, if the chain
// keeps one.
func (f *rotationFixture) rotKey(id []byte) []byte {
	f.t.Helper()
	res := f.query(QueryStore, append([]byte("gatekeeper/rotkey/"), id...))
	if res.Code != 0 {
		f.t.Fatalf("store query: %s %s", code(res), res.Log)
	}
	return res.Value
}

func (f *rotationFixture) balance(a crypto.Address) uint64 {
	f.t.Helper()
	res := f.query(QueryAccount, a[:])
	if res.Code != 0 {
		f.t.Fatalf("account query: %s %s", code(res), res.Log)
	}
	var acc chainpb.Account
	if err := proto.Unmarshal(res.Value, &acc); err != nil {
		f.t.Fatal(err)
	}
	return acc.Balance
}

func (f *rotationFixture) selfStake(w []byte) uint64 {
	f.t.Helper()
	s, err := staking.SelfStake(f.app.view, w)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// stakes are the self stakes of the four candidates, the staking pool's
// balance and the treasury's.
type stakeSheet struct {
	self           map[string]uint64
	pool, treasury uint64
	operatorBond   uint64
}

func (f *rotationFixture) stakes() stakeSheet {
	f.t.Helper()
	s := stakeSheet{self: map[string]uint64{}, pool: f.balance(staking.Pool), treasury: f.balance(bank.Treasury)}
	for _, id := range []identity{f.a, f.b, f.c, f.d} {
		s.self[string(id.pub())] = f.selfStake(id.pub())
	}
	b, err := staking.Bonded(f.app.view, addr(f.keys["bob"]))
	if err != nil {
		f.t.Fatal(err)
	}
	s.operatorBond = b
	return s
}

// checkSlashed checks that between before and after exactly the workers
// slashed lost SlashGatekeeperPermille of their self stake, and that the
// staking pool and bob's bond lost, and the treasury gained, exactly that.
func (f *rotationFixture) checkSlashed(before, after stakeSheet, slashed ...[]byte) {
	f.t.Helper()
	p, err := staking.LoadParams(f.app.view)
	if err != nil || p.SlashGatekeeperPermille == 0 {
		f.t.Fatalf("slash_gatekeeper_permille %d: %v", p.SlashGatekeeperPermille, err)
	}
	permille := p.SlashGatekeeperPermille
	var total uint64
	for k, was := range before.self {
		want := was
		if containsBytes(slashed, []byte(k)) {
			cut := was * permille / 1000
			if cut == 0 {
				f.t.Fatalf("worker %X has nothing to slash", k)
			}
			want, total = was-cut, total+cut
		}
		if got := after.self[k]; got != want {
			f.t.Errorf("self stake of %X: %d, want %d (slashed: %v)", k, got, want, containsBytes(slashed, []byte(k)))
		}
	}
	if after.pool != before.pool-total || after.treasury != before.treasury+total || after.operatorBond != before.operatorBond-total {
		f.t.Errorf("slash of %d: pool %d -> %d, treasury %d -> %d, bob's bond %d -> %d", total, before.pool, after.pool, before.treasury, after.treasury, before.operatorBond, after.operatorBond)
	}
}

// rotationSnapshot is what an ignored rotation message must not change:
// the era record (with the rotation), the re-encrypted keys kept aside and
// the contract records.
type rotationSnapshot struct {
	era       []byte
	rotKeys   [][]byte
	contracts []*chainpb.Contract
}

func (f *rotationFixture) snapshot(extra ...[]byte) rotationSnapshot {
	f.t.Helper()
	s := rotationSnapshot{era: f.query(QueryEra, nil).Value, contracts: f.listContracts()}
	for _, id := range f.keyed {
		s.rotKeys = append(s.rotKeys, f.rotKey(id[:]))
	}
	for _, id := range extra {
		s.rotKeys = append(s.rotKeys, f.rotKey(id))
	}
	return s
}

func (s rotationSnapshot) equal(o rotationSnapshot) bool {
	return bytes.Equal(s.era, o.era) && slices.EqualFunc(s.rotKeys, o.rotKeys, bytes.Equal) && sameContracts(s.contracts, o.contracts)
}

// ignored delivers from's message alone in a block and checks that the
// chain takes it (the sequence is consumed) without effect: the note
// contains want, and the era, rotation and re-encrypted keys (of the keyed
// contracts and of extra ids) are unchanged.
func (f *rotationFixture) ignored(name string, from identity, wm *chainpb.WorkerMessage, want string, extra ...[]byte) {
	f.t.Helper()
	before := f.snapshot(extra...)
	r := f.block(f.message(from, wm)).TxResults[0]
	if r.Code != 0 || !strings.HasPrefix(effect(r), "ignored: ") || !strings.Contains(effect(r), want) {
		f.t.Errorf("%s: %s effect %q %s, want ignored: ...%s...", name, code(r), effect(r), r.Log, want)
	}
	if after := f.snapshot(extra...); !before.equal(after) {
		f.t.Errorf("%s: the ignored message changed the state\n before era %v\n after  era %v", name, unmarshalEra(before.era), unmarshalEra(after.era))
	}
}

// unmarshalEra decodes an era record for a failure message, without the
// gatekeepers' HPKE keys (kilobytes each).
func unmarshalEra(b []byte) *chainpb.EraState {
	var es chainpb.EraState
	proto.Unmarshal(b, &es)
	for _, g := range append(slices.Clone(es.Gatekeepers), es.GetRotation().GetIncoming()...) {
		g.HpkeKey = nil
	}
	return &es
}

// applied delivers posts in one hashed block and checks each took effect.
func (f *rotationFixture) applied(what string, posts ...post) *abci.FinalizeBlockResponse {
	f.t.Helper()
	var txs [][]byte
	for _, p := range posts {
		txs = append(txs, f.message(p.from, p.wm))
	}
	res := f.block(txs...)
	for i, r := range res.TxResults {
		if r.Code != 0 || effect(r) != "applied" {
			f.t.Fatalf("%s: message %d: %s %q %s", what, i, code(r), effect(r), r.Log)
		}
	}
	return res
}

// post is a worker message and its sender.
type post struct {
	from identity
	wm   *chainpb.WorkerMessage
}

// Events of one block.

func (f *rotationFixture) startedAt(height int64) *chainpb.RotationStarted {
	f.t.Helper()
	var out *chainpb.RotationStarted
	for _, ev := range f.eventLog(height) {
		if e := ev.GetRotationStarted(); e != nil {
			if out != nil {
				f.t.Fatalf("two RotationStarted in block %d", height)
			}
			out = e
		}
	}
	return out
}

func (f *rotationFixture) readyAt(height int64) *chainpb.RotationReady {
	f.t.Helper()
	for _, ev := range f.eventLog(height) {
		if e := ev.GetRotationReady(); e != nil {
			return e
		}
	}
	return nil
}

func (f *rotationFixture) expiredAt(height int64) *chainpb.RotationExpired {
	f.t.Helper()
	for _, ev := range f.eventLog(height) {
		if e := ev.GetRotationExpired(); e != nil {
			return e
		}
	}
	return nil
}

func gatekeeperKeys(gs []*chainpb.Gatekeeper) [][]byte {
	out := make([][]byte, len(gs))
	for i, g := range gs {
		out[i] = g.SigningKey
	}
	return out
}

func containsBytes(set [][]byte, k []byte) bool {
	return slices.ContainsFunc(set, func(x []byte) bool { return bytes.Equal(x, k) })
}

// sameKeySet reports whether a and b hold the same keys, in any order.
func sameKeySet(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !containsBytes(b, k) {
			return false
		}
	}
	return true
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// rotationRun is the test pRuntimes' side of one rotation attempt: the
// leaders, the incoming set and whatever they posted that the chain took.
type rotationRun struct {
	f        *rotationFixture
	ev       *chainpb.RotationStarted
	out, in  identity // l_{n-1}, l_n
	oldRoot  []byte   // k_r^(n-1)
	shareOut *chainpb.RotationShare
	shareIn  *chainpb.RotationShare
	root     []byte // k_r^(n), once both shares are in
	keys     *chainpb.RotationKeys
}

func (f *rotationFixture) run(ev *chainpb.RotationStarted) *rotationRun {
	f.t.Helper()
	if ev == nil {
		f.t.Fatal("no rotation started")
	}
	return &rotationRun{f: f, ev: ev, out: f.ids[string(ev.OutgoingLeader)], in: f.ids[string(ev.IncomingLeader)], oldRoot: f.root}
}

// members are the incoming set's identities, in the chain's order.
func (r *rotationRun) members() []identity {
	var out []identity
	for _, g := range r.ev.Incoming {
		out = append(out, r.f.ids[string(g.SigningKey)])
	}
	return out
}

// bystander is a candidate that is neither leader.
func (r *rotationRun) bystander() identity {
	for _, id := range []identity{r.f.a, r.f.b, r.f.c, r.f.d} {
		if !bytes.Equal(id.pub(), r.out.pub()) && !bytes.Equal(id.pub(), r.in.pub()) {
			return id
		}
	}
	r.f.t.Fatal("no bystander")
	return identity{}
}

// share draws a leader's share and salt and seals the share to the other
// leader's registered HPKE key, as its pRuntime does.
func (r *rotationRun) share(incoming bool) *chainpb.RotationShare {
	r.f.t.Helper()
	from, to := r.out, r.in
	if incoming {
		from, to = r.in, r.out
	}
	env, err := crypto.Seal(r.f.worker(to.pub()).HpkeKey, crypto.RotationShareInfo(testChainID, r.ev.Era, r.ev.Attempt, from.pub(), to.pub()), randomBytes(crypto.RotationShareSize))
	if err != nil {
		r.f.t.Fatal(err)
	}
	return &chainpb.RotationShare{Era: r.ev.Era, Attempt: r.ev.Attempt, Incoming: incoming, Salt: randomBytes(crypto.RotationShareSize),
		Share: &chainpb.SealedKey{Recipient: to.pub(), Envelope: env}}
}

// took records shares the chain accepted; with both, the leaders open each
// other's share and derive k_r^(n).
func (r *rotationRun) took(shares ...*chainpb.RotationShare) {
	r.f.t.Helper()
	for _, s := range shares {
		if s.Incoming {
			r.shareIn = s
		} else {
			r.shareOut = s
		}
	}
	if r.shareOut == nil || r.shareIn == nil {
		return
	}
	e, a := r.ev.Era, r.ev.Attempt
	sOut, err := r.in.hpke.Open(r.shareOut.Share.Envelope, crypto.RotationShareInfo(testChainID, e, a, r.out.pub(), r.in.pub()))
	if err != nil {
		r.f.t.Fatalf("the incoming leader cannot open the outgoing share: %v", err)
	}
	sIn, err := r.out.hpke.Open(r.shareIn.Share.Envelope, crypto.RotationShareInfo(testChainID, e, a, r.in.pub(), r.out.pub()))
	if err != nil {
		r.f.t.Fatalf("the outgoing leader cannot open the incoming share: %v", err)
	}
	r.root, err = crypto.RotationRootKey(testChainID, e, a, sOut, sIn, r.shareOut.Salt, r.shareIn.Salt)
	if err != nil {
		r.f.t.Fatal(err)
	}
}

// keysFor seals root to each of to (the incoming set for a genuine
// distribution).
func (r *rotationRun) keysFor(root []byte, to ...identity) *chainpb.RotationKeys {
	r.f.t.Helper()
	k := &chainpb.RotationKeys{Era: r.ev.Era, Attempt: r.ev.Attempt, RootPublicKey: crypto.RootPublicKey(root), RootHpkeKey: rootHPKE(r.f.t, root)}
	for _, g := range to {
		env, err := crypto.Seal(g.hpke.PublicKey(), crypto.RotationKeyInfo(testChainID, r.ev.Era, r.ev.Attempt, g.pub()), root)
		if err != nil {
			r.f.t.Fatal(err)
		}
		k.Keys = append(k.Keys, &chainpb.SealedKey{Recipient: g.pub(), Envelope: env})
	}
	return k
}

// state is part of parts of the outgoing leader's state: ids' stored keys
// unwrapped with the old root key and wrapped with root.
func (r *rotationRun) state(root []byte, part, parts uint32, ids ...crypto.ContractID) *chainpb.RotationState {
	r.f.t.Helper()
	s := &chainpb.RotationState{Era: r.ev.Era, Attempt: r.ev.Attempt, RootPublicKey: crypto.RootPublicKey(root), Part: part, Parts: parts}
	for _, id := range ids {
		kc := randomBytes(crypto.ContractKeySize) // a contract the chain keeps no key of
		if want, ok := r.f.kc[id]; ok {
			var err error
			kc, err = crypto.UnwrapContractKey(r.oldRoot, testChainID, id, r.f.getContract(id).WrappedKey)
			if err != nil || !bytes.Equal(kc, want) {
				r.f.t.Fatalf("re-encrypt %s: the stored key does not open under the old root key: %v", id, err)
			}
		}
		w, err := crypto.WrapContractKey(root, testChainID, id, kc)
		if err != nil {
			r.f.t.Fatal(err)
		}
		s.Keys = append(s.Keys, &chainpb.WrappedContractKey{Contract: id.Bytes(), WrappedKey: w})
	}
	return s
}

// confirmBy is member's confirmation as its pRuntime makes it: it opens
// the new root key sealed to it, then checks that every re-encrypted key
// the chain keeps aside opens under it to its contract's public key.
func (r *rotationRun) confirmBy(member identity) *chainpb.RotationConfirm {
	r.f.t.Helper()
	if r.keys == nil {
		r.f.t.Fatal("no root key distributed")
	}
	i := slices.IndexFunc(r.keys.Keys, func(k *chainpb.SealedKey) bool { return bytes.Equal(k.Recipient, member.pub()) })
	if i < 0 {
		r.f.t.Fatalf("no root key sealed to %X", member.pub())
	}
	root, err := member.hpke.Open(r.keys.Keys[i].Envelope, crypto.RotationKeyInfo(testChainID, r.ev.Era, r.ev.Attempt, member.pub()))
	if err != nil || !bytes.Equal(crypto.RootPublicKey(root), r.keys.RootPublicKey) {
		r.f.t.Fatalf("member %X: the new root key does not open or match: %v", member.pub(), err)
	}
	for _, id := range r.f.keyed {
		w := r.f.rotKey(id[:])
		kc, err := crypto.UnwrapContractKey(root, testChainID, id, w)
		if err != nil {
			r.f.t.Fatalf("member %X: re-encrypted key of %s: %v", member.pub(), id, err)
		}
		in, err := crypto.ContractInputKey(kc)
		if err != nil || !bytes.Equal(in.PublicKey(), r.f.getContract(id).PublicKey) {
			r.f.t.Fatalf("member %X: re-encrypted key of %s does not match its public key", member.pub(), id)
		}
	}
	return &chainpb.RotationConfirm{Era: r.ev.Era, Attempt: r.ev.Attempt, RootPublicKey: crypto.RootPublicKey(root)}
}

// statePosts are the outgoing leader's state in parts (at least one) of
// the keyed contracts, as evenly as they split.
func (r *rotationRun) statePosts(parts int) []post {
	var out []post
	n := len(r.f.keyed)
	for p := range parts {
		ids := r.f.keyed[p*n/parts : (p+1)*n/parts]
		out = append(out, post{r.out, stateMsg(r.state(r.root, uint32(p), uint32(parts), ids...))})
	}
	return out
}

// sharesIn posts both leaders' shares in one block.
func (r *rotationRun) sharesIn() {
	r.f.t.Helper()
	so, si := r.share(false), r.share(true)
	r.f.applied("shares", post{r.out, shareMsg(so)}, post{r.in, shareMsg(si)})
	r.took(so, si)
}

// keysAndState posts the distribution and the state (in parts) in one
// block.
func (r *rotationRun) keysAndState(parts int) {
	r.f.t.Helper()
	k := r.keysFor(r.root, r.members()...)
	r.f.applied("keys and state", append([]post{{r.in, keysMsg(k)}}, r.statePosts(parts)...)...)
	r.keys = k
}

// complete runs the attempt to Rotation Ready in three blocks and returns
// the Ready event; the fixture's root key becomes the new one.
func (r *rotationRun) complete(parts int) *chainpb.RotationReady {
	r.f.t.Helper()
	r.sharesIn()
	r.keysAndState(parts)
	var confirms []post
	for _, m := range r.members() {
		confirms = append(confirms, post{m, confirmMsg(r.confirmBy(m))})
	}
	r.f.applied("confirmations", confirms...)
	ready := r.f.readyAt(r.f.height)
	if ready == nil {
		r.f.t.Fatalf("no RotationReady after every confirmation (block %d)", r.f.height)
	}
	r.f.root = r.root
	return ready
}

func shareMsg(s *chainpb.RotationShare) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationShare{RotationShare: s}}
}

func keysMsg(k *chainpb.RotationKeys) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationKeys{RotationKeys: k}}
}

func stateMsg(s *chainpb.RotationState) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationState{RotationState: s}}
}

func confirmMsg(c *chainpb.RotationConfirm) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_RotationConfirm{RotationConfirm: c}}
}
