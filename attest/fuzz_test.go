package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode"

	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

var sentinels = []error{tee.ErrMalformed, tee.ErrSignature, tee.ErrStale, tee.ErrReportData, tee.ErrStatus, tee.ErrUnknownCPU}

func wrapsSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzVerifyEvidence feeds arbitrary bytes to the chain-side verifier, which
// sees whatever a worker submits. It must never panic, must refuse with a
// tee sentinel, and can accept only evidence the service actually issued:
// nobody can forge, re-encode or edit a report.
func FuzzVerifyEvidence(f *testing.F) {
	fx := newFixture(f)
	rd := rdOf(7)
	genuine := evidenceFor(f, fx, fx.known, rd)
	revoked := evidenceFor(f, fx, fx.revoked, rd)
	other := evidenceFor(f, fx, fx.known, rdOf(8))
	for _, s := range [][]byte{genuine, revoked, other, genuine[:len(genuine)-1], {}, {0x0a, 0x00}, {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		att, err := fx.v.Verify(ev, rd[:], testTime)
		if err != nil {
			if !wrapsSentinel(err) {
				t.Fatalf("refusal wraps no tee sentinel: %v", err)
			}
			return
		}
		if !bytes.Equal(ev, genuine) {
			t.Fatalf("accepted evidence the service never issued: %x", ev)
		}
		if att.Platform != "sim" || att.Status != StatusOK {
			t.Fatalf("accepted %+v", att)
		}
	})
}

// FuzzServeReport posts arbitrary bodies to the service. It must never
// panic or fail internally, must answer every refusal with a JSON error and
// a known code, and may answer 200 only to a genuine quote from a CPU it
// knows, with evidence that verifies.
func FuzzServeReport(f *testing.F) {
	fx := newFixture(f)
	rd := rdOf(9)
	for _, p := range []tee.Platform{fx.known, fx.revoked, fx.unknown} {
		f.Add([]byte(quoteBody(mustQuote(f, p, rd))))
	}
	q := mustQuote(f, fx.known, rd)
	q[len(q)-1] ^= 1
	f.Add([]byte(quoteBody(q)))
	for _, s := range []string{"", "{}", `{"quote":""}`, `{"quote":"AA=="}`, `{"quote":"CAE="}`, `[]`, `null`, `{"quote":null}`} {
		f.Add([]byte(s))
	}
	codes := map[int]map[string]bool{
		400: {CodeMalformed: true},
		403: {CodeUnknownCPU: true, CodeBadSignature: true},
		413: {CodeTooLarge: true},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		fx.svc.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/report", bytes.NewReader(body)))
		if w.Code != http.StatusOK {
			var e errorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d with a body that is not a JSON error: %q", w.Code, w.Body)
			}
			if !codes[w.Code][e.Code] {
				t.Fatalf("status %d with code %q", w.Code, e.Code)
			}
			return
		}
		quote, err := parseReportRequest(body)
		if err != nil {
			t.Fatalf("200 for a request the parser refuses: %v", err)
		}
		got, err := sim.VerifyQuote(quote)
		if err != nil {
			t.Fatalf("200 for a quote that does not verify: %v", err)
		}
		if !fx.svc.known[[32]byte(got.CPU)] && !fx.svc.revoked[[32]byte(got.CPU)] {
			t.Fatalf("200 for unknown CPU %x", got.CPU)
		}
		var resp reportResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		ev, err := base64.StdEncoding.DecodeString(resp.Evidence)
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeEvidence(ev, fx.v.ServiceKeys)
		if err != nil || r.ReportData != got.ReportData || !bytes.Equal(r.CPU, got.CPU) || r.ID != resp.ID || r.Status != resp.Status {
			t.Fatalf("evidence does not match the quote: %+v, %v", r, err)
		}
	})
}

// FuzzClientResponse feeds arbitrary service responses to the client's
// parser: it must never panic, must turn every non-200 into a RefusedError
// without control characters, and must return evidence only within bounds.
func FuzzClientResponse(f *testing.F) {
	f.Add(200, []byte(`{"evidence":"AAAA","id":"x","status":"OK"}`))
	f.Add(403, []byte(`{"error":"no","code":"unknown_cpu"}`))
	f.Add(400, []byte("\x1b[2J"))
	f.Add(200, []byte(`{"evidence":""}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		ev, err := parseReportResponse(status, body)
		if status != http.StatusOK {
			var re *RefusedError
			if !errors.As(err, &re) || ev != nil {
				t.Fatalf("status %d: got %v", status, err)
			}
			for _, r := range err.Error() {
				if !unicode.IsPrint(r) {
					t.Fatalf("unprintable %q in %q", r, err)
				}
			}
			return
		}
		if err == nil && (len(ev) == 0 || len(ev) > MaxEvidenceSize) {
			t.Fatalf("accepted %d bytes of evidence", len(ev))
		}
	})
}
