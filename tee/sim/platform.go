// Package sim is the simulated TEE platform: a CPU is a key pair and a
// sealing secret kept in a file, the measurement is the hash of the pRuntime
// build, and a quote is the CPU's signature over (measurement, report data).
// Quotes are checked by the simulated attestation service (package attest),
// whose signed reports are the evidence the chain verifies, as with Intel's
// IAS. It gives no protection at all: whoever runs the process can read the
// CPU file. See docs/tee.md.
package sim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
)

// PlatformName is the name of the simulated platform.
const PlatformName = "sim"

// sealInfo separates sealing keys from every other use of a CPU's secret.
const sealInfo = "phala/tee/sim/seal/v1"

type platform struct {
	cpu         *CPU
	measurement []byte
}

// New returns the simulated platform of cpu running the build measured by
// measurement (MeasurementSize bytes, from Measure or MeasureExecutable). It
// panics if cpu is nil or measurement has another length, which is a
// programming error.
func New(cpu *CPU, measurement []byte) tee.Platform {
	if cpu == nil {
		panic("sim.New: nil CPU")
	}
	if len(measurement) != MeasurementSize {
		panic(fmt.Sprintf("sim.New: measurement must be %d bytes, got %d", MeasurementSize, len(measurement)))
	}
	return &platform{cpu: cpu, measurement: bytes.Clone(measurement)}
}

func (p *platform) Name() string { return PlatformName }

func (p *platform) Measurement() []byte { return bytes.Clone(p.measurement) }

// Quote signs a SimQuote for reportData with the CPU's key.
func (p *platform) Quote(reportData [tee.ReportDataSize]byte) ([]byte, error) {
	q := &teepb.SimQuote{
		Version:     QuoteVersion,
		CpuKey:      p.cpu.key.Public().(ed25519.PublicKey),
		Measurement: p.measurement,
		ReportData:  reportData[:],
	}
	body, err := canonical.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("encode quote: %w", err)
	}
	q.Signature = ed25519.Sign(p.cpu.key, quoteMessage(body))
	return canonical.Marshal(q)
}

// SealingKey is HKDF-SHA256(CPU sealing secret, salt = measurement,
// info = "phala/tee/sim/seal/v1"), 32 bytes.
func (p *platform) SealingKey() ([]byte, error) {
	k, err := hkdf.Key(sha256.New, p.cpu.secret[:], p.measurement, sealInfo, tee.SealingKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive sealing key: %w", err)
	}
	return k, nil
}

var canonical = proto.MarshalOptions{Deterministic: true}
