package devnet_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/pruntime/system"
	"github.com/phala-go/phala/tee/sim"
)

// TestLaunchHandsRootKeyToGatekeepers runs a fresh devnet with its workers
// and checks it launches by itself: three elected gatekeepers hold the root
// key, the genesis worker is retired and erased, and a restarted pRuntime
// resumes from its sealed state.
func TestLaunchHandsRootKeyToGatekeepers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := t.TempDir()
	cfg := devnet.Config{Home: home, BasePort: testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers()))), BlockTime: 150 * time.Millisecond, Workers: devnet.DefaultWorkers()}
	net, err := devnet.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { net.Stop() }()

	st, err := devnet.WaitLaunched(ctx, net.Client)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Elected) != 3 || len(st.Confirmed) != 3 {
		t.Fatalf("launched with %d elected, %d confirmed", len(st.Elected), len(st.Confirmed))
	}
	// The genesis pRuntime erases its secrets when it syncs the launch block.
	for net.Workers.Runtimes["genesis"].Info().Role != pruntime.RoleRetired {
		select {
		case <-ctx.Done():
			t.Fatal("the genesis pRuntime never retired")
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Every elected gatekeeper's pRuntime holds the root key; the genesis
	// worker's has erased it, and no miner was ever given it.
	elected := map[string]bool{}
	for _, g := range st.Elected {
		elected[string(g.SigningKey)] = true
	}
	holders := 0
	for name, rt := range net.Workers.Runtimes {
		in := rt.Info()
		switch {
		case name == "genesis":
			if in.Role != pruntime.RoleRetired || in.HoldsRootKey || in.SigningKey != nil {
				t.Errorf("genesis worker after launch: role %s, root key %v, identity %X", in.Role, in.HoldsRootKey, in.SigningKey)
			}
		case elected[string(in.SigningKey)]:
			// The launch completes when the chain has every confirmation;
			// pRuntime held the key before it could confirm.
			if in.Role != pruntime.RoleGatekeeper || !in.HoldsRootKey {
				t.Errorf("%s elected but role %s, holds root key %v", name, in.Role, in.HoldsRootKey)
			}
			holders++
		default:
			if in.HoldsRootKey {
				t.Errorf("%s was not elected but holds the root key", name)
			}
		}
	}
	if holders != 3 {
		t.Fatalf("%d gatekeepers hold the root key, want 3", holders)
	}
	w, err := net.Client.Worker(ctx, st.GenesisWorker)
	if err != nil || w == nil || !w.Retired {
		t.Fatalf("genesis worker on chain: %+v %v", w, err)
	}

	// Stop everything; a pRuntime reopened from its sealed state keeps its
	// identity, role, root key and height.
	gk := "gatekeeper1"
	before := net.Workers.Runtimes[gk].Info()
	if err := net.Stop(); err != nil {
		t.Fatal(err)
	}
	cpu, err := sim.OpenCPU(filepath.Join(devnet.WorkerDir(home, gk), "cpu"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sim.MeasureExecutable()
	dir := filepath.Join(devnet.WorkerDir(home, gk), "pruntime")
	rt, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, m), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	after := rt.Info()
	if !bytes.Equal(after.SigningKey, before.SigningKey) || after.Role != before.Role || after.HoldsRootKey != before.HoldsRootKey || after.Height != before.Height {
		t.Fatalf("restarted pRuntime: %v, before %v", after, before)
	}
	// Another build on the same CPU cannot unseal it.
	if _, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, sim.Measure([]byte("another build"))), DataDir: dir}); !errors.Is(err, system.ErrSealed) {
		t.Fatalf("another build opened the sealed state: %v", err)
	}
	// A tampered sealed file is refused, never used.
	path := filepath.Join(dir, "pruntime.sealed")
	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 1
	os.WriteFile(path, raw, 0o600)
	if _, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, m), DataDir: dir}); !errors.Is(err, system.ErrSealed) {
		t.Fatalf("tampered sealed state: %v", err)
	}
}
