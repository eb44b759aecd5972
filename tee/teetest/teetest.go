// Package teetest is the conformance suite every tee.Platform and its
// chain-side verification path must pass. A platform's tests build a
// Harness and call Run; see tee/sim/sim_test.go.
package teetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/phala-go/phala/tee"
)

// Harness describes a platform under test. Every function field is
// required except UnknownCPU.
type Harness struct {
	// Name is the platform's expected Name() and Attestation.Platform.
	Name string

	// New returns the platform under test: CPU A running build M. Each call
	// returns a platform for the same CPU and build.
	New func(t *testing.T) tee.Platform
	// OtherMeasurement returns CPU A running another build M'.
	OtherMeasurement func(t *testing.T) tee.Platform
	// OtherCPU returns another CPU B, known to the verification path,
	// running build M.
	OtherCPU func(t *testing.T) tee.Platform
	// Reopen returns CPU A running build M as after a restart: everything
	// reloaded from persistent state, nothing shared in memory with New.
	Reopen func(t *testing.T) tee.Platform
	// UnknownCPU returns a CPU the verification path does not know, running
	// build M; nil for a platform where that cannot happen.
	UnknownCPU func(t *testing.T) tee.Platform

	// Evidence turns a quote into the evidence the chain verifies: for sim,
	// a round trip through the attestation service; for a platform whose
	// quotes go on chain directly, the quote itself. Refusals must wrap a
	// tee sentinel error.
	Evidence func(t *testing.T, quote []byte) ([]byte, error)
	// Verifier is the chain-side verifier of that evidence.
	Verifier tee.Verifier
	// IssuedAt is the time the verification path stamps on evidence that
	// Evidence produces (for sim, the service's fixed test clock). The suite
	// verifies at times relative to it.
	IssuedAt time.Time
	// MaxAge and MaxClockSkew are the Verifier's freshness limits.
	MaxAge, MaxClockSkew time.Duration
}

// Verify runs the platform's full chain-side path on a quote: Evidence,
// then Verifier.Verify at now.
func (h Harness) Verify(t *testing.T, quote, reportData []byte, now time.Time) (*tee.Attestation, error) {
	t.Helper()
	ev, err := h.Evidence(t, quote)
	if err != nil {
		return nil, err
	}
	return h.Verifier.Verify(ev, reportData, now)
}

// sentinels are the errors every refusal must wrap.
var sentinels = []error{tee.ErrMalformed, tee.ErrSignature, tee.ErrStale, tee.ErrReportData, tee.ErrStatus, tee.ErrUnknownCPU}

func wrapsSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// reportData returns distinct report data for each seed.
func reportData(seed byte) [tee.ReportDataSize]byte {
	var rd [tee.ReportDataSize]byte
	for i := range rd {
		rd[i] = seed ^ byte(i*7)
	}
	return rd
}

func quote(t *testing.T, p tee.Platform, rd [tee.ReportDataSize]byte) []byte {
	t.Helper()
	q, err := p.Quote(rd)
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	if len(q) == 0 {
		t.Fatal("Quote returned no bytes")
	}
	return q
}

func sealingKey(t *testing.T, p tee.Platform) []byte {
	t.Helper()
	k, err := p.SealingKey()
	if err != nil {
		t.Fatalf("SealingKey: %v", err)
	}
	if len(k) != tee.SealingKeySize {
		t.Fatalf("sealing key is %d bytes, want %d", len(k), tee.SealingKeySize)
	}
	return k
}

// evidence gets evidence for a fresh quote of rd from p.
func evidence(t *testing.T, h Harness, p tee.Platform, rd [tee.ReportDataSize]byte) []byte {
	t.Helper()
	ev, err := h.Evidence(t, quote(t, p, rd))
	if err != nil {
		t.Fatalf("evidence for a genuine quote: %v", err)
	}
	return ev
}

