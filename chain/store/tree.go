package store

import (
	"errors"
	"fmt"
	"math"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/cosmos/iavl"
	ics23 "github.com/cosmos/ics23/go"
)

// TreeConfig tunes the Merkle tree. The zero value is usable.
type TreeConfig struct {
	// CacheSize is the number of tree nodes kept in memory. Default 200,000.
	CacheSize int
	// KeepVersions is how many recent versions stay queryable (and provable);
	// older ones are pruned. 0 means keep every version.
	KeepVersions int64
}

func (c TreeConfig) withDefaults() TreeConfig {
	if c.CacheSize == 0 {
		c.CacheSize = 200_000
	}
	return c
}

// Tree is the chain's versioned Merkle state. Version h holds the state after
// block h. Only the consensus goroutine calls Get, Set, Delete, WorkingHash
// and SaveVersion. Snapshots may be read concurrently with Get, but not with
// Set, Delete, WorkingHash or SaveVersion: IAVL detaches children from saved
// nodes it copies, and snapshots share those nodes. The caller excludes
// readers during those calls (see chain.App).
type Tree struct {
	cfg  TreeConfig
	tree *iavl.MutableTree
}

// ErrVersionUnavailable is returned for a height that is pruned or not yet
// committed.
var ErrVersionUnavailable = errors.New("state version unavailable")

// newIAVL opens the IAVL tree in db. A version is written in one batch
// (no flush threshold): IAVL writes its fast index before the tree nodes, so
// a version flushed in parts could leave a damaged index behind a crash.
func newIAVL(db dbm.DB, cfg TreeConfig) *iavl.MutableTree {
	return iavl.NewMutableTree(iavlAdapter{db}, cfg.CacheSize, false, iavl.NewNopLogger(), iavl.FlushThresholdOption(math.MaxInt32))
}

// OpenTree loads the tree stored in db at exactly version (0: empty tree),
// discarding any later version a crash left behind.
func OpenTree(db dbm.DB, version int64, cfg TreeConfig) (*Tree, error) {
	cfg = cfg.withDefaults()
	if cfg.KeepVersions != 0 && cfg.KeepVersions < MinKeepVersions {
		return nil, fmt.Errorf("keep_versions is %d; use 0 (keep all) or at least %d", cfg.KeepVersions, MinKeepVersions)
	}
	t := newIAVL(db, cfg)
	latest, err := t.Load()
	if err != nil {
		return nil, fmt.Errorf("load state tree: %w", err)
	}
	switch {
	case latest == version:
	case version == 0:
		// Block 1 was saved but not recorded. IAVL cannot roll back to an
		// empty tree, so start it afresh; InitChain and block 1 run again.
		if err := wipe(db); err != nil {
			return nil, fmt.Errorf("discard unrecorded state version %d: %w", latest, err)
		}
		t = newIAVL(db, cfg)
		if _, err := t.Load(); err != nil {
			return nil, fmt.Errorf("load state tree: %w", err)
		}
	case latest > version:
		// The tree was saved but the block's metadata was not: roll the tree
		// back so CometBFT replays that block.
		if err := t.LoadVersionForOverwriting(version); err != nil {
			return nil, fmt.Errorf("roll state tree back from %d to %d: %w", latest, version, err)
		}
	default:
		return nil, fmt.Errorf("state tree is at version %d but the app metadata says %d: the data directory is damaged; restore it or resync the node", latest, version)
	}
	return &Tree{cfg: cfg, tree: t}, nil
}

// MinKeepVersions is the least retention that still lets a node roll back
// the version a crash in Commit left unrecorded.
const MinKeepVersions = 2

// wipe deletes every key of db.
func wipe(db dbm.DB) error {
	it, err := db.Iterator(nil, nil)
	if err != nil {
		return err
	}
	var keys [][]byte
	for ; it.Valid(); it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return b.WriteSync()
}

// Get reads the working (uncommitted) state.
func (t *Tree) Get(key []byte) ([]byte, error) { return t.tree.Get(key) }

// Set writes to the working state.
func (t *Tree) Set(key, value []byte) error {
	_, err := t.tree.Set(key, value)
	return err
}

// Delete removes key from the working state.
func (t *Tree) Delete(key []byte) error {
	_, _, err := t.tree.Remove(key)
	return err
}

// Version is the last saved version.
func (t *Tree) Version() int64 { return t.tree.Version() }

// WorkingHash is the root hash the working state will have once saved.
func (t *Tree) WorkingHash() []byte { return t.tree.WorkingHash() }

// SaveVersion commits the working state as the next version and prunes
// versions that fall out of the retention window.
func (t *Tree) SaveVersion() (hash []byte, version int64, err error) {
	hash, version, err = t.tree.SaveVersion()
	if err != nil {
		return nil, 0, fmt.Errorf("save state version: %w", err)
	}
	if keep := t.cfg.KeepVersions; keep > 0 && version > keep && version%100 == 0 {
		if err := t.tree.DeleteVersionsTo(version - keep); err != nil {
			return nil, 0, fmt.Errorf("prune state versions up to %d: %w", version-keep, err)
		}
	}
	return hash, version, nil
}

// Snapshot returns a read-only view of a saved version.
func (t *Tree) Snapshot(version int64) (*Snapshot, error) {
	if version == 0 || !t.tree.VersionExists(version) {
		return nil, fmt.Errorf("%w: %d (latest is %d)", ErrVersionUnavailable, version, t.tree.Version())
	}
	it, err := t.tree.GetImmutable(version)
	if err != nil {
		return nil, fmt.Errorf("open state version %d: %w", version, err)
	}
	return &Snapshot{it: it}, nil
}

// Close releases the tree's resources; the database stays open.
func (t *Tree) Close() error { return t.tree.Close() }

// Snapshot is one saved version of the state.
type Snapshot struct{ it *iavl.ImmutableTree }

// Get reads key at this version.
func (s *Snapshot) Get(key []byte) ([]byte, error) { return s.it.Get(key) }

// Hash is the snapshot's root hash.
func (s *Snapshot) Hash() []byte { return s.it.Hash() }

// Prove returns key's value (nil if absent) and an ICS-23 proof of membership
// or of absence against Hash.
func (s *Snapshot) Prove(key []byte) ([]byte, *ics23.CommitmentProof, error) {
	v, err := s.it.Get(key)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.it.GetProof(key)
	if err != nil {
		return nil, nil, fmt.Errorf("prove key %x at version %d: %w", key, s.it.Version(), err)
	}
	return v, p, nil
}

// Iterate calls fn for every key and value of this version in key order,
// until fn returns false.
func (s *Snapshot) Iterate(fn func(key, value []byte) bool) error {
	_, err := s.it.Iterate(func(k, v []byte) bool { return !fn(k, v) })
	return err
}
