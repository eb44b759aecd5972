package teetest_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/teetest"
)

// The suite is checked against a small fake platform whose evidence is its
// quote: time(8) || measurement(32) || cpu(32) || report data(64) || sig(64).
// Each mutation breaks one property; the suite must notice every one.

type fakeCPU struct {
	key    ed25519.PrivateKey
	secret []byte
}

func newFakeCPU(b byte) *fakeCPU {
	return &fakeCPU{key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)), secret: bytes.Repeat([]byte{b + 100}, 32)}
}

type fake struct {
	cpu         *fakeCPU
	measurement []byte
	at          time.Time
	mut         string
}

func (f *fake) Name() string {
	if f.mut == "name" {
		return "other"
	}
	return "fake"
}

func (f *fake) Measurement() []byte {
	if f.mut == "shared-measurement" {
		return f.measurement
	}
	return bytes.Clone(f.measurement)
}

func (f *fake) Quote(rd [tee.ReportDataSize]byte) ([]byte, error) {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, uint64(f.at.UnixNano()))
	b = append(b, f.measurement...)
	b = append(b, f.cpu.key.Public().(ed25519.PublicKey)...)
	b = append(b, rd[:]...)
	return append(b, ed25519.Sign(f.cpu.key, b)...), nil
}

func (f *fake) SealingKey() ([]byte, error) {
	h := sha256.New()
	h.Write(f.cpu.secret)
	if f.mut != "seal-ignores-measurement" {
		h.Write(f.measurement)
	}
	return h.Sum(nil), nil
}

type fakeVerifier struct {
	known  map[string]bool
	maxAge time.Duration
	skew   time.Duration
	mut    string
}

func (v fakeVerifier) Verify(ev, rd []byte, now time.Time) (*tee.Attestation, error) {
	if len(ev) != 8+32+32+64+64 {
		return nil, fmt.Errorf("%w: %d bytes", tee.ErrMalformed, len(ev))
	}
	body, sig := ev[:136], ev[136:]
	cpu := ed25519.PublicKey(body[40:72])
	if !v.known[string(cpu)] {
		return nil, fmt.Errorf("%w: %x", tee.ErrUnknownCPU, cpu)
	}
	if v.mut != "no-signature-check" && !ed25519.Verify(cpu, body, sig) {
		return nil, fmt.Errorf("%w: bad signature", tee.ErrSignature)
	}
	ts := time.Unix(0, int64(binary.BigEndian.Uint64(body[:8])))
	if v.mut != "no-freshness" && (now.Sub(ts) > v.maxAge || ts.After(now.Add(v.skew))) {
		return nil, fmt.Errorf("%w: issued %s", tee.ErrStale, ts)
	}
	if v.mut != "no-report-data" && !bytes.Equal(body[72:136], rd) {
		return nil, fmt.Errorf("%w: %x", tee.ErrReportData, body[72:136])
	}
	return &tee.Attestation{Platform: "fake", Measurement: bytes.Clone(body[8:40]), Status: "OK", Timestamp: ts, CPU: bytes.Clone(cpu)}, nil
}

func harness(mut string) teetest.Harness {
	a, b, x := newFakeCPU(1), newFakeCPU(2), newFakeCPU(3)
	m, m2 := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0xbb}, 32)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	plat := func(c *fakeCPU, m []byte) func(*testing.T) tee.Platform {
		return func(*testing.T) tee.Platform { return &fake{cpu: c, measurement: m, at: at, mut: mut} }
	}
	reopen := plat(a, m)
	if mut == "reopen-new-cpu" {
		reopen = plat(newFakeCPU(4), m)
	}
	known := map[string]bool{string(a.key.Public().(ed25519.PublicKey)): true, string(b.key.Public().(ed25519.PublicKey)): true}
	if mut == "reopen-new-cpu" {
		known[string(newFakeCPU(4).key.Public().(ed25519.PublicKey))] = true
	}
	if mut == "all-cpus-known" {
		known[string(x.key.Public().(ed25519.PublicKey))] = true
	}
	return teetest.Harness{
		Name:             "fake",
		New:              plat(a, m),
		OtherMeasurement: plat(a, m2),
		OtherCPU:         plat(b, m),
		Reopen:           reopen,
		UnknownCPU:       plat(x, m),
		Evidence:         func(_ *testing.T, q []byte) ([]byte, error) { return q, nil },
		Verifier:         fakeVerifier{known: known, maxAge: time.Hour, skew: time.Minute, mut: mut},
		IssuedAt:         at,
		MaxAge:           time.Hour,
		MaxClockSkew:     time.Minute,
	}
}

// TestFakePasses shows the fake platform is correct, so the mutations below
// fail for their mutation alone.
func TestFakePasses(t *testing.T) { teetest.Run(t, harness("")) }

// TestMutant is run in a subprocess by TestSuiteCatchesMutants.
func TestMutant(t *testing.T) {
	mut := os.Getenv("TEETEST_MUTANT")
	if mut == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	teetest.Run(t, harness(mut))
}

func TestSuiteCatchesMutants(t *testing.T) {
	for mut, subtest := range map[string]string{
		"name":                     "Name",
		"shared-measurement":       "MeasurementStable",
		"seal-ignores-measurement": "SealingKey",
		"reopen-new-cpu":           "SealingKey",
		"no-report-data":           "WrongReportData",
		"no-signature-check":       "FlippedByteRefused",
		"no-freshness":             "Freshness",
		"all-cpus-known":           "UnknownCPU",
	} {
		t.Run(mut, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$", "-test.v")
			cmd.Env = append(os.Environ(), "TEETEST_MUTANT="+mut)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passes a platform with mutation %q:\n%s", mut, out)
			}
			if want := "--- FAIL: TestMutant/" + subtest; !strings.Contains(string(out), want) {
				t.Fatalf("mutation %q: output lacks %q:\n%s", mut, want, out)
			}
		})
	}
}
