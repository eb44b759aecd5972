// Package tee abstracts trusted execution environments. A Platform is the
// worker side (the pRuntime asks its CPU for a measurement, a quote and a
// sealing key); a Verifier is the chain side (it turns evidence into an
// Attestation, deterministically, inside consensus).
//
// Platforms: tee/sim (a simulated CPU, with the IAS-like service in attest).
// Every platform must pass the conformance suite in tee/teetest.
package tee

import (
	"errors"
	"time"
)

// ReportDataSize is the number of bytes a quote binds: the enclave's
// commitment (for a worker, a hash of its identity keys, operator account
// and the chain's genesis hash).
const ReportDataSize = 64

// SealingKeySize is the length of every platform's sealing key.
const SealingKeySize = 32

// Platform is the worker side of a TEE. It is safe for concurrent use.
type Platform interface {
	// Name is the platform's name as it appears in Attestation.Platform:
	// "sim" (later "tdx", "sev-snp").
	Name() string
	// Measurement identifies the pRuntime build running inside. It is the
	// same on every call and after a restart of the same build. It returns
	// a copy the caller may modify.
	Measurement() []byte
	// Quote returns evidence, signed by this CPU, that the build with this
	// Measurement committed to reportData. Depending on the platform the
	// evidence goes to the chain directly or through an attestation service
	// first (sim: attest.Client.Report).
	Quote(reportData [ReportDataSize]byte) ([]byte, error)
	// SealingKey returns SealingKeySize bytes unique to (this CPU, this
	// measurement): the same after a restart, different for another build or
	// another CPU. Data sealed with it can be opened only by the same build
	// on the same CPU.
	SealingKey() ([]byte, error)
}

// Verifier is the chain side of a TEE platform. Verify must be deterministic
// because it runs in consensus: no I/O, no clock, no randomness; now is the
// block time. It returns an Attestation only for evidence that is
// well-formed, signed by a key the chain trusts, in good standing, fresh at
// now, and that commits to exactly reportData. Every refusal wraps one of
// the sentinel errors below (test with errors.Is) and names the offending
// value.
type Verifier interface {
	Verify(evidence []byte, reportData []byte, now time.Time) (*Attestation, error)
}

// Attestation is what a Verifier established about a piece of evidence.
type Attestation struct {
	// Platform is the platform's name, e.g. "sim".
	Platform string
	// Measurement identifies the build that produced the evidence; the chain
	// checks it against its allowlist.
	Measurement []byte
	// Status is the platform's verdict on the hardware, e.g. "OK".
	Status string
	// ReportID identifies the report or quote, for logs and deduplication.
	ReportID string
	// Timestamp is when the evidence was issued (UTC).
	Timestamp time.Time
	// CPU is the platform-specific hardware identity (sim: the CPU's quote
	// key); nil if the platform does not reveal one.
	CPU []byte
}

// Refusal reasons. Verifiers (and attestation service clients) wrap exactly
// one of them with %w and a message naming the offending value.
var (
	// ErrMalformed: the evidence (or quote) cannot be decoded, is not in its
	// canonical encoding, or a field has the wrong size or value.
	ErrMalformed = errors.New("malformed attestation evidence")
	// ErrSignature: the evidence is not signed by a key the verifier trusts,
	// or its signature does not verify.
	ErrSignature = errors.New("attestation evidence not signed by a trusted key")
	// ErrStale: the evidence is older than the verifier's maximum age, or
	// dated after the block time by more than the allowed clock skew.
	ErrStale = errors.New("attestation evidence is stale or from the future")
	// ErrReportData: the evidence commits to other report data than expected.
	ErrReportData = errors.New("attestation evidence commits to other report data")
	// ErrStatus: the evidence is genuine but the hardware is not in good
	// standing (for example a revoked CPU).
	ErrStatus = errors.New("attestation status is not OK")
	// ErrUnknownCPU: the CPU is not one the verifier (or attestation
	// service) knows.
	ErrUnknownCPU = errors.New("unknown CPU")
)
