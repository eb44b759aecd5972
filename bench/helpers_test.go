package bench

import (
	"slices"
	"testing"
)

func TestParseCounts(t *testing.T) {
	got, err := ParseCounts("3, 10,30")
	if err != nil || !slices.Equal(got, []int{3, 10, 30}) {
		t.Fatalf("ParseCounts(\"3, 10,30\") = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "3,-1", "3,,4", "ten"} {
		if got, err := ParseCounts(bad); err == nil {
			t.Errorf("ParseCounts(%q) = %v, want an error", bad, got)
		}
	}
}
