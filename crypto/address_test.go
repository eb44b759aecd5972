package crypto

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
)

func TestAddressRoundTrip(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	a := AddressFromPubKey(pub)
	s := a.String()
	if !strings.HasPrefix(s, "phala1") {
		t.Fatalf("address %s", s)
	}
	b, err := ParseAddress(s)
	if err != nil || b != a {
		t.Fatalf("parse %s: %v", s, err)
	}
	j, _ := json.Marshal(a)
	var c Address
	if err := json.Unmarshal(j, &c); err != nil || c != a {
		t.Fatalf("json: %s %v", j, err)
	}
	if ModuleAddress("x") == ModuleAddress("y") {
		t.Fatal("module addresses collide")
	}
}

func TestParseAddressRefuses(t *testing.T) {
	good := ModuleAddress("x").String()
	for _, bad := range []string{
		"", "phala1", good[:len(good)-1] + "q", // checksum
		"cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu", // wrong prefix
		strings.ToUpper(good[:10]) + good[10:],          // mixed case
	} {
		if _, err := ParseAddress(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
