package attest

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

// Defaults a zero Verifier field stands for. They are part of the protocol:
// a chain that relies on them changes consensus if they change, so chains
// should set both explicitly from their parameters.
const (
	DefaultMaxAge       = 24 * time.Hour
	DefaultMaxClockSkew = 5 * time.Minute
)

// Verifier is the chain-side verifier of sim evidence (a SignedReport). It
// implements tee.Verifier and is deterministic: its result depends only on
// its fields and Verify's arguments. It is safe for concurrent use as long
// as its fields are not modified.
type Verifier struct {
	// ServiceKeys are the attestation service keys the chain trusts (from
	// genesis). Evidence signed by any of them is accepted.
	ServiceKeys []ed25519.PublicKey
	// MaxAge is how long after its issue a report stays acceptable;
	// zero means DefaultMaxAge.
	MaxAge time.Duration
	// MaxClockSkew is how far after the block time a report may be dated
	// (the service's clock and the block time differ); zero means
	// DefaultMaxClockSkew.
	MaxClockSkew time.Duration
}

var _ tee.Verifier = Verifier{}

// Verify checks, in this order, that evidence is a canonically encoded
// SignedReport of a well-formed sim AttestationReport (else tee.ErrMalformed),
// signed by one of ServiceKeys (tee.ErrSignature), with status OK
// (tee.ErrStatus), issued no more than MaxAge before now and no more than
// MaxClockSkew after it (tee.ErrStale), committing to reportData
// (tee.ErrReportData). now is the block time. A misconfigured Verifier (a
// service key that is not 32 bytes, a negative duration) refuses everything
// with an error that matches none of the sentinels.
func (v Verifier) Verify(evidence []byte, reportData []byte, now time.Time) (*tee.Attestation, error) {
	maxAge, skew, err := v.limits()
	if err != nil {
		return nil, err
	}
	r, err := DecodeEvidence(evidence, v.ServiceKeys)
	if err != nil {
		return nil, err
	}
	if r.Status != StatusOK {
		return nil, fmt.Errorf("%w: report %s says %s for CPU %x: the attestation service does not vouch for this CPU", tee.ErrStatus, r.ID, r.Status, r.CPU)
	}
	if r.Timestamp.After(now.Add(skew)) {
		return nil, fmt.Errorf("%w: report %s was issued at %s, %s after the block time %s (allowed clock skew %s)",
			tee.ErrStale, r.ID, r.Timestamp.Format(time.RFC3339Nano), r.Timestamp.Sub(now), now.UTC().Format(time.RFC3339Nano), skew)
	}
	if age := now.Sub(r.Timestamp); age > maxAge {
		return nil, fmt.Errorf("%w: report %s was issued at %s, %s before the block time %s; the limit is %s: request a new report",
			tee.ErrStale, r.ID, r.Timestamp.Format(time.RFC3339Nano), age, now.UTC().Format(time.RFC3339Nano), maxAge)
	}
	if len(reportData) != tee.ReportDataSize || string(r.ReportData[:]) != string(reportData) {
		return nil, fmt.Errorf("%w: report %s commits to %x, expected %x", tee.ErrReportData, r.ID, r.ReportData, reportData)
	}
	return &tee.Attestation{
		Platform:    r.Platform,
		Measurement: r.Measurement,
		Status:      r.Status,
		ReportID:    r.ID,
		Timestamp:   r.Timestamp,
		CPU:         r.CPU,
	}, nil
}

