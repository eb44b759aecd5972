package lightclient

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/batch"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"

	"github.com/phala-go/phala/proto/chainpb"
)

// IngestBatch ingests bs in order, as many as it can: it is exactly calling
// Ingest on each block in turn and stopping at the first error, only
// faster. It returns the events of each block it adopted (evs[i] is what
// Ingest(bs[i]) returns), so len(evs) blocks were adopted; err is nil when
// all were, else it is the error Ingest gives for bs[len(evs)], which is
// refused along with every block after it. A batch is not all-or-nothing:
// the blocks before a refused one stay adopted, as with one Ingest call
// each, and the host may resend the rest, corrected.
//
// How: every block is checked exactly as Ingest checks it (the same code,
// with light.VerifyAdjacent's and ValidatorSet.VerifyCommitLight's steps
// replayed in verifyAdjacent and verifyCommitLight), except that the commit
// signatures CometBFT would batch-verify for each block (the ones it counts
// until more than 2/3 of the power has signed) are not verified per block:
// they all go into curve25519-voi batch verifiers, one per core (CometBFT's
// own crypto/ed25519 batch verifier with its ZIP-215 options, so exactly the
// signatures CometBFT accepts are accepted), which are verified once the
// last block is checked. Commits CometBFT does not batch-verify (fewer than
// 2 signatures, keys other than ed25519, mixed key types) are verified on
// the spot by CometBFT, as Ingest does. If a block fails a check, or a
// batch holds a signature that is not valid, the blocks before it, all
// checked and all of whose signatures are valid, are adopted, and Ingest
// takes over from that block: its error is the one IngestBatch returns.
//
// Readers (Height, Header, VerifyState, Marshal) may see the client jump
// from the state before the batch to the state after its last adopted
// block. The caller must not modify the blocks afterwards (see Ingest).
func (c *Client) IngestBatch(bs []Block) ([][]*chainpb.WorkerEvent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	states, evs := c.checkBatch(c.st.Load(), bs)
	if len(states) > 0 {
		c.st.Store(states[len(states)-1])
	}
	for _, b := range bs[len(evs):] {
		e, err := c.ingest(b)
		if err != nil {
			return evs, err
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// checkBatch is IngestBatch's fast path: it verifies the longest prefix of
// bs it can from st, signatures in batches, and returns the state after
// each block of that prefix and the block's events. It changes nothing.
func (c *Client) checkBatch(st *state, bs []Block) ([]*state, [][]*chainpb.WorkerEvent) {
	states := make([]*state, 0, len(bs))
	evs := make([][]*chainpb.WorkerEvent, 0, len(bs))
	d := &sigBatch{}
	defer d.stop()
	for i, b := range bs {
		d.block = i
		next, err := c.verifyHeader(st, b, d)
		var e []*chainpb.WorkerEvent
		if err == nil {
			e, err = c.verifyEventLog(st, b)
		}
		if err != nil {
			break
		}
		d.passed()
		states = append(states, next)
		evs = append(evs, e)
		st = next
	}
	// Blocks [0, len(states)) passed every check but their signatures'; keep
	// those before the first one with a signature that is not valid.
	n := min(len(states), d.verify())
	return states[:n], evs[:n]
}

// sigBatch collects the commit signatures of a batch of blocks and verifies
// them. The signatures of each block that passes every other check go to
// worker goroutines, up to GOMAXPROCS of them, in chunks, while the next
// blocks are checked; each worker adds its share to one batch verifier of
// CometBFT's crypto/ed25519 (curve25519-voi, ZIP-215 rules: the entry's R
// and S decoded, H(R,A,M) hashed) and verifies it when the last block is
// checked. A batch small enough to be left in one chunk is verified on the
// calling goroutine.
type sigBatch struct {
	// block is the index in the batch of the block being checked; add
	// records it with each of its signatures.
	block int
	// cur holds the signatures of the block being checked, pending those
	// of the blocks that passed and are not yet with a worker.
	cur, pending []sigEntry
	workers      []*sigWorker
	next         int // the worker the next chunk goes to
}

// sigEntry is commit.Signatures[idx], to be verified with key, as
// CometBFT's verifyCommitBatch adds it to its batch verifier.
type sigEntry struct {
	block   int
	key     crypto.PubKey
	chainID string
	commit  *types.Commit
	idx     int32
}

// sigChunk is how many signatures go to a worker at a time; a batch with
// fewer is verified without any.
const sigChunk = 64

func (d *sigBatch) add(key crypto.PubKey, chainID string, commit *types.Commit, idx int) {
	d.cur = append(d.cur, sigEntry{block: d.block, key: key, chainID: chainID, commit: commit, idx: int32(idx)})
}

// passed says that the block being checked passed every check but its
// signatures; a block that did not pass is simply not followed by passed,
// and its signatures are dropped with the next block's.
func (d *sigBatch) passed() {
	d.pending = append(d.pending, d.cur...)
	d.cur = d.cur[:0]
	if len(d.pending) >= sigChunk {
		d.send()
	}
}

// send hands the pending signatures to the next worker, starting one if
// fewer than GOMAXPROCS are running.
func (d *sigBatch) send() {
	if len(d.workers) < runtime.GOMAXPROCS(0) {
		w := &sigWorker{in: make(chan []sigEntry, 4), done: make(chan struct{})}
		go w.run()
		d.workers = append(d.workers, w)
	}
	d.workers[d.next%len(d.workers)].in <- d.pending
	d.next++
	d.pending = nil
}

// verify verifies every signature passed and returns the index of the
// first block with one that is not valid, or math.MaxInt if there is none.
func (d *sigBatch) verify() int {
	if len(d.workers) == 0 {
		v := newSigVerifier()
		v.add(d.pending)
		return v.verify()
	}
	if len(d.pending) > 0 {
		d.send()
	}
	bad := math.MaxInt
	for _, w := range d.workers {
		close(w.in)
		<-w.done
		bad = min(bad, w.bad)
	}
	d.workers = nil
	return bad
}

// stop ends the workers if verify was not reached (a panic).
func (d *sigBatch) stop() {
	for _, w := range d.workers {
		close(w.in)
	}
}

// sigWorker batch-verifies the signatures sent to it.
type sigWorker struct {
	in   chan []sigEntry
	done chan struct{}
	bad  int // the first block with a signature that is not valid, or math.MaxInt
}

func (w *sigWorker) run() {
	defer close(w.done)
	v := newSigVerifier()
	for chunk := range w.in {
		v.add(chunk)
	}
	w.bad = v.verify()
}

// sigVerifier is one batch verifier of CometBFT's crypto/ed25519 and the
// signatures added to it, in block order.
type sigVerifier struct {
	bv crypto.BatchVerifier
	es []sigEntry
	// bad is the block of the first signature Add refused, or math.MaxInt.
	bad int
}

func newSigVerifier() *sigVerifier {
	return &sigVerifier{bv: cmted25519.NewBatchVerifier(), bad: math.MaxInt}
}

func (v *sigVerifier) add(es []sigEntry) {
	for _, e := range es {
		if e.block >= v.bad {
			return
		}
		// CometBFT's verifyCommitBatch refuses the commit when Add fails
		// (a key that is not ed25519, a signature of the wrong length).
		if err := v.bv.Add(e.key, e.commit.VoteSignBytes(e.chainID, e.idx), e.commit.Signatures[e.idx].Signature); err != nil {
			v.bad = e.block
			return
		}
		v.es = append(v.es, e)
	}
}

// verify returns the block of the first signature that is not valid, or
// math.MaxInt. A batch that fails is verified signature by signature (by
// curve25519-voi, with the same rules) to find the culprit.
func (v *sigVerifier) verify() int {
	if len(v.es) == 0 {
		return v.bad
	}
	ok, valid := v.bv.Verify()
	if ok {
		return v.bad
	}
	for i, good := range valid {
		if !good {
			return min(v.bad, v.es[i].block)
		}
	}
	// A failed batch with every signature valid would be a bug in the
	// verifier; trust none of it.
	return min(v.bad, v.es[0].block)
}

// verifyAdjacent is light.VerifyAdjacent when d is nil. With d it makes the
// same checks, in the same order (CometBFT v1.0.1, light/verifier.go:
// VerifyAdjacent and verifyNewHeaderAndVals), but hands the commit to
// verifyCommitLight with d. Its errors are then only used to decide that
// the block is refused: IngestBatch lets Ingest say why.
func verifyAdjacent(trusted, untrusted *types.SignedHeader, untrustedVals *types.ValidatorSet,
	trustingPeriod time.Duration, now time.Time, maxClockDrift time.Duration, d *sigBatch,
) error {
	if d == nil {
		return light.VerifyAdjacent(trusted, untrusted, untrustedVals, trustingPeriod, now, maxClockDrift)
	}
	if untrusted.Height != trusted.Height+1 {
		return errors.New("headers must be adjacent in height")
	}
	if light.HeaderExpired(trusted, trustingPeriod, now) {
		return light.ErrOldHeaderExpired{At: trusted.Time.Add(trustingPeriod), Now: now}
	}
	// verifyNewHeaderAndVals
	if err := untrusted.ValidateBasic(trusted.ChainID); err != nil {
		return light.ErrInvalidHeader{Reason: fmt.Errorf("untrustedHeader.ValidateBasic failed: %w", err)}
	}
	if untrusted.Height <= trusted.Height {
		return light.ErrInvalidHeader{Reason: errors.New("new header height not greater than the old header's")}
	}
	if !untrusted.Time.After(trusted.Time) {
		return light.ErrInvalidHeader{Reason: errors.New("new header time not after the old header's")}
	}
	if !untrusted.Time.Before(now.Add(maxClockDrift)) {
		return light.ErrInvalidHeader{Reason: errors.New("new header has a time from the future")}
	}
	if !bytes.Equal(untrusted.ValidatorsHash, untrustedVals.Hash()) {
		return light.ErrInvalidHeader{Reason: errors.New("new header validators do not match those supplied")}
	}
	// VerifyAdjacent
	if !bytes.Equal(untrusted.ValidatorsHash, trusted.NextValidatorsHash) {
		return errors.New("old header next validators do not match those of the new header")
	}
	if err := verifyCommitLight(untrustedVals, trusted.ChainID, untrusted.Commit.BlockID, untrusted.Height, untrusted.Commit, d); err != nil {
		return light.ErrInvalidHeader{Reason: err}
	}
	return nil
}

// verifyCommitLight is vals.VerifyCommitLight(chainID, blockID, height,
// commit) when d is nil, and also when CometBFT would not batch-verify the
// commit. Otherwise it replays CometBFT's steps (v1.0.1, types/validation.go:
// verifyCommitLightInternal with countAllSignatures false, which calls
// verifyBasicValsAndCommit, shouldBatchVerify and verifyCommitBatch with
// lookUpByIndex true), and where verifyCommitBatch adds a signature to its
// batch verifier, it adds it to d; the commit is accepted only if every
// signature added is valid.
func verifyCommitLight(vals *types.ValidatorSet, chainID string, blockID types.BlockID, height int64, commit *types.Commit, d *sigBatch) error {
	if d == nil {
		return vals.VerifyCommitLight(chainID, blockID, height, commit)
	}
	// verifyBasicValsAndCommit
	if vals == nil {
		return errors.New("nil validator set")
	}
	if commit == nil {
		return errors.New("nil commit")
	}
	if vals.Size() != len(commit.Signatures) {
		return fmt.Errorf("invalid commit -- wrong set size: %d vs %d", vals.Size(), len(commit.Signatures))
	}
	if height != commit.Height {
		return fmt.Errorf("invalid commit -- wrong height: %d vs %d", height, commit.Height)
	}
	if !blockID.Equals(commit.BlockID) {
		return fmt.Errorf("invalid commit -- wrong block ID: want %v, got %v", blockID, commit.BlockID)
	}
	// shouldBatchVerify (batchVerifyThreshold is 2)
	if len(commit.Signatures) < 2 || !batch.SupportsBatchVerifier(vals.GetProposer().PubKey) || !vals.AllKeysHaveSameType() {
		// CometBFT verifies these one signature at a time; so do we.
		return vals.VerifyCommitLight(chainID, blockID, height, commit)
	}
	// verifyCommitBatch: ignore signatures that are not for the block,
	// count every other one, stop once more than 2/3 of the power is
	// counted.
	needed := vals.TotalVotingPower() * 2 / 3
	var tallied int64
	for idx, cs := range commit.Signatures {
		if cs.BlockIDFlag != types.BlockIDFlagCommit {
			continue
		}
		val := vals.Validators[idx]
		d.add(val.PubKey, chainID, commit, idx)
		tallied += val.VotingPower
		if tallied > needed {
			break
		}
	}
	if tallied <= needed {
		return types.ErrNotEnoughVotingPowerSigned{Got: tallied, Needed: needed}
	}
	return nil
}
