// Command syncbench measures verified chain sync: the blocks per second a
// pRuntime ingests with full verification (SyncBlockchain: decode, the
// call's blocks verified by the light client's IngestBatch, event-log
// proof, apply, seal), against the same ingest with verification taken out,
// over the same recorded chain in the same process, and prints both and
// their ratio; and, for comparison, pRuntime's Runtime.SyncBlockchain as
// built.
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
	var c bench.SyncConfig
	flag.IntVar(&c.Blocks, "blocks", 10_000, "blocks pRuntime ingests (heights 1..blocks of the recorded chain)")
	flag.IntVar(&c.Rounds, "rounds", 5, "rounds of (unverified, verified); the median ratio is reported")
	flag.IntVar(&c.Batch, "batch", 500, "blocks per SyncBlockchain call")
	flag.IntVar(&c.Validators, "validators", 4, "validators of the recorded chain")
	flag.IntVar(&c.Pushers, "pushers", 3, "accounts each pushing one message (one worker event) per block")
	flag.DurationVar(&c.BlockTime, "block-time", 5*time.Millisecond, "CometBFT timeout_commit while recording")
	flag.IntVar(&c.Fetchers, "fetchers", 8, "goroutines fetching sync blocks from the node")
	flag.BoolVar(&c.GRPC, "grpc", true, "also measure pRuntime's SyncBlockchain through its gRPC API on a Unix socket")
	flag.IntVar(&c.BasePort, "base-port", 29100, "first port of the validators' listeners (10 each)")
	flag.StringVar(&c.Dir, "dir", "", "directory for the recorded chain's nodes and the runtimes' data (default: the system temporary directory)")
	flag.StringVar(&c.ChainFile, "chain", "", "keep the recorded chain in this file: load it if present, else record and save it")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of one extra verified (batched) ingest (run after the rounds, not counted) here")
	flag.Parse()
	c.Log = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	res, err := bench.RunSync(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1)
	}
	m := res.Median()
	fmt.Printf("verified sync: blocks/s a pRuntime ingests, %d blocks (%d validators, %d worker events, %.1f MB as sent), batch %d, %d rounds, GOMAXPROCS %d\n",
		res.Blocks, res.Validators, res.Events, float64(res.Bytes)/1e6, c.Batch, len(res.Rounds), runtime.GOMAXPROCS(0))
	for i, r := range res.Rounds {
		line := fmt.Sprintf("  round %d: unverified %8.0f  verified %8.0f  ratio %.2f  pRuntime's SyncBlockchain %8.0f", i+1, r.Unverified.BlocksPerSecond(), r.Verified.BlocksPerSecond(), r.Ratio(), r.Runtime.BlocksPerSecond())
		if r.GRPC != nil {
			line += fmt.Sprintf("  over gRPC %8.0f", r.GRPC.BlocksPerSecond())
		}
		fmt.Println(line)
	}
	fmt.Printf("median round:\n")
	results := []bench.SyncResult{m.Unverified, m.Verified, m.Runtime}
	if m.GRPC != nil {
		results = append(results, *m.GRPC)
	}
	for _, r := range results {
		fmt.Printf("  %-18s %8.0f blocks/s  (%d blocks, %d events, %s, %.0f µs/block)\n", r.Name, r.BlocksPerSecond(), r.Blocks, r.Events,
			r.Duration.Round(time.Millisecond), r.Duration.Seconds()*1e6/float64(r.Blocks))
	}
	fmt.Printf("ratio verified/unverified (median): %.2f; verification takes %.0f%% of the verified ingest's time\n", m.Ratio(), 100*m.VerificationShare())
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	v := m.Verified.BlocksPerSecond()
	fmt.Printf("target > %d verified blocks/s (Phala's relayer: about 10): %.0f, %s\n", bench.SyncTargetBlocksPerSecond, v, met(v > bench.SyncTargetBlocksPerSecond))
	fmt.Printf("target verification < half the time (ratio > %.1f): %.2f, %s\n", bench.SyncTargetRatio, m.Ratio(), met(m.Ratio() > bench.SyncTargetRatio))
	if res.Fetch > 0 {
		// Context: what the host's side of the relay costs on this machine.
		fetch := res.Fetch.Seconds() / float64(res.Blocks)
		verify := m.Verified.Duration.Seconds()/float64(res.Blocks) - m.Unverified.Duration.Seconds()/float64(res.Blocks)
		fmt.Printf("context: recording took %s; the host fetched the sync blocks over RPC (client.SyncBlock, %d fetchers, one node) at %.0f blocks/s,\n", res.Record.Round(time.Second), c.Fetchers, 1/fetch)
		fmt.Printf("  so in a relay of fetch + verified ingest, verification is %.0f%% of the time\n", 100*verify/(fetch+m.Verified.Duration.Seconds()/float64(res.Blocks)))
	}
}
