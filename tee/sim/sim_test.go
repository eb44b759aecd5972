package sim_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/attest"
	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
	"github.com/phala-go/phala/tee/teetest"
)

func openCPU(t *testing.T, dir string) *sim.CPU {
	t.Helper()
	cpu, err := sim.OpenCPU(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}

// TestConformance runs the suite on sim, verified through the attestation
// service (over HTTP) and attest.Verifier.
func TestConformance(t *testing.T) {
	dirA, dirB, dirX := t.TempDir(), t.TempDir(), t.TempDir()
	cpuA, cpuB, cpuX := openCPU(t, dirA), openCPU(t, dirB), openCPU(t, dirX)
	m, m2 := sim.Measure([]byte("pruntime build 1")), sim.Measure([]byte("pruntime build 2"))
	issued := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	serviceKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	svc, err := attest.NewService(attest.ServiceConfig{
		SigningKey: serviceKey,
		KnownCPUs:  []ed25519.PublicKey{cpuA.PublicKey(), cpuB.PublicKey()},
		Clock:      func() time.Time { return issued },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	defer srv.Close()
	client := &attest.Client{URL: srv.URL, HTTP: srv.Client()}

	teetest.Run(t, teetest.Harness{
		Name:             "sim",
		New:              func(*testing.T) tee.Platform { return sim.New(cpuA, m) },
		OtherMeasurement: func(*testing.T) tee.Platform { return sim.New(cpuA, m2) },
		OtherCPU:         func(*testing.T) tee.Platform { return sim.New(cpuB, m) },
		Reopen:           func(t *testing.T) tee.Platform { return sim.New(openCPU(t, dirA), m) },
		UnknownCPU:       func(*testing.T) tee.Platform { return sim.New(cpuX, m) },
		Evidence: func(t *testing.T, quote []byte) ([]byte, error) {
			return client.Report(context.Background(), quote)
		},
		Verifier:     attest.Verifier{ServiceKeys: []ed25519.PublicKey{serviceKey.Public().(ed25519.PublicKey)}, MaxAge: time.Hour, MaxClockSkew: time.Minute},
		IssuedAt:     issued,
		MaxAge:       time.Hour,
		MaxClockSkew: time.Minute,
	})
}

func TestOpenCPUCreatesPrivateFileAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "cpu")
	a := openCPU(t, dir)
	st, err := os.Stat(filepath.Join(dir, sim.CPUFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("CPU file mode %#o, want 0600", st.Mode().Perm())
	}
	if !bytes.Equal(a.PublicKey(), openCPU(t, dir).PublicKey()) {
		t.Fatal("reopening the directory gave another CPU")
	}
	if bytes.Equal(a.PublicKey(), openCPU(t, t.TempDir()).PublicKey()) {
		t.Fatal("two new CPUs have the same key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only %s", len(entries), sim.CPUFile)
	}
	// The key returned is a copy.
	k := a.PublicKey()
	k[0] ^= 1
	if bytes.Equal(k, a.PublicKey()) {
		t.Fatal("PublicKey returned the CPU's own slice")
	}
}

func TestOpenCPUConcurrentCreateAgrees(t *testing.T) {
	dir := t.TempDir()
	keys := make([]ed25519.PublicKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sim.OpenCPU(dir)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = c.PublicKey()
		}()
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent OpenCPU calls on one directory made different CPUs")
		}
	}
}

