// Package proof verifies what a block committed, given nothing but a header
// that a light client accepted: the block's worker event log, and any state
// value (or its absence) at a height.
//
// The app hash of block H, carried in the header of block H+1, is the RFC 6962
// Merkle root of two leaves: the IAVL state root after H, and the Merkle root
// of H's worker event log (each event's canonical bytes one leaf, in order).
// A relayer supplies the sibling of whatever it proves, so either half can be
// checked without the other half's contents.
//
// The package knows nothing of the chain's modules; chain/ produces these
// structures and pruntime/ consumes them.
package proof

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cometbft/cometbft/crypto/merkle"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/chainpb"
)

// RootSize is the size of the state root and the event log root.
const RootSize = 32

// Errors wrapped by every verification failure, so callers can tell a lying
// relayer (ErrMismatch) from a wrong request (ErrHeight) or bad bytes.
var (
	ErrHeight    = errors.New("proof is for another height")
	ErrMismatch  = errors.New("proof does not match the header's app hash")
	ErrMalformed = errors.New("malformed proof")
)

// AppHash composes a block's app hash from its state root and event log root.
func AppHash(stateRoot, logRoot []byte) []byte {
	return merkle.HashFromByteSlices([][]byte{stateRoot, logRoot})
}

// EventLogRoot is the Merkle root of a block's events (canonical encodings,
// in order). An empty log has the root of an empty tree.
func EventLogRoot(events [][]byte) []byte {
	return merkle.HashFromByteSlices(events)
}

// VerifyEventLog checks that log is exactly block log.Height's worker event
// log (no event added, removed, altered or moved) against header, and
// returns the decoded events. header must be the light-client-verified
// header of the block after the one the caller asked about, obtained by the
// caller for that height (never derived from log): a log of any other block
// is refused. It never modifies log.
func VerifyEventLog(header *types.Header, log *chainpb.EventLog) ([]*chainpb.WorkerEvent, error) {
	if header == nil || log == nil {
		return nil, fmt.Errorf("%w: header and event log are both required", ErrMalformed)
	}
	if header.Height != log.Height+1 {
		return nil, fmt.Errorf("%w: the event log of block %d is committed in header %d, got header %d", ErrHeight, log.Height, log.Height+1, header.Height)
	}
	if len(log.StateRoot) != RootSize {
		return nil, fmt.Errorf("%w: state root is %d bytes, want %d", ErrMalformed, len(log.StateRoot), RootSize)
	}
	if got := AppHash(log.StateRoot, EventLogRoot(log.Events)); !bytes.Equal(got, header.AppHash) {
		return nil, fmt.Errorf("%w: event log of block %d (%d events) hashes to app hash %X, header %d has %X", ErrMismatch, log.Height, len(log.Events), got, header.Height, []byte(header.AppHash))
	}
	evs := make([]*chainpb.WorkerEvent, len(log.Events))
	for i, b := range log.Events {
		var ev chainpb.WorkerEvent
		if err := proto.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("%w: event %d of block %d: %v", ErrMalformed, i, log.Height, err)
		}
		// The chain stamps each event with its block and position; a
		// committed event that disagrees means this build misreads the log.
		if ev.Height != log.Height || ev.Index != uint32(i) {
			return nil, fmt.Errorf("%w: event %d of block %d claims to be event %d of block %d", ErrMalformed, i, log.Height, ev.Index, ev.Height)
		}
		if ev.Kind == nil {
			return nil, fmt.Errorf("%w: event %d of block %d has a kind this build does not know; upgrade", ErrMalformed, i, log.Height)
		}
		evs[i] = &ev
	}
	return evs, nil
}
