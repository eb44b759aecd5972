// Command chainbench measures committed transfers per second through
// consensus against CometBFT's kvstore example app, in the same process and
// configuration, and prints both and their ratio.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/phala-go/phala/bench"
)

func main() {
	var c bench.Config
	flag.IntVar(&c.Txs, "txs", 200_000, "transactions each chain must commit")
	flag.IntVar(&c.Senders, "senders", 64, "funded accounts signing Phala transfers")
	flag.DurationVar(&c.BlockTime, "block-time", 100*time.Millisecond, "CometBFT timeout_commit for both chains")
	flag.IntVar(&c.Feeders, "feeders", 4, "goroutines submitting transactions")
	flag.IntVar(&c.BasePort, "base-port", 39000, "first port of the two nodes' listeners")
	flag.IntVar(&c.Rounds, "rounds", 3, "rounds of (kvstore, phala); the median ratio is reported")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the first Phala run here")
	flag.Parse()
	c.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	res, err := bench.Run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chainbench:", err)
		os.Exit(1)
	}
	m := res.Median()
	fmt.Printf("chain throughput: committed tx/s, %d txs per run, %d rounds, block time %s, GOMAXPROCS %d\n", c.Txs, len(res.Rounds), c.BlockTime, runtime.GOMAXPROCS(0))
	for i, r := range res.Rounds {
		fmt.Printf("  round %d: kvstore %8.0f  phala %8.0f  ratio %.2f\n", i+1, r.KVStore.TPS(), r.Phala.TPS(), r.Ratio())
	}
	fmt.Printf("median round:\n")
	for _, r := range []bench.Result{m.KVStore, m.Phala} {
		fmt.Printf("  %-8s %8.0f tx/s  (%d txs in %d blocks, %s)\n", r.Name, r.TPS(), r.Txs, r.Blocks, r.Duration.Round(time.Millisecond))
	}
	fmt.Printf("ratio phala/kvstore (median): %.2f\n", m.Ratio())
}
