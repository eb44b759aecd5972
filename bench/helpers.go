package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	rpcclient "github.com/cometbft/cometbft/rpc/client"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/client"
)

// ParseCounts reads a comma-separated list of positive numbers: the
// devnets of a benchmark (rotationbench's -gatekeepers, recoverybench's
// -history).
func ParseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// StderrLog is a config's Log for a benchmark command: each line on
// stderr after the time of day.
func StderrLog(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// queryAt reads the value of query path (with data) as of block height
// into m.
func queryAt(ctx context.Context, cl *client.Client, path string, data []byte, height int64, m proto.Message) error {
	res, err := cl.RPC().ABCIQueryWithOptions(ctx, path, data, rpcclient.ABCIQueryOptions{Height: height})
	if err != nil {
		return err
	}
	if r := res.Response; r.Code != 0 {
		return fmt.Errorf("query %s at block %d: %s", path, height, r.Log)
	}
	return proto.Unmarshal(res.Response.Value, m)
}

// ms rounds d to milliseconds; "-" for a negative d (not seen).
func ms(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// loadAverage is /proc/loadavg's first three fields ("" where there is
// none): other work on the machine shows in the timings.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
