package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/keyring"
)

func height(ctx context.Context, c *client.Client) (int64, error) {
	info, err := c.RPC().ABCIInfo(ctx)
	if err != nil {
		return 0, err
	}
	return info.Response.LastBlockHeight, nil
}

// TestLocalnetSurvivesKilledValidatorAndCatchesUp: four validator processes;
// one is killed with SIGKILL; the other three (3/4 of the power, above the
// 2/3 quorum) keep committing blocks and transfers; the killed one restarts
// from its data directory and catches up to the same app hash and state.
func TestLocalnetSurvivesKilledValidatorAndCatchesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	home := t.TempDir()
	base := testutil.FreePorts(t, 40)
	mustRun(t, "localnet", "init", "--validators", "4", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "500ms")
	e, err := devnet.ReadEndpoints(home)
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*proc, 4)
	clients := make([]*client.Client, 4)
	for i, n := range e.Nodes {
		nodes[i] = start(t, n.Name, nil, "node", "--home", n.Home)
		if clients[i], err = client.New(n.RPC); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		eventually(t, 90*time.Second, fmt.Sprintf("node%d reaches height 3", i), func() error {
			h, err := height(ctx, clients[i])
			if err == nil && h < 3 {
				err = fmt.Errorf("at %d", h)
			}
			return err
		})
	}

	kr, err := keyring.Open(e.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := kr.Get("alice")
	bob, _ := kr.Get("bob")
	if _, err := clients[0].Transfer(ctx, alice.PrivateKey(), bob.Address, bank.UnitsPerPHA, client.SendOptions{}); err != nil {
		t.Fatalf("transfer with all four up: %v", err)
	}

	killedAt, _ := height(ctx, clients[3])
	nodes[3].kill9()
	t.Logf("node3 killed at height %d", killedAt)

	// The chain keeps committing without it.
	eventually(t, 60*time.Second, "the three others commit 5 more blocks", func() error {
		h, err := height(ctx, clients[0])
		if err == nil && h < killedAt+5 {
			err = fmt.Errorf("node0 at %d", h)
		}
		return err
	})
	res, err := clients[1].Transfer(ctx, alice.PrivateKey(), bob.Address, 2*bank.UnitsPerPHA, client.SendOptions{})
	if err != nil {
		t.Fatalf("transfer with node3 down: %v", err)
	}
	if res.Height <= killedAt {
		t.Fatalf("transfer committed at %d, before the kill at %d", res.Height, killedAt)
	}

	// Restart from the same home: it resumes its own state and catches up.
	nodes[3] = start(t, "node3-restarted", nil, "node", "--home", e.Nodes[3].Home)
	target, err := height(ctx, clients[0])
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, fmt.Sprintf("node3 catches up to %d", target), func() error {
		h, err := height(ctx, clients[3])
		if err == nil && h < target {
			err = fmt.Errorf("node3 at %d", h)
		}
		return err
	})
	nodes[3].waitOutput(t, "resumed state", 5*time.Second)

	// Same app hash: node3's app after block h equals the hash every node
	// signed into header h+1.
	info, err := clients[3].RPC().ABCIInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h3 := info.Response.LastBlockHeight
	eventually(t, 30*time.Second, "header after node3's height", func() error {
		h, err := height(ctx, clients[0])
		if err == nil && h < h3+1 {
			err = fmt.Errorf("node0 at %d", h)
		}
		return err
	})
	header, err := clients[0].Header(ctx, h3+1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(header.AppHash, info.Response.LastBlockAppHash) {
		t.Fatalf("node3's app hash after %d is %X; the network committed %X", h3, info.Response.LastBlockAppHash, []byte(header.AppHash))
	}
	// And the same state: bob's balance at that height, read from each node.
	key := bank.BalanceKey(bob.Address)
	p0, err := clients[0].StateProof(ctx, key, h3)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := clients[3].StateProof(ctx, key, h3)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p0.Value, p3.Value) || p3.Value == nil {
		t.Fatalf("bob's balance at %d: node0 %X, node3 %X", h3, p0.Value, p3.Value)
	}
	for _, n := range nodes {
		n.stop(t)
	}
}

// TestLocalnetCommandRunsAndStopsCleanly: `phala localnet` starts its
// validators as processes, they produce blocks, and Ctrl-C (SIGTERM) stops
// them all.
func TestLocalnetCommandRunsAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := t.TempDir()
	base := testutil.FreePorts(t, 20)
	sup := start(t, "localnet", nil, "localnet", "--validators", "2", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "300ms")
	sup.waitOutput(t, "running; Ctrl-C stops every node", 30*time.Second)
	e, err := devnet.ReadEndpoints(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range e.Nodes {
		c, _ := client.New(n.RPC)
		eventually(t, 90*time.Second, n.Name+" reaches height 3", func() error {
			h, err := height(ctx, c)
			if err == nil && h < 3 {
				err = fmt.Errorf("at %d", h)
			}
			return err
		})
	}
	sup.stop(t)
	if out := sup.output(); !bytes.Contains([]byte(out), []byte("stopped")) {
		t.Fatalf("supervisor output lacks 'stopped':\n%s", out)
	}
	for _, n := range e.Nodes {
		c, _ := client.New(n.RPC)
		if _, err := height(ctx, c); err == nil {
			t.Fatalf("%s still answers after the localnet stopped", n.Name)
		}
	}
}
