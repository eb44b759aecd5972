// Command recoverybench measures how long a confidential contract takes to
// move to another miner: for a token with a short and a long history
// (default 1,000 and 100,000 commands), each on its own in-process devnet,
// the same number of commands after the last stored checkpoint, then a
// reassignment from miner1 to miner2; the recovery time is from the
// reassignment's commit to the first query miner2 answers with the
// expected balance. It prints both times and their ratio (the goal is at
// most 1.5), and the size on chain of the long history's checkpoint (a
// token with 10,000 holders).
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
	var c bench.RecoveryConfig
	histories := flag.String("history", "1000,100000", "history lengths in commands, comma-separated; one devnet each, the ratio is the last over the first")
	flag.IntVar(&c.Distance, "distance", 200, "commands between the last stored checkpoint and the reassignment")
	flag.IntVar(&c.Holders, "holders", 10000, "generated holder addresses the history's transfers cycle through")
	interval := flag.Uint64("interval", 20, "the contracts' checkpoint interval (blocks)")
	flag.IntVar(&c.Rounds, "rounds", 3, "reassignments per devnet (miner1 to miner2, back, ...), each after the previous one's commands are checkpointed; the median is reported")
	flag.IntVar(&c.Senders, "senders", 8, "funded dev accounts signing the commands")
	flag.IntVar(&c.Feeders, "feeders", 4, "goroutines submitting transactions (BroadcastTxSync)")
	flag.DurationVar(&c.QueryEvery, "query-every", 20*time.Millisecond, "pause between the queries to the new miner")
	flag.DurationVar(&c.BlockTime, "block-time", 150*time.Millisecond, "the devnets' block time")
	flag.IntVar(&c.BasePort, "base-port", 27100, "the first devnet's first port (each next one 50 higher)")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write CPU profiles of each devnet's last round (reassignment commit to answer) to FILE-HISTORY.pprof")
	flag.StringVar(&c.Dir, "dir", "", "directory for the devnets (default: a temporary directory, removed after)")
	flag.Parse()
	c.Interval = *interval
	var err error
	if c.Histories, err = bench.ParseCounts(*histories); err != nil {
		fmt.Fprintln(os.Stderr, "recoverybench: -history:", err)
		os.Exit(2)
	}
	c.Log = bench.StderrLog
	start := time.Now()
	rep, err := bench.RunRecovery(context.Background(), c)
	c.Log("done in %s", time.Since(start).Round(time.Second))
	w := bufio.NewWriter(os.Stdout)
	bench.WriteRecoveryReport(w, c, rep, runtime.GOMAXPROCS(0))
	w.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, "recoverybench:", err)
		os.Exit(1)
	}
}
