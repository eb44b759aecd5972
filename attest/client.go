package attest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/phala-go/phala/tee"
)

// maxResponseBytes bounds what the client reads from a service.
const maxResponseBytes = 64 << 10

// Client asks an attestation service for reports.
type Client struct {
	// URL is the service's base URL, e.g. "http://127.0.0.1:26690".
	URL string
	// HTTP is the client to use; nil means http.DefaultClient. Set a timeout
	// on it, or pass a context with a deadline.
	HTTP *http.Client
}

// RefusedError is the service's refusal of a request. errors.Is matches it
// against the tee sentinel its Code stands for (unknown_cpu →
// tee.ErrUnknownCPU, bad_signature → tee.ErrSignature, malformed and
// too_large → tee.ErrMalformed).
type RefusedError struct {
	StatusCode int    // HTTP status
	Code       string // the service's error code; empty if the response had none
	Message    string // the service's explanation
}

func (e *RefusedError) Error() string {
	code := e.Code
	if code == "" {
		code = "no code"
	}
	return fmt.Sprintf("attestation service refused the request (HTTP %d, %s): %s", e.StatusCode, code, e.Message)
}

// Unwrap returns the tee sentinel for e.Code, or nil.
func (e *RefusedError) Unwrap() error {
	switch e.Code {
	case CodeUnknownCPU:
		return tee.ErrUnknownCPU
	case CodeBadSignature:
		return tee.ErrSignature
	case CodeMalformed, CodeTooLarge:
		return tee.ErrMalformed
	}
	return nil
}

// Report sends quote (from a sim platform's Quote) to the service and
// returns the evidence to put on chain: a serialized SignedReport. A refusal
// is a *RefusedError; a report with status REVOKED is returned like any
// other, and the chain will refuse it.
func (c *Client) Report(ctx context.Context, quote []byte) ([]byte, error) {
	body, _ := json.Marshal(reportRequest{Quote: base64.StdEncoding.EncodeToString(quote)})
	status, resp, err := c.do(ctx, http.MethodPost, "/v1/report", body)
	if err != nil {
		return nil, err
	}
	return parseReportResponse(status, resp)
}

// Info returns the service's public key, which a chain's genesis lists
// among the trusted service keys.
func (c *Client) Info(ctx context.Context) (ed25519.PublicKey, error) {
	status, resp, err := c.do(ctx, http.MethodGet, "/v1/info", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, refusal(status, resp)
	}
	var info infoResponse
	if err := json.Unmarshal(resp, &info); err != nil {
		return nil, fmt.Errorf("attestation service sent an unreadable /v1/info response: %v", err)
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(info.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("attestation service sent public key %q, want base64 of %d bytes", info.PublicKey, ed25519.PublicKeySize)
	}
	return pub, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	if c.URL == "" {
		return 0, nil, fmt.Errorf("attestation client: no service URL configured")
	}
	url := strings.TrimRight(c.URL, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("attestation client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("attestation service at %s: %w (is it running?)", c.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("attestation service at %s: reading response: %w", c.URL, err)
	}
	if len(data) > maxResponseBytes {
		return 0, nil, fmt.Errorf("attestation service at %s: response over %d bytes", c.URL, maxResponseBytes)
	}
	return resp.StatusCode, data, nil
}

// parseReportResponse turns a /v1/report response into evidence or an error.
func parseReportResponse(status int, body []byte) ([]byte, error) {
	if status != http.StatusOK {
		return nil, refusal(status, body)
	}
	var r reportResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("attestation service sent an unreadable report response: %v", err)
	}
	evidence, err := base64.StdEncoding.Strict().DecodeString(r.Evidence)
	if err != nil {
		return nil, fmt.Errorf("attestation service sent evidence that is not base64: %v", err)
	}
	if len(evidence) == 0 || len(evidence) > MaxEvidenceSize {
		return nil, fmt.Errorf("attestation service sent %d bytes of evidence, want 1 to %d", len(evidence), MaxEvidenceSize)
	}
	return evidence, nil
}

// refusal builds the RefusedError for a non-200 response.
func refusal(status int, body []byte) error {
	var e errorResponse
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &RefusedError{StatusCode: status, Code: printable(e.Code, 64), Message: printable(e.Error, 1024)}
	}
	return &RefusedError{StatusCode: status, Message: printable(string(body), 200)}
}

// printable trims s to at most n bytes of printable characters, so a
// hostile service cannot write control sequences into a terminal or log.
func printable(s string, n int) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
