// Package attest is the simulated Remote Attestation Service for the sim TEE
// platform, modelled on Intel's IAS: a Service (an http.Handler) checks
// quotes from simulated CPUs it knows and returns signed, timestamped
// reports; a Client asks it for one; a Verifier checks a report on chain.
//
// The evidence a worker submits to the chain is a serialized SignedReport
// (proto/phala/tee/v1/attest.proto). The chain trusts the service's public
// key from genesis and nothing else about it. See docs/tee.md.
package attest

import (
	"google.golang.org/protobuf/proto"
)

// Report statuses.
const (
	// StatusOK: the CPU is known and in good standing.
	StatusOK = "OK"
	// StatusRevoked: the CPU is known but revoked (IAS's GROUP_REVOKED). The
	// service still signs the report, so a worker learns why it is refused;
	// verifiers refuse it with tee.ErrStatus.
	StatusRevoked = "REVOKED"
)

const (
	// ReportVersion is the only AttestationReport version this package reads
	// and writes.
	ReportVersion = 1
	// MaxEvidenceSize bounds an encoded SignedReport; real ones are about
	// 300 bytes.
	MaxEvidenceSize = 2048
	// reportDomain prefixes the signed bytes so a report signature can never
	// be mistaken for a signature over anything else.
	reportDomain = "phala/attest/report/v1\x00"
	// reportIDLen is the length of a report id: 16 bytes in lowercase hex.
	reportIDLen = 32
)

func reportMessage(report []byte) []byte {
	return append([]byte(reportDomain), report...)
}

// canonical encodes reports and evidence the one way strictpb.Decode accepts.
var canonical = proto.MarshalOptions{Deterministic: true}

// isReportID reports whether s is 32 lowercase hex digits.
func isReportID(s string) bool {
	if len(s) != reportIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
