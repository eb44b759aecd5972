package chain

import (
	"sync"

	"github.com/phala-go/phala/chain/auth"
)

// txCache remembers transactions this node admitted in CheckTx or accepted
// in a proposal, decoded and verified, by hash, so executing their block
// neither decodes nor verifies them again. It only holds this node's own
// verdicts on exact bytes, so it cannot make an invalid transaction pass;
// entries are valid for the parameters they were checked under, and the
// cache is cleared when those change. Only admitted transactions enter, so
// filling it costs fees or a validator's proposal. Two generations bound it
// by count and bytes without per-entry bookkeeping.
type txCache struct {
	mu                 sync.Mutex
	maxCount, maxBytes int
	curBytes           int
	cur, old           map[[32]byte]*auth.Tx
}

func newTxCache(maxCount, maxBytes int) *txCache {
	return &txCache{maxCount: maxCount, maxBytes: maxBytes, cur: make(map[[32]byte]*auth.Tx), old: make(map[[32]byte]*auth.Tx)}
}

func (c *txCache) get(h [32]byte) *auth.Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx, ok := c.cur[h]; ok {
		return tx
	}
	return c.old[h]
}

func (c *txCache) add(tx *auth.Tx) {
	size := len(tx.BodyBytes) + 256
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.maxCount/2 || c.curBytes+size > c.maxBytes/2 {
		c.old, c.cur, c.curBytes = c.cur, make(map[[32]byte]*auth.Tx, len(c.cur)), 0
	}
	c.cur[tx.Hash] = tx
	c.curBytes += size
}

func (c *txCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.cur)
	clear(c.old)
	c.curBytes = 0
}
