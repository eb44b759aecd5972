package chain

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/phala-go/phala/chain/errs"
)

// Every rejection code the chain can return is documented for users.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	all := errs.All()
	if len(all) < 20 {
		t.Fatalf("only %d errors registered", len(all))
	}
	for _, e := range all {
		row := fmt.Sprintf("| %s | %d | %s |", e.Codespace, e.Code, e.Desc)
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/errors.md lacks the row %q", row)
		}
	}
}
