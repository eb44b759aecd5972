package lightclient_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/pruntimepb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

// FuzzIngest feeds arbitrary bytes, as a hostile host would send them, as
// the next sync step of two clients: one whose next block keeps the
// validator set, one whose next block changes it. Nothing may panic; a
// refusal must be classified and leave the client unchanged; and since the
// host cannot forge signatures, the only block ever accepted is the genuine
// next one with its genuine events.
func FuzzIngest(f *testing.F) {
	c := newSimChain(f, "sim-fuzz", 4)
	c.grow(6)
	c.change(types.NewValidator(c.key("val-2").PubKey(), 0), types.NewValidator(c.key("newcomer").PubKey(), 20))
	c.grow(9)
	if c.blocks[8].Validators == nil {
		f.Fatal("block 8 should carry the new validator set")
	}
	type target struct {
		at     int64
		cl     *lc.Client
		sealed []byte
	}
	var targets []*target
	for _, at := range []int64{4, 7} {
		cl := c.synced(at)
		targets = append(targets, &target{at: at, cl: cl, sealed: mustMarshal(f, cl)})
	}

	encode := func(b lc.Block) []byte {
		sb, err := lc.EncodeBlock(b)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := proto.Marshal(sb)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	for _, tg := range targets {
		next := c.blocks[tg.at+1]
		raw := encode(next)
		f.Add(raw)
		for _, i := range []int{0, 3, len(raw) / 3, len(raw) / 2, len(raw) - 40, len(raw) - 1} {
			flipped := bytes.Clone(raw)
			flipped[i] ^= 0x10
			f.Add(flipped)
		}
		f.Add(raw[:len(raw)/2])
		f.Add(encode(c.blocks[tg.at+2]))
		f.Add(encode(c.blocks[tg.at]))
		noVals := next
		noVals.Validators = nil
		f.Add(encode(noVals))
		withVals := next
		withVals.Validators = c.sets[tg.at+1]
		f.Add(encode(withVals))
		otherLog := next
		otherLog.EventLog = c.logs[tg.at+1]
		f.Add(encode(otherLog))
	}
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, raw []byte) {
		var sb pruntimepb.SyncBlock
		if err := proto.Unmarshal(raw, &sb); err != nil {
			return
		}
		b, err := lc.DecodeBlock(&sb)
		if err != nil {
			if !errors.Is(err, lc.ErrMalformed) {
				t.Fatalf("unclassified decoding error: %v", err)
			}
			return
		}
		for _, tg := range targets {
			evs, err := tg.cl.Ingest(b)
			if err != nil {
				if evs != nil {
					t.Fatal("events returned with an error")
				}
				if !errors.Is(err, lc.ErrMalformed) && !errors.Is(err, lc.ErrHeight) && !errors.Is(err, lc.ErrValidatorSet) && !errors.Is(err, lc.ErrHeader) && !errors.Is(err, lc.ErrEventLog) {
					t.Fatalf("unclassified refusal: %v", err)
				}
				if now := mustMarshal(t, tg.cl); !bytes.Equal(now, tg.sealed) {
					t.Fatalf("a refused block changed the client: %v", err)
				}
				continue
			}
			h := tg.at + 1
			if !bytes.Equal(b.SignedHeader.Hash(), c.blocks[h].SignedHeader.Hash()) {
				t.Fatalf("client at %d accepted a block that is not block %d", tg.at, h)
			}
			c.checkEvents(t, h-1, evs)
			if tg.cl, err = lc.Restore(c.config(), tg.sealed); err != nil {
				t.Fatal(err)
			}
		}
	})
}
