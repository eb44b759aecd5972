package chain

import (
	"sync"

	"github.com/phala-go/phala/chain/auth"
)

// txCache remembers transactions this node decoded and verified in CheckTx,
// by hash, so executing their block neither decodes nor verifies them again.
// It only ever holds this node's own results for exact bytes, so it cannot
// make an invalid transaction pass. Entries are valid for the parameters
// they were checked under; the cache is cleared when those change. Two
// generations bound its size without per-entry bookkeeping.
type txCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[[32]byte]*auth.Tx
}

func newTxCache(max int) *txCache {
	return &txCache{max: max, cur: make(map[[32]byte]*auth.Tx), old: make(map[[32]byte]*auth.Tx)}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.max/2 {
		c.old, c.cur = c.cur, make(map[[32]byte]*auth.Tx, len(c.cur))
	}
	c.cur[tx.Hash] = tx
}

func (c *txCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.cur)
	clear(c.old)
}
