// Package testutil holds helpers shared by tests.
package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreePorts returns a base port such that base..base+n-1 are free on
// 127.0.0.1 right now. Tests in different packages run in parallel, so the
// base is random; a collision after the check is possible but unlikely. The
// range stays below Linux's ephemeral ports (32768 and up), which outgoing
// connections take.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	for range 200 {
		base := 10000 + rand.IntN(32000-10000-n)
		ok := true
		var ls []net.Listener
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no block of %d free ports found", n)
	return 0
}
