package contracts

import (
	"bytes"
	"encoding/binary"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
)

// A checkpoint arrives in chunks, each a worker message of one miner; the
// chunks of one miner's checkpoint in progress are kept apart from the
// stored checkpoint until the last one arrives.
func pendingKey(id, miner []byte) []byte {
	return append(append(append([]byte("contracts/ckptp/"), id...), '/'), miner...)
}

func pendingChunkKey(id, miner []byte, i uint32) []byte {
	return binary.BigEndian.AppendUint32(append(pendingKey(id, miner), '/'), i)
}

var discCountKey = []byte("contracts/disc/n")

func discKey(n uint64) []byte { return binary.BigEndian.AppendUint64([]byte("contracts/disc/r/"), n) }

func getPending(r store.Reader, id, miner []byte) (*chainpb.Checkpoint, error) {
	b, err := r.Get(pendingKey(id, miner))
	if err != nil || b == nil {
		return nil, err
	}
	var p chainpb.Checkpoint
	return &p, proto.Unmarshal(b, &p)
}

// dropPending deletes a miner's checkpoint in progress, if any.
func dropPending(kv store.KV, id, miner []byte) error {
	p, err := getPending(kv, id, miner)
	if err != nil || p == nil {
		return err
	}
	for i := range p.Received {
		if err := kv.Delete(pendingChunkKey(id, miner, i)); err != nil {
			return err
		}
	}
	return kv.Delete(pendingKey(id, miner))
}

func setProto(kv store.KV, key []byte, m proto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return kv.Set(key, b)
}

// checkChunk checks a checkpoint chunk's fields against the instance.
func checkChunk(c *chainpb.Contract, cp *chainpb.ContractCheckpoint, height int64) string {
	switch {
	case cp.Chunks == 0 || cp.Chunks > inbox.MaxChunks || cp.Index >= cp.Chunks:
		return "checkpoint chunk index or count out of range"
	case len(cp.Data) == 0 || len(cp.Data) > inbox.ChunkBytes:
		return "checkpoint chunk is empty or over the chunk size"
	case cp.Size < 28 || cp.Size > uint64(cp.Chunks)*inbox.ChunkBytes || cp.Size <= uint64(cp.Chunks-1)*inbox.ChunkBytes:
		return "checkpoint size does not fit its chunk count"
	case len(cp.StateRoot) != 32:
		return "checkpoint state root is not 32 bytes"
	case cp.Height < c.DeployedHeight || cp.Height >= height:
		return "checkpoint height is not a past block of the instance"
	case cp.Inputs > c.Inputs || cp.Inputs == 0:
		return "checkpoint covers inputs the chain has not ordered"
	}
	return ""
}

// HandleCheckpoint takes a chunk of a miner's encrypted state checkpoint.
// Once a checkpoint's last chunk arrives it is compared with the stored
// one: a newer one replaces it (and the inbox inputs it covers are
// dropped), one for the same height with the same state root is
// acknowledged, one with another root is recorded as a discrepancy
// against its miner, an older one is ignored. Chunks from a worker that is
// not a miner of the instance are ignored (note says why).
//
// A checkpoint whose first chunk carries a ContractRekey is a contract key
// rotation (see rekey.go): sealed under the new key, it takes effect with
// the key when its last chunk arrives, or not at all. A first chunk
// refused for its key leaves the miner's checkpoint in progress as it was.
func HandleCheckpoint(kv store.KV, log *mq.Log, worker []byte, cp *chainpb.ContractCheckpoint) (note string, err error) {
	c, err := Get(kv, cp.Contract)
	if errors.Is(err, ErrUnknownContract) {
		return "checkpoint of an unknown contract", nil
	} else if err != nil {
		return "", err
	}
	if !inbox.IsMiner(c.Miners, worker) {
		return "checkpoint from a worker that is not a miner of the contract", nil
	}
	if n := checkChunk(c, cp, log.Height()); n != "" {
		return n, nil
	}
	if c.Checkpoint != nil && cp.Height < c.Checkpoint.Height {
		return "checkpoint older than the stored one", dropPending(kv, c.Id, worker)
	}
	p, err := getPending(kv, c.Id, worker)
	if err != nil {
		return "", err
	}
	if cp.Index == 0 {
		p = &chainpb.Checkpoint{Height: cp.Height, Inputs: cp.Inputs, StateRoot: cp.StateRoot, Chunks: cp.Chunks, Size: cp.Size, Miner: worker,
			KeyEpoch: cp.KeyEpoch, Rekey: cp.Rekey}
		if n := checkEpoch(c, p); n != "" {
			return n, nil
		}
		if err := dropPending(kv, c.Id, worker); err != nil {
			return "", err
		}
	} else if p == nil || p.Height != cp.Height || p.Inputs != cp.Inputs || !bytes.Equal(p.StateRoot, cp.StateRoot) ||
		p.Chunks != cp.Chunks || p.Size != cp.Size || p.Received != cp.Index || p.KeyEpoch != cp.KeyEpoch || cp.Rekey != nil {
		return "checkpoint chunk out of order or of another checkpoint", nil
	}
	if err := kv.Set(pendingChunkKey(c.Id, worker, cp.Index), cp.Data); err != nil {
		return "", err
	}
	p.Received++
	if p.Received < p.Chunks {
		return "", setProto(kv, pendingKey(c.Id, worker), p)
	}
	return complete(kv, log, c, p)
}

