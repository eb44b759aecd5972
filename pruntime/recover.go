package pruntime

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"time"

	ics23 "github.com/cosmos/ics23/go"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/vm"
)

// RecoverContract takes over an instance this worker was assigned: it
// loads the latest checkpoint the chain stores (or the empty state, when
// there is none yet) and runs the inputs after it from the chain's inbox,
// exactly as the previous miner ran them. Every value is proven against
// the state committed by pRuntime's newest trusted header, so the host can
// withhold it but not alter it; a checkpoint must also open under k_c for
// its height, inputs and state root, and its store must hash to that root.
// A refused request changes nothing. The host calls again (with more
// inputs, or after a sync) until the response says done; from then on the
// instance runs live.
func (r *Runtime) RecoverContract(req *pruntimepb.RecoverRequest) (*pruntimepb.RecoverResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lc == nil {
		return nil, ErrNotInitialized
	}
	if r.broken != nil {
		return nil, fmt.Errorf("pRuntime stopped after a verified event it could not apply (%w); restart it", r.broken)
	}
	id, err := crypto.ContractIDFromBytes(req.Contract)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	k := hexKey(req.Contract)
	c := r.st.Contracts[k]
	if c == nil || !c.Mine || c.Live || c.Recovery == nil {
		return nil, fmt.Errorf("%w: this worker is not recovering contract %s", ErrBadRequest, id)
	}
	if !c.Recovery.Keyed || c.Key == nil {
		return nil, fmt.Errorf("%w: contract %s: no gatekeeper's key has reached this worker yet", ErrBadRequest, id)
	}
	resp, err := r.recover(id, k, c, req)
	if err != nil {
		c.Recovery.Error = err.Error()
		r.publishInfo()
		r.log.Warn("refused a contract recovery step", "contract", id.String(), "err", err)
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := r.persist(); err != nil {
		return nil, err
	}
	r.publishInfo()
	r.publishView(r.st.BlockTime)
	return resp, nil
}

func (r *Runtime) recover(id crypto.ContractID, k string, c *contractState, req *pruntimepb.RecoverRequest) (*pruntimepb.RecoverResponse, error) {
	// Verify everything before changing anything.
	rb, err := r.proven(req.Record, inbox.RecordKey(id[:]))
	if err != nil {
		return nil, fmt.Errorf("the contract record: %w", err)
	}
	var rec chainpb.Contract
	if err := strictpb.Decode(rb, &rec); err != nil {
		return nil, fmt.Errorf("the contract record: %w", err)
	}
	if !inbox.IsMiner(rec.Miners, r.id.Public()) {
		return nil, fmt.Errorf("the chain no longer names this worker a miner of %s", id)
	}
	var load *checkpointState
	switch {
	case len(req.Checkpoint) > 0 || !c.Recovery.Loaded:
		if load, err = r.openCheckpoint(id, c, &rec, req.Checkpoint); err != nil {
			return nil, err
		}
	case rec.InboxStart > c.Inputs:
		return nil, fmt.Errorf("a newer checkpoint (inputs %d) replaced the inputs from %d on; send it", rec.InboxStart, c.Inputs)
	}
	next := c.Inputs
	if load != nil {
		next = load.Inputs
	}
	inputs := make([]*chainpb.WorkerEvent, len(req.Inputs))
	times := make([]time.Time, len(req.Inputs))
	for i, pv := range req.Inputs {
		b, err := r.proven(pv, inbox.InputKey(id[:], next+uint64(i)))
		if err != nil {
			return nil, fmt.Errorf("input %d: %w", next+uint64(i), err)
		}
		var in chainpb.ContractInput
		var ev chainpb.WorkerEvent
		if err := strictpb.Decode(b, &in); err != nil {
			return nil, fmt.Errorf("input %d: %w", next+uint64(i), err)
		}
		if err := strictpb.Decode(in.Event, &ev); err != nil {
			return nil, fmt.Errorf("input %d: its event: %w", next+uint64(i), err)
		}
		inputs[i], times[i] = &ev, time.Unix(0, in.TimeUnixNano).UTC()
	}
	if next+uint64(len(inputs)) > rec.Inputs {
		return nil, fmt.Errorf("inputs up to %d sent, the chain has %d", next+uint64(len(inputs)), rec.Inputs)
	}
	// A block's inputs run in one VM session (gas depends on it): unless
	// the batch reaches the last input, replay only whole blocks.
	if len(inputs) > 0 && next+uint64(len(inputs)) < rec.Inputs {
		last, cut := inputs[len(inputs)-1].Height, len(inputs)
		for cut > 0 && inputs[cut-1].Height == last {
			cut--
		}
		if cut == 0 {
			return nil, fmt.Errorf("the inputs sent all belong to block %d, which has more; send the whole block", last)
		}
		inputs, times = inputs[:cut], times[:cut]
	}
	var code []byte
	if r.running[k] == nil && c.Broken == "" {
		if _, err := os.Stat(r.codeFile(c.CodeHash)); err != nil {
			if req.CodeGzip == nil {
				return nil, fmt.Errorf("this worker does not have the contract's code; send it (code_gzip)")
			}
			if code, err = checkCode(c, req.CodeGzip); err != nil {
				return nil, fmt.Errorf("the code sent: %w", err)
			}
		}
	}

	// Apply.
	if load != nil {
		if r.running[k] == nil && c.Broken == "" {
			if code != nil {
				if err := r.writeCode(c, code); err != nil {
					return nil, err
				}
			}
			if err := r.startInstance(k, c); err != nil { // with c.Key: its input key too
				return nil, err
			}
		}
		c.Inputs, c.Sent, c.State = load.Inputs, load.Sent, load.Pairs
		// The messages the checkpoint's miner kept for the chain (what
		// this miner kept of an earlier attempt the replay makes again).
		c.Outgoing = slices.DeleteFunc(load.Outgoing, func(o outgoing) bool { return o.Seq < c.Accepted })
		c.LastInput = 0
		if rec.Checkpoint != nil {
			c.LastInput = rec.Checkpoint.Height
		}
		if run := r.running[k]; run != nil {
			run.store, run.dirty = vm.NewMemStoreFrom(load.Pairs), true
		}
		c.Recovery.Loaded = true
		r.log.Info("loaded a contract's checkpoint", "contract", id.String(), "inputs", load.Inputs, "pairs", len(load.Pairs))
		if err := r.resendOutgoing(k, c); err != nil {
			return nil, err
		}
	}
	run := r.running[k]
	for i, ev := range inputs {
		if err := r.runInput(run, c, ev, times[i]); err != nil {
			return nil, fmt.Errorf("replay input %d: %w", c.Inputs-1, err)
		}
	}
	if run != nil && run.session != nil {
		run.session.Close(context.Background())
		run.session = nil
	}
	c.Recovery.Error = ""
	st := &pruntimepb.Recovery{Contract: id.Bytes(), Keyed: true, Loaded: true, NextInput: c.Inputs}
	resp := &pruntimepb.RecoverResponse{Status: st, Replayed: uint32(len(inputs))}
	if c.Inputs == rec.Inputs {
		c.Live, c.Recovery, resp.Done = true, nil, true
		r.log.Info("recovered a contract; running it live", "contract", id.String(), "inputs", c.Inputs)
	}
	return resp, nil
}

// openCheckpoint verifies and opens the record's checkpoint from its
// proven chunks; without a checkpoint on record, the empty state from
// input 0.
func (r *Runtime) openCheckpoint(id crypto.ContractID, c *contractState, rec *chainpb.Contract, chunks []*pruntimepb.ProvenValue) (*checkpointState, error) {
	cp := rec.Checkpoint
	if cp == nil {
		if rec.InboxStart != 0 || len(chunks) != 0 {
			return nil, fmt.Errorf("the record has no checkpoint")
		}
		return &checkpointState{Pairs: map[string][]byte{}}, nil
	}
	if uint32(len(chunks)) != cp.Chunks {
		return nil, fmt.Errorf("the checkpoint has %d chunks, %d sent", cp.Chunks, len(chunks))
	}
	if cp.Size > maxCheckpointBytes {
		return nil, fmt.Errorf("the checkpoint is %d bytes, over %d", cp.Size, maxCheckpointBytes)
	}
	sealed := make([]byte, 0, cp.Size)
	for i, pv := range chunks {
		b, err := r.proven(pv, inbox.ChunkKey(id[:], uint32(i)))
		if err != nil {
			return nil, fmt.Errorf("checkpoint chunk %d: %w", i, err)
		}
		sealed = append(sealed, b...)
	}
	return openSealedCheckpoint(r.chainID, id, c.Key, cp, sealed)
}

// openSealedCheckpoint opens a checkpoint as the record cp describes it:
// it must open under kc bound to cp's height, inputs and state root, and
// its store must hash to that root.
func openSealedCheckpoint(chainID string, id crypto.ContractID, kc []byte, cp *chainpb.Checkpoint, sealed []byte) (*checkpointState, error) {
	if uint64(len(sealed)) != cp.Size {
		return nil, fmt.Errorf("the checkpoint's chunks hold %d bytes, its record says %d", len(sealed), cp.Size)
	}
	plain, err := crypto.OpenCheckpoint(kc, crypto.CheckpointAD(chainID, id, cp.Height, cp.Inputs, cp.StateRoot), sealed)
	if err != nil {
		return nil, err
	}
	st, err := decodeCheckpoint(plain)
	if err != nil {
		return nil, err
	}
	if st.Inputs != cp.Inputs {
		return nil, fmt.Errorf("the checkpoint covers %d inputs, its record says %d", st.Inputs, cp.Inputs)
	}
	if root := vm.NewMemStoreFrom(st.Pairs).Root(); !bytes.Equal(root[:], cp.StateRoot) {
		return nil, fmt.Errorf("the checkpoint's state hashes to %X, the chain committed %X", root, cp.StateRoot)
	}
	return &st, nil
}

// proven checks pv is key's value (present) in the state pRuntime's newest
// trusted header commits to, and returns it.
func (r *Runtime) proven(pv *pruntimepb.ProvenValue, key []byte) ([]byte, error) {
	if pv == nil || len(pv.Value) == 0 {
		return nil, fmt.Errorf("no value for key %q", key)
	}
	if !bytes.Equal(pv.Key, key) {
		return nil, fmt.Errorf("a value for key %X where %X was due", pv.Key, key)
	}
	var cp ics23.CommitmentProof
	if err := cp.Unmarshal(pv.Proof); err != nil {
		return nil, fmt.Errorf("%w: ics23 proof: %v", proof.ErrMalformed, err)
	}
	if err := r.lc.VerifyState(&proof.StateProof{Height: pv.Height, Key: pv.Key, Value: pv.Value, Proof: &cp, LogRoot: pv.LogRoot}); err != nil {
		return nil, err
	}
	return pv.Value, nil
}

// recoveries lists the instances this pRuntime is taking over.
func (r *Runtime) recoveries() []*pruntimepb.Recovery {
	var out []*pruntimepb.Recovery
	for k, c := range r.st.Contracts {
		if c.Mine && !c.Live && c.Recovery != nil {
			raw, _ := hex.DecodeString(k)
			out = append(out, &pruntimepb.Recovery{Contract: raw, Keyed: c.Recovery.Keyed, Loaded: c.Recovery.Loaded,
				NextInput: c.Inputs, Error: c.Recovery.Error})
		}
	}
	slices.SortFunc(out, func(a, b *pruntimepb.Recovery) int { return bytes.Compare(a.Contract, b.Contract) })
	return out
}
