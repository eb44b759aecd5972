// Package store is the chain's state: a versioned Merkle tree (IAVL) on a
// durable embedded database, and the write caches modules run against.
package store

import "sort"

// Reader reads state. A nil value with a nil error means absent.
type Reader interface {
	Get(key []byte) ([]byte, error)
}

// KV is what a module's state transitions read and write. Values passed to
// Set must not be modified afterwards.
type KV interface {
	Reader
	Set(key, value []byte) error
	Delete(key []byte) error
}

// Cache buffers writes over a parent. Write applies them to the parent in key
// order (tree shape depends on insertion order, so order must not depend on
// map iteration); dropping the Cache discards them. It is not safe for
// concurrent use.
type Cache struct {
	parent Reader
	writes map[string][]byte // nil value: deleted
}

// NewCache returns an empty cache over parent.
func NewCache(parent Reader) *Cache {
	return &Cache{parent: parent, writes: make(map[string][]byte)}
}

func (c *Cache) Get(key []byte) ([]byte, error) {
	if v, ok := c.writes[string(key)]; ok {
		return v, nil
	}
	return c.parent.Get(key)
}

func (c *Cache) Set(key, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	c.writes[string(key)] = value
	return nil
}

func (c *Cache) Delete(key []byte) error {
	c.writes[string(key)] = nil
	return nil
}

// Write applies the buffered writes to dst in ascending key order (into
// another Cache, order is irrelevant and skipped). The cache keeps them, so
// it can still serve reads.
func (c *Cache) Write(dst KV) error {
	if d, ok := dst.(*Cache); ok {
		for k, v := range c.writes {
			d.writes[k] = v
		}
		return nil
	}
	keys := make([]string, 0, len(c.writes))
	for k := range c.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.writes[k]
		var err error
		if v == nil {
			err = dst.Delete([]byte(k))
		} else {
			err = dst.Set([]byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Reset discards the buffered writes.
func (c *Cache) Reset() { clear(c.writes) }
