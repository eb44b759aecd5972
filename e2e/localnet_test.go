package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
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

// TestLocalnetProcessesLaunchAndPRuntimeResumes: `phala localnet` runs two
// validators, the attestation service and six workers (a pRuntime process
// and a host process each) as separate processes; the network launches by
// itself. A gatekeeper's pRuntime killed with SIGKILL is restarted by the
// supervisor and resumes from its sealed state: same identity, still a
// gatekeeper, at or past the height it had synced, and syncing on. Ctrl-C
// (SIGTERM) then stops every process.
func TestLocalnetProcessesLaunchAndPRuntimeResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	home := t.TempDir()
	base := testutil.FreePorts(t, 20)
	sup := start(t, "localnet", nil, "localnet", "--validators", "2", "--home", home, "--base-port", strconv.Itoa(base), "--block-time", "300ms")
	t.Cleanup(func() { sup.terminate(20 * time.Second) }) // its processes stop before home is removed
	sup.waitOutput(t, "running; Ctrl-C stops every process", 60*time.Second)
	sup.waitOutput(t, "launched (height", 3*time.Minute)
	for _, want := range []string{"3 gatekeepers elected by stake", "3 of 3 gatekeepers confirmed they hold the root key"} {
		if !strings.Contains(sup.output(), want) {
			t.Fatalf("localnet output lacks %q:\n%s", want, sup.output())
		}
	}
	e, err := devnet.ReadEndpoints(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Nodes) != 2 || len(e.Workers) != 6 || e.Attest == "" {
		t.Fatalf("endpoints.json = %+v", e)
	}
	// A second supervisor on the same home would run a second pRuntime on
	// each sealed state: refused.
	if _, errOut, code := run(t, "localnet", "--validators", "2", "--home", home, "--base-port", strconv.Itoa(base)); code != 1 || !strings.Contains(errOut, "already runs from") {
		t.Fatalf("second supervisor: exit %d, stderr %s", code, errOut)
	}
	// Every worker runs in its own processes, not in the supervisor.
	pids := map[string]bool{}
	for _, w := range e.Workers {
		for _, part := range []string{"pruntime", "host"} {
			pid := readPid(t, filepath.Join(devnet.WorkerDir(home, w.Name), part+".pid"))
			if pid == sup.cmd.Process.Pid || pids[strconv.Itoa(pid)] {
				t.Fatalf("%s/%s runs as pid %d, not its own process", w.Name, part, pid)
			}
			pids[strconv.Itoa(pid)] = true
		}
	}
	var st struct {
		Phase  string
		Launch struct {
			Gatekeepers []struct {
				SigningKey string `json:"signing_key"`
				Confirmed  bool
			}
		}
		Workers []struct{ Retired bool }
	}
	if err := json.Unmarshal([]byte(mustRun(t, "status", "-o", "json", "--home", home)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Phase != "launched" || len(st.Launch.Gatekeepers) != 3 || len(st.Workers) != 6 {
		t.Fatalf("status = %+v", st)
	}

	// Kill gatekeeper1's pRuntime in the middle of its work.
	sock := devnet.PRuntimeSocket(home, "gatekeeper1")
	api, err := pruntime.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	before, err := api.Info(ctx, &pruntimepb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if before.Role != pruntime.RoleGatekeeper || before.Height < 1 {
		t.Fatalf("gatekeeper1 before the kill: role %s at height %d", before.Role, before.Height)
	}
	pidFile := filepath.Join(devnet.WorkerDir(home, "gatekeeper1"), "pruntime.pid")
	oldPid := readPid(t, pidFile)
	if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sup.waitOutput(t, "gatekeeper1/pruntime restarted", 30*time.Second)
	var after *pruntimepb.InfoResponse
	eventually(t, 30*time.Second, "the restarted pRuntime answers", func() error {
		after, err = api.Info(ctx, &pruntimepb.InfoRequest{})
		return err
	})
	if readPid(t, pidFile) == oldPid {
		t.Fatal("the pid file still names the killed process")
	}
	if !bytes.Equal(after.SigningKey, before.SigningKey) || after.Role != pruntime.RoleGatekeeper || after.Height < before.Height {
		t.Fatalf("restarted pRuntime: identity %X role %s height %d; before the kill: %X %s %d",
			after.SigningKey, after.Role, after.Height, before.SigningKey, before.Role, before.Height)
	}
	// Its log shows it started from the sealed height, not from scratch.
	logText, _ := os.ReadFile(filepath.Join(devnet.WorkerDir(home, "gatekeeper1"), "pruntime.log"))
	m := regexp.MustCompile(`role\s+gatekeeper, synced to block (\d+)`).FindAllSubmatch(logText, -1)
	if len(m) == 0 {
		t.Fatalf("pruntime.log has no restart line:\n%s", logText)
	}
	if resumed, _ := strconv.ParseInt(string(m[len(m)-1][1]), 10, 64); resumed < before.Height {
		t.Fatalf("restarted at block %d, below the %d it had synced before the kill", resumed, before.Height)
	}
	// Its host feeds it on from there.
	c, _ := client.New(e.RPC)
	tip, err := height(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the restarted pRuntime syncs past the tip", func() error {
		in, err := api.Info(ctx, &pruntimepb.InfoRequest{})
		if err == nil && in.Height <= tip {
			err = fmt.Errorf("at %d, tip was %d", in.Height, tip)
		}
		return err
	})

	sup.stop(t)
	if out := sup.output(); !strings.Contains(out, "stopped") {
		t.Fatalf("supervisor output lacks 'stopped':\n%s", out)
	}
	for _, n := range e.Nodes {
		c, _ := client.New(n.RPC)
		if _, err := height(ctx, c); err == nil {
			t.Fatalf("%s still answers after the localnet stopped", n.Name)
		}
	}
	for pid := range pids {
		n, _ := strconv.Atoi(pid)
		if syscall.Kill(n, 0) == nil && !isZombie(n) {
			t.Fatalf("worker process %d still runs after the localnet stopped", n)
		}
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

// isZombie reports whether pid has exited and awaits its parent's wait.
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
