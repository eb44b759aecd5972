package sim

import (
	"crypto/ed25519"
	"fmt"

	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
)

const (
	// QuoteVersion is the only SimQuote version this package reads and writes.
	QuoteVersion = 1
	// MaxQuoteSize bounds an encoded quote; real ones are about 210 bytes.
	MaxQuoteSize = 1024
	// quoteDomain prefixes the signed bytes so a quote signature can never
	// be mistaken for a signature over anything else.
	quoteDomain = "phala/tee/sim/quote/v1\x00"
)

// Quote is a decoded SimQuote whose signature has been checked.
type Quote struct {
	// CPU is the public key of the simulated CPU that signed the quote.
	// VerifyQuote proves only that the holder of this key signed it; whether
	// the CPU is genuine is the attestation service's decision.
	CPU         ed25519.PublicKey
	Measurement []byte
	ReportData  [tee.ReportDataSize]byte
}

func quoteMessage(body []byte) []byte {
	return append([]byte(quoteDomain), body...)
}

// VerifyQuote decodes a quote made by a simulated platform and checks its
// signature against the CPU key it carries. It accepts only the canonical
// encoding (so quotes are not malleable) with every field of the right size.
// Errors wrap tee.ErrMalformed or tee.ErrSignature.
func VerifyQuote(raw []byte) (*Quote, error) {
	if len(raw) > MaxQuoteSize {
		return nil, fmt.Errorf("%w: quote is %d bytes, limit is %d", tee.ErrMalformed, len(raw), MaxQuoteSize)
	}
	var q teepb.SimQuote
	if err := strictpb.Decode(raw, &q); err != nil {
		return nil, fmt.Errorf("%w: quote: %v", tee.ErrMalformed, err)
	}
	if q.Version != QuoteVersion {
		return nil, fmt.Errorf("%w: quote version %d, this build reads version %d", tee.ErrMalformed, q.Version, QuoteVersion)
	}
	for _, f := range []struct {
		name string
		v    []byte
		size int
	}{
		{"cpu_key", q.CpuKey, ed25519.PublicKeySize},
		{"measurement", q.Measurement, MeasurementSize},
		{"report_data", q.ReportData, tee.ReportDataSize},
		{"signature", q.Signature, ed25519.SignatureSize},
	} {
		if len(f.v) != f.size {
			return nil, fmt.Errorf("%w: quote %s must be %d bytes, got %d", tee.ErrMalformed, f.name, f.size, len(f.v))
		}
	}
	sig := q.Signature
	q.Signature = nil
	body, err := canonical.Marshal(&q)
	if err != nil {
		return nil, fmt.Errorf("%w: quote: %v", tee.ErrMalformed, err)
	}
	if !ed25519.Verify(q.CpuKey, quoteMessage(body), sig) {
		return nil, fmt.Errorf("%w: quote signature does not verify under the CPU key %x it names", tee.ErrSignature, q.CpuKey)
	}
	out := &Quote{CPU: q.CpuKey, Measurement: q.Measurement}
	copy(out.ReportData[:], q.ReportData)
	return out, nil
}
