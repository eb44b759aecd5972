package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

// Error codes in the service's JSON error responses. Client maps the first
// four to the tee sentinel errors.
const (
	CodeMalformed    = "malformed"     // 400: the request or the quote cannot be decoded (tee.ErrMalformed)
	CodeTooLarge     = "too_large"     // 413: the request body exceeds the limit (tee.ErrMalformed)
	CodeBadSignature = "bad_signature" // 403: the quote's signature does not verify (tee.ErrSignature)
	CodeUnknownCPU   = "unknown_cpu"   // 403: the quote is from a CPU the service does not know (tee.ErrUnknownCPU)
	CodeNotFound     = "not_found"     // 404: no such endpoint
	CodeMethod       = "method_not_allowed"
	CodeInternal     = "internal" // 500
)

// DefaultMaxBodyBytes is ServiceConfig.MaxBodyBytes's default.
const DefaultMaxBodyBytes = 16 << 10

// ServiceConfig configures a Service. Zero fields take the documented
// defaults; SigningKey is required.
type ServiceConfig struct {
	// SigningKey signs every report. Its public key is what chains trust.
	SigningKey ed25519.PrivateKey
	// KnownCPUs are the simulated CPUs (sim.CPU.PublicKey) the service
	// vouches for. Quotes from other CPUs are refused with unknown_cpu.
	KnownCPUs []ed25519.PublicKey
	// RevokedCPUs get reports with status REVOKED. A revoked CPU counts as
	// known whether or not it is also in KnownCPUs.
	RevokedCPUs []ed25519.PublicKey
	// Clock stamps reports; default time.Now.
	Clock func() time.Time
	// MaxBodyBytes bounds a request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// Service is the simulated attestation service, an http.Handler:
//
//	POST /v1/report  {"quote":"<base64 SimQuote>"}
//	  200 {"evidence":"<base64 SignedReport>","id":"<hex>","status":"OK"|"REVOKED","timestamp":"<RFC 3339>"}
//	  400/413/403 {"error":"<what is wrong>","code":"malformed"|"too_large"|"bad_signature"|"unknown_cpu"}
//	GET /v1/info
//	  200 {"public_key":"<base64>","public_key_hex":"<hex>","platform":"sim"}
//
// It keeps no state between requests and is safe for concurrent use.
type Service struct {
	key      ed25519.PrivateKey
	pub      ed25519.PublicKey
	known    map[[32]byte]bool
	revoked  map[[32]byte]bool
	clock    func() time.Time
	maxBody  int64
	infoJSON []byte
	// random supplies report ids; crypto/rand.Reader except in tests.
	random io.Reader
}

// NewService checks cfg and returns the service it describes.
func NewService(cfg ServiceConfig) (*Service, error) {
	if len(cfg.SigningKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("attestation service: signing key must be a %d-byte ed25519 private key, got %d bytes (see attest.LoadOrCreateKey)", ed25519.PrivateKeySize, len(cfg.SigningKey))
	}
	s := &Service{
		key:     cfg.SigningKey,
		pub:     cfg.SigningKey.Public().(ed25519.PublicKey),
		known:   map[[32]byte]bool{},
		revoked: map[[32]byte]bool{},
		clock:   cfg.Clock,
		maxBody: cfg.MaxBodyBytes,
		random:  rand.Reader,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	for _, set := range []struct {
		name string
		keys []ed25519.PublicKey
		into map[[32]byte]bool
	}{{"KnownCPUs", cfg.KnownCPUs, s.known}, {"RevokedCPUs", cfg.RevokedCPUs, s.revoked}} {
		for i, k := range set.keys {
			if len(k) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("attestation service: %s[%d] is %d bytes, want a %d-byte ed25519 public key", set.name, i, len(k), ed25519.PublicKeySize)
			}
			set.into[[32]byte(k)] = true
		}
	}
	s.infoJSON, _ = json.Marshal(infoResponse{
		PublicKey:    base64.StdEncoding.EncodeToString(s.pub),
		PublicKeyHex: hex.EncodeToString(s.pub),
		Platform:     sim.PlatformName,
	})
	return s, nil
}

// PublicKey is the key chains must trust (Verifier.ServiceKeys).
func (s *Service) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), s.pub...) }

type reportRequest struct {
	Quote string `json:"quote"`
}

type reportResponse struct {
	Evidence  string `json:"evidence"`
	ID        string `json:"id"`
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
}

type errorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

type infoResponse struct {
	PublicKey    string `json:"public_key"`
	PublicKeyHex string `json:"public_key_hex"`
	Platform     string `json:"platform"`
}

// ServeHTTP serves the endpoints listed on Service.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/report":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, CodeMethod, fmt.Sprintf("%s /v1/report: use POST", r.Method))
			return
		}
		s.serveReport(w, r)
	case "/v1/info":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, CodeMethod, fmt.Sprintf("%s /v1/info: use GET", r.Method))
			return
		}
		writeJSON(w, http.StatusOK, s.infoJSON)
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %q: this service serves POST /v1/report and GET /v1/info", r.URL.Path))
	}
}

func (s *Service) serveReport(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body over the %d-byte limit", s.maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, CodeMalformed, fmt.Sprintf("reading request body: %v", err))
		return
	}
	quote, err := parseReportRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeMalformed, err.Error())
		return
	}
	evidence, rep, err := s.report(quote)
	if err != nil {
		switch {
		case errors.Is(err, tee.ErrMalformed):
			writeError(w, http.StatusBadRequest, CodeMalformed, err.Error())
		case errors.Is(err, tee.ErrSignature):
			writeError(w, http.StatusForbidden, CodeBadSignature, err.Error())
		case errors.Is(err, tee.ErrUnknownCPU):
			writeError(w, http.StatusForbidden, CodeUnknownCPU, err.Error())
		default:
			writeError(w, http.StatusInternalServerError, CodeInternal, "the service could not sign the report")
		}
		return
	}
	out, _ := json.Marshal(reportResponse{
		Evidence:  base64.StdEncoding.EncodeToString(evidence),
		ID:        rep.Id,
		Status:    rep.Status,
		Timestamp: time.Unix(0, rep.Timestamp).UTC().Format(time.RFC3339Nano),
	})
	writeJSON(w, http.StatusOK, out)
}

// parseReportRequest accepts exactly one JSON object {"quote": "<standard
// base64>"} with a non-empty quote and nothing else.
func parseReportRequest(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req reportRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf(`request body must be a JSON object {"quote":"<base64>"}: %v`, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("request body has data after the JSON object")
	}
	if req.Quote == "" {
		return nil, errors.New(`request has no "quote"`)
	}
	quote, err := base64.StdEncoding.Strict().DecodeString(req.Quote)
	if err != nil {
		return nil, fmt.Errorf(`"quote" is not standard padded base64: %v`, err)
	}
	return quote, nil
}

// report checks a quote and returns the signed report for it. Errors wrap
// tee.ErrMalformed, tee.ErrSignature or tee.ErrUnknownCPU.
func (s *Service) report(quote []byte) ([]byte, *teepb.AttestationReport, error) {
	q, err := sim.VerifyQuote(quote)
	if err != nil {
		return nil, nil, err
	}
	cpu := [32]byte(q.CPU)
	status := StatusOK
	switch {
	case s.revoked[cpu]:
		status = StatusRevoked
	case !s.known[cpu]:
		return nil, nil, fmt.Errorf("%w: CPU %x is not known to this attestation service (its operator must add it to the known CPUs)", tee.ErrUnknownCPU, q.CPU)
	}
	var id [16]byte
	if _, err := io.ReadFull(s.random, id[:]); err != nil {
		return nil, nil, fmt.Errorf("report id: %w", err)
	}
	ts := s.clock().UnixNano()
	if ts <= 0 {
		return nil, nil, fmt.Errorf("service clock reads %d ns since the Unix epoch, want positive", ts)
	}
	rep := &teepb.AttestationReport{
		Version:     ReportVersion,
		Id:          hex.EncodeToString(id[:]),
		Timestamp:   ts,
		Status:      status,
		Platform:    sim.PlatformName,
		CpuKey:      q.CPU,
		Measurement: q.Measurement,
		ReportData:  q.ReportData[:],
	}
	raw, err := canonical.Marshal(rep)
	if err != nil {
		return nil, nil, err
	}
	evidence, err := canonical.Marshal(&teepb.SignedReport{
		Report:    raw,
		Signature: ed25519.Sign(s.key, reportMessage(raw)),
	})
	if err != nil {
		return nil, nil, err
	}
	return evidence, rep, nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(errorResponse{Error: msg, Code: code})
	writeJSON(w, status, body)
}