func (v Verifier) limits() (maxAge, skew time.Duration, err error) {
	maxAge, skew = v.MaxAge, v.MaxClockSkew
	if maxAge < 0 || skew < 0 {
		return 0, 0, fmt.Errorf("attest verifier misconfigured: negative MaxAge %s or MaxClockSkew %s", maxAge, skew)
	}
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	if skew == 0 {
		skew = DefaultMaxClockSkew
	}
	for i, k := range v.ServiceKeys {
		if len(k) != ed25519.PublicKeySize {
			return 0, 0, fmt.Errorf("attest verifier misconfigured: service key %d is %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
	}
	return maxAge, skew, nil
}

// Report is a decoded AttestationReport whose signature has been checked.
type Report struct {
	ID        string
	Timestamp time.Time // UTC
	Status    string
	Platform  string
	// CPU is the public key of the simulated CPU that made the quote.
	CPU         ed25519.PublicKey
	Measurement []byte
	ReportData  [tee.ReportDataSize]byte
	// SignedBy is the service key (one of those given) that signed it.
	SignedBy ed25519.PublicKey
}

// DecodeEvidence decodes a SignedReport strictly and checks that one of
// serviceKeys (each 32 bytes) signed it. It does not check the status,
// freshness or report data: Verifier.Verify does. Errors wrap
// tee.ErrMalformed or tee.ErrSignature.
func DecodeEvidence(evidence []byte, serviceKeys []ed25519.PublicKey) (*Report, error) {
	if len(evidence) > MaxEvidenceSize {
		return nil, fmt.Errorf("%w: evidence is %d bytes, limit is %d", tee.ErrMalformed, len(evidence), MaxEvidenceSize)
	}
	var sr teepb.SignedReport
	if err := strictpb.Decode(evidence, &sr); err != nil {
		return nil, fmt.Errorf("%w: evidence is not a SignedReport: %v", tee.ErrMalformed, err)
	}
	if len(sr.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: report signature must be %d bytes, got %d", tee.ErrMalformed, ed25519.SignatureSize, len(sr.Signature))
	}
	r, err := decodeReport(sr.Report)
	if err != nil {
		return nil, err
	}
	msg := reportMessage(sr.Report)
	for _, k := range serviceKeys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sr.Signature) {
			r.SignedBy = k
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: report %s is not signed by any of the %d attestation service keys this chain trusts", tee.ErrSignature, r.ID, len(serviceKeys))
}

// decodeReport decodes and checks the shape of an AttestationReport.
func decodeReport(raw []byte) (*Report, error) {
	var ar teepb.AttestationReport
	if err := strictpb.Decode(raw, &ar); err != nil {
		return nil, fmt.Errorf("%w: report: %v", tee.ErrMalformed, err)
	}
	if ar.Version != ReportVersion {
		return nil, fmt.Errorf("%w: report version %d, this build reads version %d", tee.ErrMalformed, ar.Version, ReportVersion)
	}
	if !isReportID(ar.Id) {
		return nil, fmt.Errorf("%w: report id %q is not 32 lowercase hex digits", tee.ErrMalformed, ar.Id)
	}
	if ar.Timestamp <= 0 {
		return nil, fmt.Errorf("%w: report %s has timestamp %d, want positive Unix nanoseconds", tee.ErrMalformed, ar.Id, ar.Timestamp)
	}
	if ar.Status != StatusOK && ar.Status != StatusRevoked {
		return nil, fmt.Errorf("%w: report %s has status %q, want %q or %q", tee.ErrMalformed, ar.Id, ar.Status, StatusOK, StatusRevoked)
	}
	if ar.Platform != sim.PlatformName {
		return nil, fmt.Errorf("%w: report %s is for platform %q, this verifier handles %q", tee.ErrMalformed, ar.Id, ar.Platform, sim.PlatformName)
	}
	for _, f := range []struct {
		name string
		v    []byte
		size int
	}{
		{"cpu_key", ar.CpuKey, ed25519.PublicKeySize},
		{"measurement", ar.Measurement, sim.MeasurementSize},
		{"report_data", ar.ReportData, tee.ReportDataSize},
	} {
		if len(f.v) != f.size {
			return nil, fmt.Errorf("%w: report %s: %s must be %d bytes, got %d", tee.ErrMalformed, ar.Id, f.name, f.size, len(f.v))
		}
	}
	r := &Report{
		ID:          ar.Id,
		Timestamp:   time.Unix(0, ar.Timestamp).UTC(),
		Status:      ar.Status,
		Platform:    ar.Platform,
		CPU:         ar.CpuKey,
		Measurement: ar.Measurement,
	}
	copy(r.ReportData[:], ar.ReportData)
	return r, nil
}
