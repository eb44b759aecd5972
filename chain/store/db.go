package store

import (
	"fmt"

	"github.com/cockroachdb/pebble"

	dbm "github.com/cometbft/cometbft-db"
	iavldb "github.com/cosmos/iavl/db"
)

// OpenDB opens (or creates) the node's durable embedded database: Pebble,
// the same engine CometBFT uses for its own stores. Pebble's own chatter
// (WAL replay notices) is silenced; errors still surface as errors.
func OpenDB(name, dir string) (dbm.DB, error) {
	opts := &pebble.Options{Logger: quietPebble{}}
	opts.EnsureDefaults()
	db, err := dbm.NewPebbleDBWithOpts(name, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open database %s in %s: %w (is another node using this home?)", name, dir, err)
	}
	return db, nil
}

// iavlAdapter lets IAVL use a cometbft-db database.
type iavlAdapter struct{ dbm.DB }

var _ iavldb.DB = iavlAdapter{}

func (a iavlAdapter) Iterator(start, end []byte) (iavldb.Iterator, error) {
	return a.DB.Iterator(start, end)
}

func (a iavlAdapter) ReverseIterator(start, end []byte) (iavldb.Iterator, error) {
	return a.DB.ReverseIterator(start, end)
}

func (a iavlAdapter) NewBatch() iavldb.Batch { return iavlBatch{a.DB.NewBatch()} }

func (a iavlAdapter) NewBatchWithSize(int) iavldb.Batch { return a.NewBatch() }

// iavlBatch reports no size: IAVL reads sizes only to flush a version in
// parts, which newIAVL turns off.
type iavlBatch struct{ dbm.Batch }

func (iavlBatch) GetByteSize() (int, error) { return 0, nil }

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
