package host

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// MaxRecoveryInputs bounds the inbox inputs one RecoverContract call
// carries; a longer inbox takes several calls.
const MaxRecoveryInputs = 500

// proofFetchers is how many state proofs are fetched at once.
const proofFetchers = 8

// recoverContracts feeds pRuntime the contracts it was assigned and holds
// k_c for (InfoResponse.recovering), one step each. busy reports whether
// a recovery has more to do.
func (h *Host) recoverContracts(ctx context.Context, info *pruntimepb.InfoResponse) (busy bool, err error) {
	var errs []error
	for _, rc := range info.Recovering {
		if !rc.Keyed {
			continue
		}
		// One contract that cannot recover now does not hold up the others.
		req, err := RecoveryRequest(ctx, h.cfg.Chain, info.Height, rc, MaxRecoveryInputs)
		if err != nil {
			errs = append(errs, fmt.Errorf("fetch contract %X's recovery: %w", rc.Contract, err))
			continue
		}
		resp, err := h.cfg.PRuntime.RecoverContract(ctx, req)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover contract %X: %w", rc.Contract, err))
			continue
		}
		id, _ := crypto.ContractIDFromBytes(rc.Contract)
		if resp.Done {
			h.log.Info("pRuntime recovered a contract it was assigned", "contract", id.String(), "inputs", resp.Status.NextInput)
		} else {
			busy = true
			h.log.Info("recovering a contract", "contract", id.String(), "next_input", resp.Status.NextInput, "replayed", resp.Replayed)
		}
	}
	return busy, errors.Join(errs...)
}

// RecoveryRequest builds the next RecoverContract step for a contract
// whose recovery stands at rc, from the chain's state after block
// height-1: the state a pRuntime at height (its newest trusted header)
// verifies proofs against. It carries the contract record, the checkpoint
// chunks and code when rc has none loaded (or a newer checkpoint replaced
// the inputs rc needs), and up to maxInputs inbox inputs, each with its
// proof. The host is untrusted: pRuntime checks every proof.
func RecoveryRequest(ctx context.Context, cl *client.Client, height int64, rc *pruntimepb.Recovery, maxInputs int) (*pruntimepb.RecoverRequest, error) {
	at := height - 1
	id := rc.Contract
	rec, err := provenValue(ctx, cl, inbox.RecordKey(id), at)
	if err != nil {
		return nil, err
	}
	var ct chainpb.Contract
	if len(rec.Value) == 0 {
		return nil, fmt.Errorf("no contract %X at block %d", id, at)
	}
	if err := proto.Unmarshal(rec.Value, &ct); err != nil {
		return nil, err
	}
	req := &pruntimepb.RecoverRequest{Contract: id, Record: rec}
	next := rc.NextInput
	if !rc.Loaded || ct.InboxStart > rc.NextInput {
		next = 0
		if cp := ct.Checkpoint; cp != nil {
			next = cp.Inputs
			keys := make([][]byte, cp.Chunks)
			for i := range keys {
				keys[i] = inbox.ChunkKey(id, uint32(i))
			}
			if req.Checkpoint, err = provenValues(ctx, cl, keys, at); err != nil {
				return nil, err
			}
		}
		if !rc.Loaded {
			code, err := cl.StateProof(ctx, inbox.CodeKey(ct.CodeHash), at)
			if err != nil {
				return nil, err
			}
			req.CodeGzip = code.Value
		}
	}
	// Up to maxInputs inputs and maxRequestInputBytes of them (none beside
	// a large checkpoint), then on to the end of the last one's block:
	// pRuntime replays whole blocks only.
	budget := maxRequestInputBytes
	for _, v := range req.Checkpoint {
		budget -= len(v.Value)
	}
	n, lastHeight := next, int64(-1)
	for n < ct.Inputs && budget > 0 {
		batch := maxInputs
		if len(req.Inputs) >= maxInputs {
			batch = 32 // finishing a block
		}
		var keys [][]byte
		for ; n < ct.Inputs && len(keys) < batch; n++ {
			keys = append(keys, inbox.InputKey(id, n))
		}
		vs, err := provenValues(ctx, cl, keys, at)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			h := inputHeight(v.Value)
			if len(req.Inputs) >= maxInputs && h != lastHeight {
				return req, nil // the block is complete
			}
			req.Inputs, lastHeight, budget = append(req.Inputs, v), h, budget-len(v.Value)
		}
	}
	return req, nil
}

// maxRequestInputBytes budgets a RecoverContract call's checkpoint and
// inputs, well under pRuntime's 64 MiB message limit.
const maxRequestInputBytes = 24 << 20

// inputHeight is the block of an inbox input (-1 if it does not decode;
// pRuntime refuses it anyway).
func inputHeight(b []byte) int64 {
	var in chainpb.ContractInput
	var ev chainpb.WorkerEvent
	if proto.Unmarshal(b, &in) != nil || proto.Unmarshal(in.Event, &ev) != nil {
		return -1
	}
	return ev.Height
}

func provenValue(ctx context.Context, cl *client.Client, key []byte, at int64) (*pruntimepb.ProvenValue, error) {
	p, err := cl.StateProof(ctx, key, at)
	if err != nil {
		return nil, err
	}
	b, err := p.Proof.Marshal()
	if err != nil {
		return nil, err
	}
	return &pruntimepb.ProvenValue{Height: p.Height, Key: p.Key, Value: p.Value, Proof: b, LogRoot: p.LogRoot}, nil
}

// provenValues fetches keys' values with proofs, a few at a time.
func provenValues(ctx context.Context, cl *client.Client, keys [][]byte, at int64) ([]*pruntimepb.ProvenValue, error) {
	out := make([]*pruntimepb.ProvenValue, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, proofFetchers)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = provenValue(ctx, cl, k, at)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
