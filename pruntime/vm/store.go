package vm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
)

// Store is a contract's state: a key-value store the VM owns on the host
// side (never in wasm memory), so that it can be committed to a state root,
// checkpointed and recovered. Implementations need not be safe for
// concurrent use; the VM uses a Store from one goroutine at a time.
type Store interface {
	// Get returns the value of key and whether it exists.
	Get(key []byte) ([]byte, bool)
	// Set stores value under key; Delete removes key.
	Set(key, value []byte)
	Delete(key []byte)
	// Root commits to every key and value: equal contents, equal roots.
	Root() [32]byte
}

// MemStore is an in-memory Store. Its root is SHA-256 over the pairs in key
// order, each length-prefixed: the same contents give the same root on every
// worker, whatever the order of writes.
type MemStore struct {
	m map[string][]byte
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

func (s *MemStore) Get(key []byte) ([]byte, bool) {
	v, ok := s.m[string(key)]
	return v, ok
}

func (s *MemStore) Set(key, value []byte) { s.m[string(key)] = bytes.Clone(value) }
func (s *MemStore) Delete(key []byte)     { delete(s.m, string(key)) }

// NewMemStoreFrom returns a store holding pairs (a sealed store's
// contents). The map is adopted, not copied.
func NewMemStoreFrom(pairs map[string][]byte) *MemStore {
	if pairs == nil {
		pairs = map[string][]byte{}
	}
	return &MemStore{m: pairs}
}

// Pairs returns the contents, to seal them: a new map sharing the values,
// which the store never changes in place (nor may callers).
func (s *MemStore) Pairs() map[string][]byte { return maps.Clone(s.m) }

// Clone returns a copy for a read-only snapshot, sharing values as Pairs.
func (s *MemStore) Clone() *MemStore { return &MemStore{m: maps.Clone(s.m)} }

// Len is the number of keys.
func (s *MemStore) Len() int { return len(s.m) }

func (s *MemStore) Root() [32]byte {
	h := sha256.New()
	h.Write([]byte("phala/contract-state/v1\x00"))
	var n [binary.MaxVarintLen64]byte
	for _, k := range slices.Sorted(maps.Keys(s.m)) {
		v := s.m[k]
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write([]byte(k))
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// overlay buffers one call's writes over a Store, to apply them only if the
// call succeeds.
type overlay struct {
	base   Store
	writes map[string][]byte // nil value: deleted
	order  []string          // first-write order, for a deterministic apply
}

func newOverlay(base Store) *overlay { return &overlay{base: base, writes: map[string][]byte{}} }

func (o *overlay) Get(key []byte) ([]byte, bool) {
	if v, ok := o.writes[string(key)]; ok {
		return v, v != nil
	}
	return o.base.Get(key)
}

func (o *overlay) put(key string, v []byte) {
	if _, ok := o.writes[key]; !ok {
		o.order = append(o.order, key)
	}
	o.writes[key] = v
}

func (o *overlay) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	o.put(string(key), bytes.Clone(value))
}

func (o *overlay) Delete(key []byte) { o.put(string(key), nil) }

// commit applies the buffered writes to the base store.
func (o *overlay) commit() {
	for _, k := range o.order {
		if v := o.writes[k]; v == nil {
			o.base.Delete([]byte(k))
		} else {
			o.base.Set([]byte(k), v)
		}
	}
}
