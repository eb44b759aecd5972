package chain

import "sync"

// sigCache remembers transactions whose signature this node has verified,
// by hash, so a transaction checked in CheckTx is not verified again when its
// block is executed. It only ever holds this node's own verification
// results, so it cannot make an invalid signature pass. Two generations
// bound its size without per-entry bookkeeping.
type sigCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[[32]byte]struct{}
}

func newSigCache(max int) *sigCache {
	return &sigCache{max: max, cur: make(map[[32]byte]struct{}), old: make(map[[32]byte]struct{})}
}

func (c *sigCache) has(h [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[h]; ok {
		return true
	}
	_, ok := c.old[h]
	return ok
}

func (c *sigCache) add(h [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.max/2 {
		c.old, c.cur = c.cur, make(map[[32]byte]struct{}, len(c.cur))
	}
	c.cur[h] = struct{}{}
}
