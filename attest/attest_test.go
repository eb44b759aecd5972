package attest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/teepb"
	"github.com/phala-go/phala/tee"
	"github.com/phala-go/phala/tee/sim"
)

var testTime = time.Date(2030, 6, 1, 12, 0, 0, 123456789, time.UTC)

type fixture struct {
	svc     *Service
	key     ed25519.PrivateKey
	known   tee.Platform // a known CPU
	revoked tee.Platform // a revoked CPU
	unknown tee.Platform // a CPU the service does not know
	v       Verifier
}

func testKey(b byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32))
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	// Deterministic CPUs and report ids, so that fuzz workers (separate
	// processes) build the same fixture.
	open := func(b byte) *sim.CPU {
		dir := t.TempDir()
		seed := bytes.Repeat([]byte{b}, 32)
		file, _ := json.Marshal(map[string]any{
			"version":        1,
			"quote_key_seed": hex.EncodeToString(seed),
			"public_key":     hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)),
			"sealing_secret": hex.EncodeToString(bytes.Repeat([]byte{b + 1}, 32)),
		})
		if err := os.WriteFile(filepath.Join(dir, sim.CPUFile), file, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := sim.OpenCPU(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, r, x := open(1), open(2), open(3)
	m := sim.Measure([]byte("pruntime"))
	key := testKey(5)
	svc, err := NewService(ServiceConfig{
		SigningKey:  key,
		KnownCPUs:   []ed25519.PublicKey{a.PublicKey()},
		RevokedCPUs: []ed25519.PublicKey{r.PublicKey()},
		Clock:       func() time.Time { return testTime },
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.random = &counterReader{}
	return &fixture{
		svc: svc, key: key,
		known: sim.New(a, m), revoked: sim.New(r, m), unknown: sim.New(x, m),
		v: Verifier{ServiceKeys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, MaxAge: time.Hour, MaxClockSkew: time.Minute},
	}
}

// counterReader yields 0, 1, 2, ... as bytes: distinct, reproducible ids.
type counterReader struct{ n byte }

func (c *counterReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func rdOf(b byte) [tee.ReportDataSize]byte {
	var rd [tee.ReportDataSize]byte
	for i := range rd {
		rd[i] = b + byte(i)
	}
	return rd
}

func mustQuote(t testing.TB, p tee.Platform, rd [tee.ReportDataSize]byte) []byte {
	t.Helper()
	q, err := p.Quote(rd)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func post(h http.Handler, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/report", strings.NewReader(body)))
	return w
}

func quoteBody(q []byte) string {
	return `{"quote":"` + base64.StdEncoding.EncodeToString(q) + `"}`
}

func decodeError(t *testing.T, w *httptest.ResponseRecorder) errorResponse {
	t.Helper()
	var e errorResponse
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error response is not JSON: %q", w.Body.String())
	}
	if e.Error == "" || e.Code == "" {
		t.Fatalf("error response lacks error or code: %q", w.Body.String())
	}
	return e
}

func TestServiceIssuesVerifiableReport(t *testing.T) {
	f := newFixture(t)
	rd := rdOf(1)
	w := post(f.svc, quoteBody(mustQuote(t, f.known, rd)))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var resp reportResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	ev, err := base64.StdEncoding.DecodeString(resp.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	att, err := f.v.Verify(ev, rd[:], testTime.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if att.Platform != "sim" || att.Status != StatusOK || att.ReportID != resp.ID || resp.Status != StatusOK ||
		!att.Timestamp.Equal(testTime) || !bytes.Equal(att.Measurement, f.known.Measurement()) {
		t.Fatalf("attestation %+v does not match response %+v", att, resp)
	}
	if !isReportID(resp.ID) {
		t.Fatalf("report id %q", resp.ID)
	}
	if resp.Timestamp != testTime.Format(time.RFC3339Nano) {
		t.Fatalf("timestamp %q", resp.Timestamp)
	}
	// Report ids are unique.
	w2 := post(f.svc, quoteBody(mustQuote(t, f.known, rd)))
	var resp2 reportResponse
	json.Unmarshal(w2.Body.Bytes(), &resp2)
	if resp2.ID == resp.ID {
		t.Fatal("two reports share an id")
	}
}

func TestServiceRefusals(t *testing.T) {
	f := newFixture(t)
	q := mustQuote(t, f.known, rdOf(2))
	badSig := bytes.Clone(q)
	badSig[len(badSig)-1] ^= 1
	for name, c := range map[string]struct {
		body   string
		status int
		code   string
		says   string
	}{
		"unknown CPU":      {quoteBody(mustQuote(t, f.unknown, rdOf(2))), 403, CodeUnknownCPU, hex.EncodeToString(f.unknownKey(t))},
		"bad signature":    {quoteBody(badSig), 403, CodeBadSignature, "signature"},
		"truncated quote":  {quoteBody(q[:len(q)-3]), 400, CodeMalformed, "quote"},
		"empty body":       {"", 400, CodeMalformed, "JSON"},
		"not JSON":         {"quote=abc", 400, CodeMalformed, "JSON"},
		"no quote":         {`{}`, 400, CodeMalformed, `no "quote"`},
		"unknown field":    {`{"quote":"AA==","x":1}`, 400, CodeMalformed, "unknown field"},
		"two objects":      {quoteBody(q) + `{}`, 400, CodeMalformed, "after the JSON object"},
		"quote not base64": {`{"quote":"!!"}`, 400, CodeMalformed, "base64"},
		"unpadded base64":  {`{"quote":"AA"}`, 400, CodeMalformed, "base64"},
		"quote a number":   {`{"quote":5}`, 400, CodeMalformed, "JSON"},
		"too large":        {`{"quote":"` + strings.Repeat("A", DefaultMaxBodyBytes) + `"}`, 413, CodeTooLarge, "limit"},
	} {
		w := post(f.svc, c.body)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d (%s)", name, w.Code, c.status, w.Body)
			continue
		}
		e := decodeError(t, w)
		if e.Code != c.code || !strings.Contains(e.Error, c.says) {
			t.Errorf("%s: got %+v, want code %s and a message naming %q", name, e, c.code, c.says)
		}
	}
}

func (f *fixture) unknownKey(t *testing.T) []byte {
	q, err := sim.VerifyQuote(mustQuote(t, f.unknown, rdOf(0)))
	if err != nil {
		t.Fatal(err)
	}
	return q.CPU
}

func TestServiceRoutes(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/report", 405},
		{"POST", "/v1/info", 405},
		{"GET", "/v2/report", 404},
		{"GET", "/", 404},
	} {
		w := httptest.NewRecorder()
		f.svc.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, w.Code, c.status)
			continue
		}
		decodeError(t, w)
	}
	w := httptest.NewRecorder()
	f.svc.ServeHTTP(w, httptest.NewRequest("GET", "/v1/info", nil))
	var info infoResponse
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || w.Code != 200 {
		t.Fatalf("info: %d %s", w.Code, w.Body)
	}
	if info.PublicKeyHex != hex.EncodeToString(f.key.Public().(ed25519.PublicKey)) || info.Platform != "sim" {
		t.Fatalf("info %+v", info)
	}
}

func TestRevokedCPUGetsRevokedReport(t *testing.T) {
	f := newFixture(t)
	rd := rdOf(3)
	w := post(f.svc, quoteBody(mustQuote(t, f.revoked, rd)))
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp reportResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.Status != StatusRevoked {
		t.Fatalf("status %q, want REVOKED", resp.Status)
	}
	ev, _ := base64.StdEncoding.DecodeString(resp.Evidence)
	_, err := f.v.Verify(ev, rd[:], testTime)
	if !errors.Is(err, tee.ErrStatus) || !strings.Contains(err.Error(), "REVOKED") {
		t.Fatalf("got %v, want ErrStatus naming REVOKED", err)
	}
}

func TestNewServiceRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]ServiceConfig{
		"no key":        {},
		"short key":     {SigningKey: make([]byte, 32)},
		"bad known CPU": {SigningKey: testKey(1), KnownCPUs: []ed25519.PublicKey{make([]byte, 31)}},
		"bad revoked":   {SigningKey: testKey(1), RevokedCPUs: []ed25519.PublicKey{nil}},
	} {
		if _, err := NewService(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// evidenceFor gets evidence straight from the service.
func evidenceFor(t testing.TB, f *fixture, p tee.Platform, rd [tee.ReportDataSize]byte) []byte {
	t.Helper()
	ev, _, err := f.svc.report(mustQuote(t, p, rd))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// signReport signs an arbitrary report with key, as a service would.
func signReport(t *testing.T, key ed25519.PrivateKey, r *teepb.AttestationReport) []byte {
	raw, err := canonical.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := canonical.Marshal(&teepb.SignedReport{Report: raw, Signature: ed25519.Sign(key, reportMessage(raw))})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestVerifierRefusals(t *testing.T) {
	f := newFixture(t)
	rd := rdOf(4)
	ev := evidenceFor(t, f, f.known, rd)
	var sr teepb.SignedReport
	var ar teepb.AttestationReport
	if err := proto.Unmarshal(ev, &sr); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(sr.Report, &ar); err != nil {
		t.Fatal(err)
	}
	edit := func(fn func(r *teepb.AttestationReport)) []byte {
		c := proto.Clone(&ar).(*teepb.AttestationReport)
		fn(c)
		return signReport(t, f.key, c)
	}
	other := testKey(6)
	for name, c := range map[string]struct {
		v    Verifier
		ev   []byte
		want error
		says string
	}{
		"untrusted service key": {f.v, signReport(t, other, &ar), tee.ErrSignature, ar.Id},
		"no trusted keys":       {Verifier{}, ev, tee.ErrSignature, "0 attestation service keys"},
		"other platform":        {f.v, edit(func(r *teepb.AttestationReport) { r.Platform = "tdx" }), tee.ErrMalformed, `"tdx"`},
		"unknown status":        {f.v, edit(func(r *teepb.AttestationReport) { r.Status = "MAYBE" }), tee.ErrMalformed, `"MAYBE"`},
		"version 2":             {f.v, edit(func(r *teepb.AttestationReport) { r.Version = 2 }), tee.ErrMalformed, "version 2"},
		"bad id":                {f.v, edit(func(r *teepb.AttestationReport) { r.Id = strings.ToUpper(r.Id) }), tee.ErrMalformed, "report id"},
		"no timestamp":          {f.v, edit(func(r *teepb.AttestationReport) { r.Timestamp = 0 }), tee.ErrMalformed, "timestamp"},
		"negative timestamp":    {f.v, edit(func(r *teepb.AttestationReport) { r.Timestamp = -5 }), tee.ErrMalformed, "timestamp"},
		"short measurement":     {f.v, edit(func(r *teepb.AttestationReport) { r.Measurement = r.Measurement[1:] }), tee.ErrMalformed, "measurement"},
		"short cpu key":         {f.v, edit(func(r *teepb.AttestationReport) { r.CpuKey = r.CpuKey[1:] }), tee.ErrMalformed, "cpu_key"},
		"short report data":     {f.v, edit(func(r *teepb.AttestationReport) { r.ReportData = r.ReportData[1:] }), tee.ErrMalformed, "report_data"},
		"too large":             {f.v, make([]byte, MaxEvidenceSize+1), tee.ErrMalformed, "limit"},
		"unknown field":         {f.v, append(bytes.Clone(ev), 0x18, 0x01), tee.ErrMalformed, "unknown field 3"},
		"report unknown field": {f.v, func() []byte {
			raw := append(bytes.Clone(sr.Report), 0x48, 0x01)
			b, _ := canonical.Marshal(&teepb.SignedReport{Report: raw, Signature: ed25519.Sign(f.key, reportMessage(raw))})
			return b
		}(), tee.ErrMalformed, "unknown field 9"},
		"signature first": {f.v, func() []byte {
			b := protoBytes(2, sr.Signature)
			return append(b, protoBytes(1, sr.Report)...)
		}(), tee.ErrMalformed, "canonical"},
		"misconfigured key": {Verifier{ServiceKeys: []ed25519.PublicKey{make([]byte, 5)}}, ev, nil, "misconfigured"},
		"negative max age":  {Verifier{ServiceKeys: f.v.ServiceKeys, MaxAge: -1}, ev, nil, "misconfigured"},
	} {
		_, err := c.v.Verify(c.ev, rd[:], testTime)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %q does not name %q", name, err, c.says)
		}
	}
	// A second trusted key (a rotated service key) is accepted.
	v := Verifier{ServiceKeys: []ed25519.PublicKey{other.Public().(ed25519.PublicKey), f.v.ServiceKeys[0]}}
	if _, err := v.Verify(ev, rd[:], testTime); err != nil {
		t.Fatalf("verifier with two keys: %v", err)
	}
}

// protoBytes encodes one bytes field.
func protoBytes(field byte, b []byte) []byte {
	out := []byte{field<<3 | 2}
	n := len(b)
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	return append(append(out, byte(n)), b...)
}

func TestVerifierDefaultsAndDeterminism(t *testing.T) {
	f := newFixture(t)
	rd := rdOf(5)
	ev := evidenceFor(t, f, f.known, rd)
	v := Verifier{ServiceKeys: f.v.ServiceKeys}
	if _, err := v.Verify(ev, rd[:], testTime.Add(DefaultMaxAge)); err != nil {
		t.Fatalf("at DefaultMaxAge: %v", err)
	}
	if _, err := v.Verify(ev, rd[:], testTime.Add(DefaultMaxAge+1)); !errors.Is(err, tee.ErrStale) {
		t.Fatalf("past DefaultMaxAge: %v", err)
	}
	if _, err := v.Verify(ev, rd[:], testTime.Add(-DefaultMaxClockSkew-1)); !errors.Is(err, tee.ErrStale) || !strings.Contains(err.Error(), "after the block time") {
		t.Fatalf("before DefaultMaxClockSkew: %v", err)
	}
	a1, err1 := v.Verify(ev, rd[:], testTime)
	a2, err2 := v.Verify(ev, rd[:], testTime)
	if err1 != nil || err2 != nil || a1.ReportID != a2.ReportID || !a1.Timestamp.Equal(a2.Timestamp) {
		t.Fatal("two verifications of the same evidence differ")
	}
	// Extreme block times neither panic nor accept.
	for _, now := range []time.Time{{}, time.Unix(1<<62, 0), time.Unix(-1<<62, 0)} {
		if _, err := v.Verify(ev, rd[:], now); !errors.Is(err, tee.ErrStale) {
			t.Errorf("now %v: got %v, want ErrStale", now, err)
		}
	}
}

func TestClientAgainstServer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	srv, err := Start(ctx, "", ServiceConfig{
		SigningKey: f.key,
		KnownCPUs:  []ed25519.PublicKey{nil},
	})
	if err == nil {
		srv.Close()
		t.Fatal("Start accepted an empty CPU key")
	}
	srv, err = Start(ctx, "", ServiceConfig{SigningKey: f.key, KnownCPUs: []ed25519.PublicKey{cpuKey(t, f.known)}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %q is not on loopback", srv.URL())
	}
	c := &Client{URL: srv.URL() + "/", HTTP: &http.Client{Timeout: 5 * time.Second}}
	pub, err := c.Info(ctx)
	if err != nil || !bytes.Equal(pub, f.key.Public().(ed25519.PublicKey)) || !bytes.Equal(srv.PublicKey(), pub) {
		t.Fatalf("Info: %x, %v", pub, err)
	}
	rd := rdOf(6)
	ev, err := c.Report(ctx, mustQuote(t, f.known, rd))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ev, rd[:], time.Now()); err != nil {
		t.Fatalf("evidence from the real clock: %v", err)
	}
	_, err = c.Report(ctx, mustQuote(t, f.unknown, rd))
	var re *RefusedError
	if !errors.As(err, &re) || re.StatusCode != 403 || re.Code != CodeUnknownCPU || !errors.Is(err, tee.ErrUnknownCPU) {
		t.Fatalf("unknown CPU: got %v", err)
	}
	if _, err := c.Report(ctx, []byte("junk")); !errors.Is(err, tee.ErrMalformed) {
		t.Fatalf("junk quote: got %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := c.Report(ctx, mustQuote(t, f.known, rd)); err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Fatalf("after Close: got %v", err)
	}
}

func TestStartStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, "127.0.0.1:0", ServiceConfig{SigningKey: testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server still running after its context ended")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), "256.0.0.1:1", ServiceConfig{SigningKey: testKey(1)}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("bad address: got %v", err)
	}
}

func cpuKey(t *testing.T, p tee.Platform) ed25519.PublicKey {
	q, err := sim.VerifyQuote(mustQuote(t, p, rdOf(0)))
	if err != nil {
		t.Fatal(err)
	}
	return q.CPU
}

func TestClientRefusalParsing(t *testing.T) {
	for name, c := range map[string]struct {
		status int
		body   string
		want   error
		code   string
	}{
		"unknown cpu":   {403, `{"error":"CPU ab is unknown","code":"unknown_cpu"}`, tee.ErrUnknownCPU, CodeUnknownCPU},
		"bad signature": {403, `{"error":"x","code":"bad_signature"}`, tee.ErrSignature, CodeBadSignature},
		"malformed":     {400, `{"error":"x","code":"malformed"}`, tee.ErrMalformed, CodeMalformed},
		"too large":     {413, `{"error":"x","code":"too_large"}`, tee.ErrMalformed, CodeTooLarge},
		"other code":    {500, `{"error":"x","code":"internal"}`, nil, CodeInternal},
		"html":          {502, `<html>bad gateway</html>`, nil, ""},
	} {
		_, err := parseReportResponse(c.status, []byte(c.body))
		var re *RefusedError
		if !errors.As(err, &re) || re.StatusCode != c.status || re.Code != c.code {
			t.Errorf("%s: got %#v", name, err)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v does not match %v", name, err, c.want)
		}
		if c.want == nil && errors.Unwrap(err) != nil {
			t.Errorf("%s: unwraps to %v", name, errors.Unwrap(err))
		}
	}
	for name, body := range map[string]string{
		"not JSON":       "ok",
		"no evidence":    `{"id":"x"}`,
		"evidence bad":   `{"evidence":"!!"}`,
		"evidence large": `{"evidence":"` + base64.StdEncoding.EncodeToString(make([]byte, MaxEvidenceSize+1)) + `"}`,
	} {
		if _, err := parseReportResponse(200, []byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Control characters from a hostile service do not reach the message.
	_, err := parseReportResponse(400, []byte(`{"error":"a\u001b[31mb","code":"malformed"}`))
	if strings.ContainsRune(err.Error(), 0x1b) {
		t.Fatalf("escape sequence in error: %q", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key.json")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reloaded key differs: %v", err)
	}
	raw, _ := os.ReadFile(path)
	var kf keyFile
	json.Unmarshal(raw, &kf)
	for name, content := range map[string]string{
		"empty":    "",
		"mismatch": strings.Replace(string(raw), kf.PublicKey, hex.EncodeToString(make([]byte, 32)), 1),
		"short":    strings.Replace(string(raw), kf.Seed, kf.Seed[2:], 1),
		"extra":    strings.Replace(string(raw), `"version"`, `"x":1,"version"`, 1),
	} {
		p := filepath.Join(t.TempDir(), "key.json")
		os.WriteFile(p, []byte(content), 0o600)
		_, err := LoadOrCreateKey(p)
		if err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("%s: got %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), kf.Seed[4:20]) {
			t.Errorf("%s: error quotes the seed", name)
		}
	}
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: got %v", err)
	}
}

func TestParsePublicKey(t *testing.T) {
	k := testKey(1).Public().(ed25519.PublicKey)
	got, err := ParsePublicKey(" " + hex.EncodeToString(k) + "\n")
	if err != nil || !bytes.Equal(got, k) {
		t.Fatal(got, err)
	}
	for _, s := range []string{"", "zz", hex.EncodeToString(k[:31]), hex.EncodeToString(k) + "00"} {
		if _, err := ParsePublicKey(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
