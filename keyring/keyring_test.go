package keyring

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyringAddGetList(t *testing.T) {
	kr, err := Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kr.Add("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Add("alice"); err == nil {
		t.Fatal("replaced an existing key")
	}
	got, err := kr.Get("alice")
	if err != nil || got.Address != a.Address || !bytes.Equal(got.PrivateKey(), a.PrivateKey()) {
		t.Fatalf("get: %v", err)
	}
	kr.Add("bob")
	keys, err := kr.List()
	if err != nil || len(keys) != 2 || keys[0].Name != "alice" || keys[1].Name != "bob" {
		t.Fatalf("list: %v %v", keys, err)
	}
	st, _ := os.Stat(filepath.Join(kr.Dir(), "alice.json"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	for _, bad := range []string{"", "../x", "a b", "-x"} {
		if _, err := kr.Add(bad); err == nil {
			t.Errorf("accepted key name %q", bad)
		}
	}
	if _, err := kr.Get("carol"); err == nil {
		t.Fatal("found a missing key")
	}
}
