// Command rotationbench measures the root key rotation between eras
// (docs/eras.md): for 3, 10 and 30 gatekeepers (one in-process devnet
// each) with 1,000 stored contract keys, the rotation's length in blocks
// and seconds from its start to Rotation Ready, and the pause it causes
// in miner to gatekeeper key traffic: a key request sent at the
// rotation's start against the same request outside a rotation. It
// prints ratios against the best case (3 blocks), the run's block
// interval, the unpaused request and the smallest gatekeeper set.
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
	var c bench.RotationConfig
	gks := flag.String("gatekeepers", "3,10,30", "gatekeeper counts, comma-separated; one devnet each, ratios against the first")
	flag.IntVar(&c.Keys, "keys", 1000, "stored contract keys when the rotation starts")
	flag.IntVar(&c.Probes, "probes", 5, "key requests timed one at a time outside a rotation (the baseline; part of -keys)")
	flag.DurationVar(&c.BlockTime, "block-time", 300*time.Millisecond, "the devnets' block time")
	flag.Int64Var(&c.EraBlocks, "era-blocks", 0, "era length in blocks; it must hold the launch and the keying of -keys contracts (0: estimated)")
	flag.Int64Var(&c.RotationBlocks, "rotation-blocks", 100, "a rotation attempt's deadline in blocks")
	flag.IntVar(&c.Deployers, "deployers", 4, "funded dev accounts signing the deploys")
	flag.IntVar(&c.BasePort, "base-port", 30300, "the first devnet's first port (each next one 100 higher)")
	flag.StringVar(&c.Dir, "dir", "", "directory for the devnets (default: a temporary directory, removed after)")
	flag.Parse()
	var err error
	if c.Gatekeepers, err = bench.ParseCounts(*gks); err != nil {
		fmt.Fprintln(os.Stderr, "rotationbench: -gatekeepers:", err)
		os.Exit(2)
	}
	c.Log = bench.StderrLog
	start := time.Now()
	rep, err := bench.RunRotation(context.Background(), c)
	c.Log("done in %s", time.Since(start).Round(time.Second))
	w := bufio.NewWriter(os.Stdout)
	bench.WriteRotationReport(w, c, rep, runtime.GOMAXPROCS(0))
	w.Flush()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rotationbench:", err)
		os.Exit(1)
	}
}