func TestOpenCPURefusesDamagedFile(t *testing.T) {
	good := t.TempDir()
	openCPU(t, good)
	raw, err := os.ReadFile(filepath.Join(good, sim.CPUFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	seedStart := strings.Index(s, `"quote_key_seed": "`) + len(`"quote_key_seed": "`)
	otherSeed := s[:seedStart] + strings.Repeat("0", 64) + s[seedStart+64:]
	for name, c := range map[string]struct{ content, want string }{
		"empty":             {"", "not a CPU file"},
		"truncated":         {s[:len(s)/2], "not a CPU file"},
		"not JSON":          {"hello", "not a CPU file"},
		"unknown field":     {strings.Replace(s, `"version"`, `"extra": 1, "version"`, 1), "unknown field"},
		"trailing data":     {s + "{}", "data after"},
		"wrong version":     {strings.Replace(s, `"version": 1`, `"version": 2`, 1), "version 2"},
		"short secret":      {strings.Replace(s, `"sealing_secret": "`, `"sealing_secret": "00`, 1), "sealing_secret"},
		"seed not hex":      {strings.Replace(s, `"quote_key_seed": "`, `"quote_key_seed": "zz`, 1), "quote_key_seed is not hex"},
		"key/seed mismatch": {otherSeed, "does not match"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, sim.CPUFile)
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := sim.OpenCPU(dir)
		if err == nil {
			t.Errorf("%s: damaged file accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
		// Neither replaced nor repaired.
		if after, _ := os.ReadFile(path); string(after) != c.content {
			t.Errorf("%s: OpenCPU modified the damaged file", name)
		}
		// The secret never appears in the message.
		if strings.Contains(err.Error(), s[seedStart:seedStart+16]) {
			t.Errorf("%s: error quotes the seed", name)
		}
	}
}

func TestOpenCPURefusesReadableFile(t *testing.T) {
	dir := t.TempDir()
	openCPU(t, dir)
	path := filepath.Join(dir, sim.CPUFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.OpenCPU(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("got %v, want a refusal saying chmod 600", err)
	}
}

func TestMeasure(t *testing.T) {
	m, err := sim.MeasureExecutable()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != sim.MeasurementSize {
		t.Fatalf("measurement is %d bytes", len(m))
	}
	exe, _ := os.Executable()
	raw, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, sim.Measure(raw)) {
		t.Fatal("MeasureExecutable is not the hash of the executable")
	}
	m[0] ^= 1
	if again, _ := sim.MeasureExecutable(); bytes.Equal(again, m) {
		t.Fatal("MeasureExecutable returned its cached slice")
	}
	if bytes.Equal(sim.Measure([]byte("a")), sim.Measure([]byte("b"))) {
		t.Fatal("two builds measure the same")
	}
}

func TestNewPanicsOnBadMeasurement(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a 3-byte measurement")
		}
	}()
	sim.New(openCPU(t, t.TempDir()), []byte{1, 2, 3})
}

// TestVerifyQuote checks that a quote verifies and that every way of
// changing it is refused with the right sentinel.
func TestVerifyQuote(t *testing.T) {
	cpu := openCPU(t, t.TempDir())
	m := sim.Measure([]byte("build"))
	var rd [tee.ReportDataSize]byte
	rd[0], rd[63] = 1, 2
	raw, err := sim.New(cpu, m).Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sim.VerifyQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q.CPU, cpu.PublicKey()) || !bytes.Equal(q.Measurement, m) || q.ReportData != rd {
		t.Fatalf("decoded quote %+v does not match what was quoted", q)
	}

	var pb teepb.SimQuote
	if err := proto.Unmarshal(raw, &pb); err != nil {
		t.Fatal(err)
	}
	reencode := func(edit func(*teepb.SimQuote)) []byte {
		c := proto.Clone(&pb).(*teepb.SimQuote)
		edit(c)
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := openCPU(t, t.TempDir())
	for name, c := range map[string]struct {
		raw  []byte
		want error
	}{
		"empty":               {nil, tee.ErrMalformed},
		"too large":           {make([]byte, sim.MaxQuoteSize+1), tee.ErrMalformed},
		"version 2":           {reencode(func(q *teepb.SimQuote) { q.Version = 2 }), tee.ErrMalformed},
		"short measurement":   {reencode(func(q *teepb.SimQuote) { q.Measurement = q.Measurement[:31] }), tee.ErrMalformed},
		"short report data":   {reencode(func(q *teepb.SimQuote) { q.ReportData = q.ReportData[:63] }), tee.ErrMalformed},
		"short signature":     {reencode(func(q *teepb.SimQuote) { q.Signature = q.Signature[:63] }), tee.ErrMalformed},
		"no cpu key":          {reencode(func(q *teepb.SimQuote) { q.CpuKey = nil }), tee.ErrMalformed},
		"other measurement":   {reencode(func(q *teepb.SimQuote) { q.Measurement = sim.Measure([]byte("x")) }), tee.ErrSignature},
		"other report data":   {reencode(func(q *teepb.SimQuote) { q.ReportData = make([]byte, 64) }), tee.ErrSignature},
		"other CPU key":       {reencode(func(q *teepb.SimQuote) { q.CpuKey = other.PublicKey() }), tee.ErrSignature},
		"unknown field":       {append(bytes.Clone(raw), 0x30, 0x01), tee.ErrMalformed},
		"duplicated field":    {append(bytes.Clone(raw), raw[:2]...), tee.ErrMalformed},
		"fields out of order": {reorder(t, raw), tee.ErrMalformed},
		"trailing byte":       {append(bytes.Clone(raw), 0), tee.ErrMalformed},
	} {
		if _, err := sim.VerifyQuote(c.raw); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

// reorder moves the quote's first field (version) to the end: the same
// message, a non-canonical encoding.
func reorder(t *testing.T, raw []byte) []byte {
	if raw[0] != 0x08 || raw[1] != 0x01 {
		t.Fatalf("quote does not start with version 1: %x", raw[:2])
	}
	return append(bytes.Clone(raw[2:]), raw[:2]...)
}

// FuzzVerifyQuote feeds arbitrary bytes to the quote decoder, which the
// attestation service runs on every request. It must never panic, must
// refuse with ErrMalformed or ErrSignature, and whatever it accepts must
// re-encode to exactly the input (no malleability).
func FuzzVerifyQuote(f *testing.F) {
	cpu, err := sim.OpenCPU(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		var rd [tee.ReportDataSize]byte
		rd[i] = byte(i + 1)
		q, err := sim.New(cpu, sim.Measure([]byte{byte(i)})).Quote(rd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(q)
		f.Add(q[:len(q)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := sim.VerifyQuote(raw)
		if err != nil {
			if !errors.Is(err, tee.ErrMalformed) && !errors.Is(err, tee.ErrSignature) {
				t.Fatalf("refusal wraps neither ErrMalformed nor ErrSignature: %v", err)
			}
			return
		}
		if len(q.CPU) != ed25519.PublicKeySize || len(q.Measurement) != sim.MeasurementSize {
			t.Fatalf("accepted a quote with bad field sizes: %+v", q)
		}
		var pb teepb.SimQuote
		if err := proto.Unmarshal(raw, &pb); err != nil {
			t.Fatal(err)
		}
		again, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&pb)
		if !bytes.Equal(again, raw) {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}
