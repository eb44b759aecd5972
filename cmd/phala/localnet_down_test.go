//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phala-go/phala/devnet"
)

// syncBuffer is the supervisor's output, read while it writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSuperviseDownFiles runs the localnet supervisor over `sleep`
// processes: a process whose .down file exists is neither started nor
// restarted, and starts within about a second of the file's removal; one
// without is restarted as before.
func TestSuperviseDownFiles(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	dir := t.TempDir()
	procs := []process{
		{Name: "a", Args: []string{"60"}, Log: filepath.Join(dir, "a", "pruntime.log")},
		{Name: "b", Args: []string{"60"}, Log: filepath.Join(dir, "b", "host.log")},
	}
	for _, p := range procs {
		if err := os.MkdirAll(filepath.Dir(p.Log), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	a, b := procs[0], procs[1]
	if a.downFile() != filepath.Join(dir, "a", "pruntime.down") || b.downFile() != filepath.Join(dir, "b", "host.down") {
		t.Fatalf("down files %s %s", a.downFile(), b.downFile())
	}
	touch := func(f string) {
		t.Helper()
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := &syncBuffer{}
	pidOf := func(p process) int {
		b, err := os.ReadFile(p.pidFile())
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}
	// waitPid waits for p to run under a pid other than old.
	waitPid := func(p process, old int, within time.Duration) int {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			if pid := pidOf(p); pid != 0 && pid != old {
				return pid
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not (re)started within %s", p.Name, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	kill := func(pid int) {
		t.Helper()
		pr, err := os.FindProcess(pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	// waitOutput waits for the supervisor to have said line n times.
	waitOutput := func(line string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); strings.Count(out.String(), line) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the supervisor did not say %q %d times:\n%s", line, n, out)
			}
		}
	}
	// stays checks p is not running for d.
	stays := func(p process, d time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if pid := pidOf(p); pid != 0 {
				t.Fatalf("%s runs (pid %d) while %s exists", p.Name, pid, p.downFile())
			}
		}
	}

	touch(b.downFile()) // b is down from the start
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- supervise(ctx, out, sleep, dir, devnet.Endpoints{}, procs) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("supervise: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("supervise did not stop within 10 s")
		}
		t.Logf("supervisor output:\n%s", out)
	}()

	pa := waitPid(a, 0, 5*time.Second)
	stays(b, restartDelay+500*time.Millisecond)

	// A down file keeps a from being restarted when it exits.
	touch(a.downFile())
	kill(pa)
	waitOutput("a stays down while", 1)
	stays(a, restartDelay+time.Second)
	if strings.Contains(out.String(), "a restarted") {
		t.Fatalf("output:\n%s", out)
	}

	// Removing it starts a again, within about a second.
	if err := os.Remove(a.downFile()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	pa = waitPid(a, pa, 3*time.Second)
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Errorf("a started %s after its down file went", d)
	}
	if err := os.Remove(b.downFile()); err != nil {
		t.Fatal(err)
	}
	waitPid(b, 0, 3*time.Second)

	// Without a down file the restart policy is unchanged.
	kill(pa)
	pa = waitPid(a, pa, restartDelay+3*time.Second)
	waitOutput("a restarted", 1)

	// A down file created while a waits for its restart holds it too.
	kill(pa)
	waitOutput("a exited (signal: killed); restarting it in", 2)
	touch(a.downFile())
	waitOutput("a stays down while", 2)
	stays(a, time.Second)
}
