package lightclient_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/pruntimepb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

const benchBlocks = 1000

// benchChain is a 4-validator synthetic chain with 1 to 3 events per block.
func benchChain(b *testing.B) *simChain {
	c := newSimChain(b, "sim-bench", 4)
	c.grow(benchBlocks)
	return c
}

// BenchmarkIngest measures verification alone: blocks already decoded.
func BenchmarkIngest(b *testing.B) {
	c := benchChain(b)
	cl := c.synced(0)
	h := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if h > benchBlocks {
			b.StopTimer()
			cl, h = c.synced(0), 1
			b.StartTimer()
		}
		if _, err := cl.Ingest(c.blocks[h]); err != nil {
			b.Fatal(err)
		}
		h++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkIngestWire measures pRuntime's whole path for a block: the
// SyncBlock bytes from the host decoded, then verified.
func BenchmarkIngestWire(b *testing.B) {
	c := benchChain(b)
	raws := make([][]byte, benchBlocks+1)
	for h := int64(1); h <= benchBlocks; h++ {
		sb, err := lc.EncodeBlock(c.blocks[h])
		if err != nil {
			b.Fatal(err)
		}
		if raws[h], err = proto.Marshal(sb); err != nil {
			b.Fatal(err)
		}
	}
	cl := c.synced(0)
	h := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if h > benchBlocks {
			b.StopTimer()
			cl, h = c.synced(0), 1
			b.StartTimer()
		}
		var sb pruntimepb.SyncBlock
		if err := proto.Unmarshal(raws[h], &sb); err != nil {
			b.Fatal(err)
		}
		blk, err := lc.DecodeBlock(&sb)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cl.Ingest(blk); err != nil {
			b.Fatal(err)
		}
		h++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkIngestBatch is BenchmarkIngest through IngestBatch, 500 blocks a
// call as pRuntime's SyncBlockchain sends them; b.N counts blocks.
func BenchmarkIngestBatch(b *testing.B) {
	const batch = 500
	c := benchChain(b)
	cl := c.synced(0)
	h := int64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		if h > benchBlocks {
			b.StopTimer()
			cl, h = c.synced(0), 1
			b.StartTimer()
		}
		n := min(int64(batch), benchBlocks-h+1, int64(b.N-done))
		if evs, err := cl.IngestBatch(c.blocks[h : h+n]); err != nil || len(evs) != int(n) {
			b.Fatal(err)
		}
		h += n
		done += int(n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}
