package store

import (
	"bytes"
	"fmt"
	"testing"

	ics23 "github.com/cosmos/ics23/go"
)

func openTree(t *testing.T, dir string, version int64) *Tree {
	t.Helper()
	db, err := OpenDB("state", dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := OpenTree(db, version, TreeConfig{})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); db.Close() })
	return tr
}

// A crash after the tree saved a version but before the app recorded it
// leaves the tree ahead; reopening at the recorded version rolls it back.
func TestOpenTreeRollsBackUnrecordedVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDB("state", dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := OpenTree(db, 0, TreeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]byte
	for v := 1; v <= 3; v++ {
		tr.Set([]byte("k"), []byte(fmt.Sprint(v)))
		h, _, err := tr.SaveVersion()
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	tr.Close()
	db.Close()

	tr2 := openTree(t, dir, 2)
	if tr2.Version() != 2 || !bytes.Equal(tr2.WorkingHash(), hashes[1]) {
		t.Fatalf("reopened at version %d", tr2.Version())
	}
	if v, _ := tr2.Get([]byte("k")); string(v) != "2" {
		t.Fatalf("k = %q after rollback, want 2", v)
	}
}

// A crash in the first Commit leaves version 1 unrecorded: reopening at 0
// yields an empty tree whose next version is 1 again.
func TestOpenTreeRollsBackToEmpty(t *testing.T) {
	dir := t.TempDir()
	db, _ := OpenDB("state", dir)
	tr, _ := OpenTree(db, 0, TreeConfig{})
	tr.Set([]byte("k"), []byte("v"))
	if _, v, err := tr.SaveVersion(); err != nil || v != 1 {
		t.Fatal(v, err)
	}
	tr.Close()
	db.Close()

	tr2 := openTree(t, dir, 0)
	if tr2.Version() != 0 {
		t.Fatalf("version %d after rollback to empty", tr2.Version())
	}
	if v, _ := tr2.Get([]byte("k")); v != nil {
		t.Fatalf("k = %q in an empty tree", v)
	}
	tr2.Set([]byte("k"), []byte("w"))
	if _, v, err := tr2.SaveVersion(); err != nil || v != 1 {
		t.Fatalf("next save: version %d, %v", v, err)
	}
}

func TestOpenTreeRefusesTooLittleRetention(t *testing.T) {
	db, _ := OpenDB("state", t.TempDir())
	defer db.Close()
	if _, err := OpenTree(db, 0, TreeConfig{KeepVersions: 1}); err == nil {
		t.Fatal("accepted keep_versions 1")
	}
}

func TestOpenTreeRefusesMissingVersions(t *testing.T) {
	dir := t.TempDir()
	db, _ := OpenDB("state", dir)
	defer db.Close()
	if _, err := OpenTree(db, 5, TreeConfig{}); err == nil {
		t.Fatal("opened an empty tree as version 5")
	}
}

// Writes through a Cache reach the tree in key order, so the root does not
// depend on the order a block made them in.
func TestCacheWriteOrderIsDeterministic(t *testing.T) {
	roots := map[string]bool{}
	for _, order := range [][]string{{"a", "b", "c", "d"}, {"d", "c", "b", "a"}, {"b", "d", "a", "c"}} {
		tr := openTree(t, t.TempDir(), 0)
		c := NewCache(tr)
		for _, k := range order {
			c.Set([]byte(k), []byte("v"+k))
		}
		c.Delete([]byte("c"))
		if err := c.Write(tr); err != nil {
			t.Fatal(err)
		}
		roots[fmt.Sprintf("%X", tr.WorkingHash())] = true
	}
	if len(roots) != 1 {
		t.Fatalf("%d different roots", len(roots))
	}
}

func TestCacheReadsThroughAndDiscards(t *testing.T) {
	tr := openTree(t, t.TempDir(), 0)
	tr.Set([]byte("x"), []byte("1"))
	c := NewCache(tr)
	if v, _ := c.Get([]byte("x")); string(v) != "1" {
		t.Fatalf("read-through got %q", v)
	}
	c.Set([]byte("x"), []byte("2"))
	c.Delete([]byte("y"))
	if v, _ := c.Get([]byte("x")); string(v) != "2" {
		t.Fatalf("cached read got %q", v)
	}
	c.Reset()
	if v, _ := tr.Get([]byte("x")); string(v) != "1" {
		t.Fatalf("a discarded cache changed the tree: %q", v)
	}
}

func TestSnapshotProves(t *testing.T) {
	tr := openTree(t, t.TempDir(), 0)
	tr.Set([]byte("k1"), []byte("v1"))
	tr.Set([]byte("k3"), []byte("v3"))
	root, v, err := tr.SaveVersion()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := tr.Snapshot(v)
	if err != nil {
		t.Fatal(err)
	}
	val, p, err := snap.Prove([]byte("k1"))
	if err != nil || string(val) != "v1" || !ics23.VerifyMembership(ics23.IavlSpec, root, p, []byte("k1"), val) {
		t.Fatalf("membership: %q %v", val, err)
	}
	val, p, err = snap.Prove([]byte("k2"))
	if err != nil || val != nil || !ics23.VerifyNonMembership(ics23.IavlSpec, root, p, []byte("k2")) {
		t.Fatalf("non-membership: %q %v", val, err)
	}
	if _, err := tr.Snapshot(v + 1); err == nil {
		t.Fatal("snapshot of a future version")
	}
}