// Run checks every property a platform must have.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.OtherMeasurement == nil || h.OtherCPU == nil || h.Reopen == nil || h.Evidence == nil || h.Verifier == nil {
		t.Fatal("teetest: Harness is missing a required field")
	}
	if h.IssuedAt.IsZero() || h.MaxAge <= 0 || h.MaxClockSkew < 0 {
		t.Fatal("teetest: Harness needs IssuedAt, a positive MaxAge and a non-negative MaxClockSkew")
	}
	now := h.IssuedAt.Add(time.Second)

	t.Run("Name", func(t *testing.T) {
		if got := h.New(t).Name(); got != h.Name {
			t.Fatalf("Name() = %q, want %q", got, h.Name)
		}
	})

	t.Run("MeasurementStable", func(t *testing.T) {
		p := h.New(t)
		m := p.Measurement()
		if len(m) == 0 {
			t.Fatal("empty measurement")
		}
		if !bytes.Equal(m, p.Measurement()) {
			t.Fatal("measurement changed between two calls")
		}
		if !bytes.Equal(m, h.New(t).Measurement()) {
			t.Fatal("measurement differs between two platforms for the same CPU and build")
		}
		if !bytes.Equal(m, h.Reopen(t).Measurement()) {
			t.Fatal("measurement changed across a restart")
		}
		if !bytes.Equal(m, h.OtherCPU(t).Measurement()) {
			t.Fatal("the same build measures differently on another CPU")
		}
		if bytes.Equal(m, h.OtherMeasurement(t).Measurement()) {
			t.Fatal("another build has the same measurement")
		}
		// The caller's copy is not the platform's state.
		m[0] ^= 0xff
		if bytes.Equal(m, p.Measurement()) {
			t.Fatal("modifying the returned measurement changed the platform's")
		}
	})

	t.Run("SealingKey", func(t *testing.T) {
		p := h.New(t)
		k := sealingKey(t, p)
		if bytes.Equal(k, make([]byte, len(k))) {
			t.Fatal("sealing key is all zeros")
		}
		if !bytes.Equal(k, sealingKey(t, p)) {
			t.Fatal("sealing key changed between two calls")
		}
		if !bytes.Equal(k, sealingKey(t, h.Reopen(t))) {
			t.Fatal("sealing key changed across a restart: sealed data would be lost")
		}
		if bytes.Equal(k, sealingKey(t, h.OtherMeasurement(t))) {
			t.Fatal("another build on the same CPU gets the same sealing key")
		}
		if bytes.Equal(k, sealingKey(t, h.OtherCPU(t))) {
			t.Fatal("the same build on another CPU gets the same sealing key")
		}
	})

	t.Run("QuoteVerifies", func(t *testing.T) {
		p := h.New(t)
		rd := reportData(1)
		att, err := h.Verify(t, quote(t, p, rd), rd[:], now)
		if err != nil {
			t.Fatalf("a genuine quote is refused: %v", err)
		}
		if att.Platform != h.Name {
			t.Errorf("Attestation.Platform = %q, want %q", att.Platform, h.Name)
		}
		if !bytes.Equal(att.Measurement, p.Measurement()) {
			t.Errorf("Attestation.Measurement = %x, want the platform's %x", att.Measurement, p.Measurement())
		}
		if att.Status == "" {
			t.Error("Attestation.Status is empty")
		}
		// The evidence of another build carries that build's measurement.
		o := h.OtherMeasurement(t)
		att2, err := h.Verify(t, quote(t, o, rd), rd[:], now)
		if err != nil {
			t.Fatalf("a genuine quote of another build is refused: %v", err)
		}
		if !bytes.Equal(att2.Measurement, o.Measurement()) || bytes.Equal(att2.Measurement, att.Measurement) {
			t.Errorf("another build's evidence yields measurement %x, want %x", att2.Measurement, o.Measurement())
		}
		// If the platform reveals a CPU identity, it identifies the CPU.
		if att.CPU != nil {
			ar, err := h.Verify(t, quote(t, h.Reopen(t), rd), rd[:], now)
			if err != nil {
				t.Fatalf("a quote after a restart is refused: %v", err)
			}
			if !bytes.Equal(ar.CPU, att.CPU) {
				t.Errorf("CPU identity changed across a restart: %x, then %x", att.CPU, ar.CPU)
			}
			ab, err := h.Verify(t, quote(t, h.OtherCPU(t), rd), rd[:], now)
			if err != nil {
				t.Fatalf("a quote from the other CPU is refused: %v", err)
			}
			if bytes.Equal(ab.CPU, att.CPU) {
				t.Errorf("two CPUs have the same identity %x", att.CPU)
			}
		}
	})

	t.Run("WrongReportData", func(t *testing.T) {
		p := h.New(t)
		rd, other := reportData(2), reportData(3)
		ev := evidence(t, h, p, rd)
		for name, want := range map[string][]byte{
			"other":     other[:],
			"one bit":   flip(rd[:], tee.ReportDataSize-1, 0x01),
			"truncated": rd[:tee.ReportDataSize-1],
			"empty":     nil,
		} {
			if _, err := h.Verifier.Verify(ev, want, now); !errors.Is(err, tee.ErrReportData) {
				t.Errorf("%s report data: got %v, want ErrReportData", name, err)
			}
		}
		if _, err := h.Verifier.Verify(ev, rd[:], now); err != nil {
			t.Fatalf("the same evidence with its own report data is refused: %v", err)
		}
	})

	t.Run("FlippedByteRefused", func(t *testing.T) {
		rd := reportData(4)
		ev := evidence(t, h, h.New(t), rd)
		if _, err := h.Verifier.Verify(ev, rd[:], now); err != nil {
			t.Fatalf("unmodified evidence is refused: %v", err)
		}
		for i := range ev {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				bad := flip(ev, i, mask)
				_, err := h.Verifier.Verify(bad, rd[:], now)
				if err == nil {
					t.Fatalf("evidence with byte %d xor %#02x is accepted", i, mask)
				}
				if !wrapsSentinel(err) {
					t.Fatalf("byte %d xor %#02x: refusal wraps no tee sentinel: %v", i, mask, err)
				}
			}
		}
		for _, bad := range [][]byte{nil, ev[:len(ev)-1], append(bytes.Clone(ev), 0)} {
			if _, err := h.Verifier.Verify(bad, rd[:], now); err == nil || !wrapsSentinel(err) {
				t.Fatalf("evidence of %d bytes (genuine: %d): got %v, want a sentinel refusal", len(bad), len(ev), err)
			}
		}
	})

	t.Run("Freshness", func(t *testing.T) {
		rd := reportData(5)
		ev := evidence(t, h, h.New(t), rd)
		for _, c := range []struct {
			name string
			at   time.Time
			ok   bool
		}{
			{"at issue", h.IssuedAt, true},
			{"just within max age", h.IssuedAt.Add(h.MaxAge - time.Second), true},
			{"at max age", h.IssuedAt.Add(h.MaxAge), true},
			{"past max age", h.IssuedAt.Add(h.MaxAge + time.Second), false},
			{"a year later", h.IssuedAt.AddDate(1, 0, 0), false},
			{"within clock skew", h.IssuedAt.Add(-h.MaxClockSkew), true},
			{"beyond clock skew", h.IssuedAt.Add(-h.MaxClockSkew - time.Second), false},
		} {
			_, err := h.Verifier.Verify(ev, rd[:], c.at)
			switch {
			case c.ok && err != nil:
				t.Errorf("%s: refused: %v", c.name, err)
			case !c.ok && !errors.Is(err, tee.ErrStale):
				t.Errorf("%s: got %v, want ErrStale", c.name, err)
			}
		}
	})

	t.Run("UnknownCPU", func(t *testing.T) {
		if h.UnknownCPU == nil {
			t.Skip("the platform has no notion of an unknown CPU")
		}
		rd := reportData(6)
		_, err := h.Verify(t, quote(t, h.UnknownCPU(t), rd), rd[:], now)
		if !errors.Is(err, tee.ErrUnknownCPU) {
			t.Fatalf("a quote from an unknown CPU: got %v, want ErrUnknownCPU", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		p := h.New(t)
		want := sealingKey(t, p)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rd := reportData(byte(100 + i))
				q, err := p.Quote(rd)
				if err != nil {
					errs <- err
					return
				}
				k, err := p.SealingKey()
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(k, want) {
					errs <- fmt.Errorf("goroutine %d got another sealing key", i)
					return
				}
				if len(q) == 0 {
					errs <- fmt.Errorf("goroutine %d got an empty quote", i)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func flip(b []byte, i int, mask byte) []byte {
	c := bytes.Clone(b)
	c[i] ^= mask
	return c
}
