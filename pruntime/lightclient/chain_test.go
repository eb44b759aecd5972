package lightclient_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cometbft/cometbft/types"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

// fetchBlock is what the host does for sync step h: /commit for header h,
// /validators when the client cannot know the set (sendValidators), and
// block h-1's event log.
func fetchBlock(ctx context.Context, c *client.Client, h int64, sendValidators bool) (lc.Block, error) {
	var b lc.Block
	com, err := c.RPC().Commit(ctx, &h)
	if err != nil {
		return b, fmt.Errorf("commit %d: %w", h, err)
	}
	b.SignedHeader = &com.SignedHeader
	if sendValidators {
		var vals []*types.Validator
		for page, perPage := 1, 100; ; page++ {
			res, err := c.RPC().Validators(ctx, &h, &page, &perPage)
			if err != nil {
				return b, fmt.Errorf("validators %d: %w", h, err)
			}
			vals = append(vals, res.Validators...)
			if len(vals) >= res.Total || len(res.Validators) == 0 {
				break
			}
		}
		if b.Validators, err = types.ValidatorSetFromExistingValidators(vals); err != nil {
			return b, err
		}
	}
	if h > 1 {
		if b.EventLog, err = c.EventLog(ctx, h-1); err != nil {
			return b, err
		}
	}
	return b, nil
}

// TestRealChain follows a devnet from its genesis document, and sees the
// messages pushed to it come out as verified ingress events.
func TestRealChain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	net, err := devnet.Start(ctx, devnet.Config{Home: t.TempDir(), BasePort: testutil.FreePorts(t, 3), BlockTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if err := net.WaitHeight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	alice, err := net.Keyring.Get("alice")
	if err != nil {
		t.Fatal(err)
	}

	payloads := []string{"first", "second", "third"}
	last, err := net.PushInOneBlock(ctx, "alice", "lightclient-test", []byte(payloads[0]), []byte(payloads[1]), []byte(payloads[2]))
	if err != nil {
		t.Fatal(err)
	}
	// Ingesting block last+1 returns block last's events.
	top := last + 1
	if err := net.WaitHeight(ctx, top); err != nil {
		t.Fatal(err)
	}

	cfg, err := lc.ConfigFromGenesis(net.Node.Comet().GenesisDoc())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := lc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for h := int64(1); h <= top; h++ {
		// The host sends the set when the client cannot know it; it also
		// sends the (unchanged) genesis set with block 1.
		send := h == 1 || !bytes.Equal(cl.Header().NextValidatorsHash, cl.Header().ValidatorsHash)
		b, err := fetchBlock(ctx, net.Client, h, send)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := cl.Ingest(wire(t, b))
		if err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		for _, ev := range evs {
			if ev.Height != h-1 {
				t.Fatalf("block %d returned an event of block %d", h, ev.Height)
			}
			if in := ev.GetIngress(); in != nil && in.Topic == "lightclient-test" {
				if !bytes.Equal(in.Sender, alice.Address.Bytes()) {
					t.Fatalf("event from %X, alice is %X", in.Sender, alice.Address.Bytes())
				}
				got = append(got, string(in.Payload))
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(payloads) {
		t.Fatalf("ingress payloads %q, want %q", got, payloads)
	}
	if cl.Height() != top {
		t.Fatalf("height %d, want %d", cl.Height(), top)
	}

	// A state read at the newest verified state: alice's balance.
	key := bank.BalanceKey(alice.Address)
	sp, err := net.Client.StateProof(ctx, key, top-1)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.VerifyState(sp); err != nil || len(sp.Value) != 8 {
		t.Fatalf("alice's balance after block %d: %v (value %X)", top-1, err, sp.Value)
	}
	sp.Value = append([]byte(nil), sp.Value...)
	sp.Value[7] ^= 1
	if err := cl.VerifyState(sp); err == nil {
		t.Fatal("altered balance accepted")
	}

	// The next block refuses an event log of the block before.
	if err := net.WaitHeight(ctx, top+1); err != nil {
		t.Fatal(err)
	}
	b, err := fetchBlock(ctx, net.Client, top+1, false)
	if err != nil {
		t.Fatal(err)
	}
	stale := b
	if stale.EventLog, err = net.Client.EventLog(ctx, top-1); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Ingest(stale); err == nil {
		t.Fatal("a stale event log was accepted")
	}
	if _, err := cl.Ingest(b); err != nil {
		t.Fatalf("block %d: %v", top+1, err)
	}
}
