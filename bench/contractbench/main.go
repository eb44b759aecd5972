// Command contractbench measures confidential contracts on one in-process
// devnet with its workers: (a) token transfers committed through consensus
// and executed by the token's miner per second, against plain PHA transfers
// through the same path in the same run; (b) queries per second and their
// latency against the miner through the full confidential path, idle and
// while the miner syncs and executes a stream of commands, against the same
// query as a plain call in the VM. It prints each figure with its baseline
// and their ratio.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/phala-go/phala/bench"
)

func main() {
	var c bench.ContractConfig
	flag.IntVar(&c.Transfers, "transfers", 2000, "transfers per run (token and PHA alike)")
	flag.IntVar(&c.Senders, "senders", 8, "funded dev accounts signing the transfers")
	flag.IntVar(&c.Feeders, "feeders", 4, "goroutines submitting transactions (BroadcastTxSync)")
	flag.IntVar(&c.Rounds, "rounds", 3, "rounds of (PHA, token) runs; the median ratio is reported")
	flag.DurationVar(&c.BlockTime, "block-time", 200*time.Millisecond, "the devnet's block time")
	flag.IntVar(&c.BasePort, "base-port", 41000, "the devnet's first port")
	flag.IntVar(&c.QueryWorkers, "query-workers", 4, "goroutines querying concurrently")
	flag.DurationVar(&c.QueryDuration, "query-duration", 10*time.Second, "length of the idle and of the loaded query measurement")
	flag.Float64Var(&c.LoadRate, "load-rate", 100, "token transfers per second streamed during the loaded query measurement")
	flag.IntVar(&c.Calls, "calls", 200, "sequential calls per step of the query cost breakdown")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the last round's token run (submission to execution) here")
	flag.StringVar(&c.Dir, "dir", "", "directory for the devnet (default: a temporary directory, removed after)")
	flag.Parse()
	c.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	start := time.Now()
	rep, err := bench.RunContracts(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "contractbench:", err)
		os.Exit(1)
	}
	c.Log("done in %s", time.Since(start).Round(time.Second))
	w := bufio.NewWriter(os.Stdout)
	bench.WriteContractReport(w, c, rep, runtime.GOMAXPROCS(0))
	w.Flush()
}
