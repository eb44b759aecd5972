// Package registry keeps the workers the chain trusts: identities whose TEE
// attestation the chain verified (paper section 4.2). A registration binds a
// pRuntime's identity keys to its operator account and to this chain; it
// expires, and renewal means a new identity with a fresh attestation.
package registry

import (
	"fmt"

	"github.com/phala-go/phala/chain/errs"
)

// Codespace of the errors below.
const Codespace = "registry"

// Stable rejection codes. Never renumber.
var (
	ErrMalformed         = errs.Register(Codespace, 2, "malformed registration")
	ErrNotOperator       = errs.Register(Codespace, 3, "signer is not the worker's operator")
	ErrWrongChain        = errs.Register(Codespace, 4, "registration is for another chain")
	ErrUnknownPlatform   = errs.Register(Codespace, 5, "unknown TEE platform")
	ErrBadEvidence       = errs.Register(Codespace, 6, "attestation evidence is invalid")
	ErrStaleReport       = errs.Register(Codespace, 7, "attestation report is not fresh")
	ErrReportData        = errs.Register(Codespace, 8, "attestation does not commit to this registration")
	ErrMeasurement       = errs.Register(Codespace, 9, "pRuntime measurement is not allowed")
	ErrAlreadyRegistered = errs.Register(Codespace, 10, "identity already registered")
	ErrReportReused      = errs.Register(Codespace, 11, "attestation report already used")
	ErrTEEStatus         = errs.Register(Codespace, 12, "TEE status is not OK")
	// Code 13 is retired: the allowlist changes by referendum
	// (chain/governance), not by a privileged account. Kept registered so
	// the code is never given another meaning.
	_                = errs.Register(Codespace, 13, "signer is not the governance account")
	ErrUnknownWorker = errs.Register(Codespace, 14, "unknown worker")
	ErrExpired       = errs.Register(Codespace, 15, "worker registration expired")
	ErrRetired       = errs.Register(Codespace, 16, "worker retired")
	ErrRenewal       = errs.Register(Codespace, 17, "invalid identity renewal")
	ErrRenewed       = errs.Register(Codespace, 18, "worker identity renewed")
	ErrSeated        = errs.Register(Codespace, 19, "worker holds a gatekeeper seat")
	ErrFrozen        = errs.Register(Codespace, 20, "TEE platform frozen by referendum")
)

const (
	// MaxEndpointBytes bounds WorkerInfo.endpoint.
	MaxEndpointBytes = 256
	// MaxEvidenceBytes bounds MsgRegisterWorker.evidence.
	MaxEvidenceBytes = 64 << 10
	// MaxMeasurementBytes bounds a measurement.
	MaxMeasurementBytes = 64
	// MaxPlatformBytes bounds a TEE platform name.
	MaxPlatformBytes = 32
)

// Params are the registry's chain parameters.
type Params struct {
	// AttestationServices are the ed25519 keys (hex) of the remote
	// attestation services whose reports the "sim" platform trusts.
	AttestationServices []string `json:"attestation_services"`
	// RegistrationTTL is how long a registration lasts, in seconds of block time.
	RegistrationTTL int64 `json:"registration_ttl_seconds"`
	// MaxReportAge is how old an attestation report may be at registration.
	MaxReportAge int64 `json:"max_report_age_seconds"`
	// MaxClockSkew is how far in the future of block time a report may be dated.
	MaxClockSkew int64 `json:"max_clock_skew_seconds"`
}

// DefaultParams: registrations last 30 days, reports must be under 10
// minutes old.
func DefaultParams() Params {
	return Params{RegistrationTTL: 30 * 24 * 3600, MaxReportAge: 600, MaxClockSkew: 30}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if _, err := p.ServiceKeys(); err != nil {
		return err
	}
	if p.RegistrationTTL <= 0 || p.MaxReportAge <= 0 || p.MaxClockSkew < 0 {
		return fmt.Errorf("registry: registration_ttl_seconds and max_report_age_seconds must be positive, max_clock_skew_seconds not negative (got %d, %d, %d)", p.RegistrationTTL, p.MaxReportAge, p.MaxClockSkew)
	}
	return nil
}

// Measurement is an allowlisted pRuntime build.
type Measurement struct {
	Platform    string `json:"platform"`
	Measurement string `json:"measurement"` // hex
}

// GenesisWorker is the genesis node's worker, registered by the genesis
// file itself (it exists before any attestation can be checked on chain).
type GenesisWorker struct {
	SigningKey []byte `json:"signing_key"`
	HPKEKey    []byte `json:"hpke_key"`
	Endpoint   string `json:"endpoint,omitempty"`
}

// Genesis is the registry's genesis state.
type Genesis struct {
	Params        Params         `json:"params"`
	Measurements  []Measurement  `json:"measurements"`
	GenesisWorker *GenesisWorker `json:"genesis_worker,omitempty"`
}