// checkEpoch checks the key checkpoint p is sealed under: the contract's
// current one, or for a key rotation the next (checkRekey). It runs on
// the first chunk and again on the last: the key may have changed, or a
// rotation ended, meanwhile.
func checkEpoch(c *chainpb.Contract, p *chainpb.Checkpoint) string {
	if p.Rekey != nil {
		return checkRekey(c, p)
	}
	if p.KeyEpoch != c.KeyEpoch {
		return "checkpoint not sealed under the contract's current key"
	}
	return ""
}

// complete handles a miner's checkpoint whose chunks have all arrived.
func complete(kv store.KV, log *mq.Log, c *chainpb.Contract, p *chainpb.Checkpoint) (note string, err error) {
	id, worker := c.Id, p.Miner
	chunks := make([][]byte, p.Chunks)
	var size uint64
	for i := range p.Chunks {
		b, err := kv.Get(pendingChunkKey(id, worker, i))
		if err != nil {
			return "", err
		}
		chunks[i] = b
		size += uint64(len(b))
	}
	if err := dropPending(kv, id, worker); err != nil {
		return "", err
	}
	if size != p.Size {
		return "checkpoint chunks do not add up to its size", nil
	}
	if n := checkEpoch(c, p); n != "" {
		return n, nil
	}
	st := c.Checkpoint
	rekey := p.Rekey
	p.Rekey = nil
	switch {
	case rekey != nil && st != nil && p.Height == st.Height && !bytes.Equal(p.StateRoot, st.StateRoot):
		return recordDiscrepancy(kv, log, c, p)
	case rekey != nil:
		// Stored below in place of the one under the old key, even at the
		// same height.
	case st != nil && p.Height == st.Height && bytes.Equal(p.StateRoot, st.StateRoot) && p.Inputs == st.Inputs:
		if !bytes.Equal(st.Miner, worker) && !inbox.IsMiner(st.Acks, worker) {
			st.Acks = append(st.Acks, worker)
			return "", put(kv, c)
		}
		return "duplicate checkpoint", nil
	case st != nil && p.Height == st.Height:
		return recordDiscrepancy(kv, log, c, p)
	case st != nil && p.Inputs < st.Inputs:
		return "checkpoint covers fewer inputs than the stored, older one", nil
	}
	// Newer: store it and drop the inputs it covers.
	for i, b := range chunks {
		if err := kv.Set(inbox.ChunkKey(id, uint32(i)), b); err != nil {
			return "", err
		}
	}
	if st != nil {
		for i := p.Chunks; i < st.Chunks; i++ {
			if err := kv.Delete(inbox.ChunkKey(id, i)); err != nil {
				return "", err
			}
		}
	}
	for n := c.InboxStart; n < p.Inputs; n++ {
		if err := kv.Delete(inbox.InputKey(id, n)); err != nil {
			return "", err
		}
	}
	c.InboxStart = max(c.InboxStart, p.Inputs)
	p.Received, p.StoredHeight = 0, log.Height()
	c.Checkpoint = p
	if rekey != nil {
		return "", rekeyed(kv, log, c, rekey)
	}
	return "", put(kv, c)
}

// discSeenKey marks that a miner's discrepancy at a height is recorded:
// one record per (instance, height, miner), however often it resends.
func discSeenKey(id []byte, height int64, miner []byte) []byte {
	return append(binary.BigEndian.AppendUint64(append(append([]byte("contracts/disc/s/"), id...), '/'), uint64(height)), miner...)
}

func recordDiscrepancy(kv store.KV, log *mq.Log, c *chainpb.Contract, p *chainpb.Checkpoint) (string, error) {
	seen := discSeenKey(c.Id, p.Height, p.Miner)
	if b, err := kv.Get(seen); err != nil {
		return "", err
	} else if b != nil {
		return "checkpoint differs from the stored one again; its discrepancy is already recorded", nil
	}
	if err := kv.Set(seen, []byte{1}); err != nil {
		return "", err
	}
	n, err := counter(kv, discCountKey)
	if err != nil {
		return "", err
	}
	d := &chainpb.Discrepancy{Contract: c.Id, Height: p.Height, Miner: p.Miner, StateRoot: p.StateRoot,
		StoredRoot: c.Checkpoint.StateRoot, StoredBy: c.Checkpoint.Miner, RecordedHeight: log.Height(),
		Inputs: p.Inputs, StoredInputs: c.Checkpoint.Inputs}
	if err := setProto(kv, discKey(n), d); err != nil {
		return "", err
	}
	if err := store.SetUint64(kv, discCountKey, n+1); err != nil {
		return "", err
	}
	c.Discrepancies++
	if err := put(kv, c); err != nil {
		return "", err
	}
	return "checkpoint state root or input count differs from the stored one for the same height: discrepancy recorded against its miner", nil
}

func counter(r store.Reader, key []byte) (uint64, error) {
	return store.Uint64(r, key, "the discrepancy counter")
}

// Discrepancies lists the newest discrepancy records (at most
// MaxDiscrepancies), oldest first.
func Discrepancies(r store.Reader) ([]*chainpb.Discrepancy, error) {
	n, err := counter(r, discCountKey)
	if err != nil {
		return nil, err
	}
	var out []*chainpb.Discrepancy
	for i := n - min(n, MaxDiscrepancies); i < n; i++ {
		b, err := r.Get(discKey(i))
		if err != nil {
			return nil, err
		}
		var d chainpb.Discrepancy
		if err := proto.Unmarshal(b, &d); err != nil {
			return nil, err
		}
		out = append(out, &d)
	}
	return out, nil
}
