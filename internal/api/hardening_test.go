package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestRoutes(t *testing.T) {
	t.Run("unknown routes are 404 in the envelope", func(t *testing.T) {
		for _, path := range []string{
			"/", "/v2/regions", "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/gadgets",
			"/v1/regions//projects/project-x9y8z7/compute/instances/x",
			"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/../../../../etc/passwd",
			"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/a/b",
			"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/:stop",
		} {
			r := call(t, http.MethodGet, path, tokens["viewer"], nil)
			r.envelope(t, http.StatusNotFound, ReasonRouteNotFound)
		}
	})
	t.Run("a wrong method is 405 with Allow", func(t *testing.T) {
		for path, allow := range map[string]string{
			instancePath("x"):           "GET, PATCH, DELETE",
			collectionPath:              "GET, POST",
			instancePath("x") + ":stop": "POST",
			"/healthz":                  "GET, HEAD",
			"/openapi.json":             "GET, HEAD",
		} {
			r := call(t, http.MethodPut, path, tokens["deployer"], `{}`)
			r.envelope(t, http.StatusMethodNotAllowed, ReasonMethodNotAllowed)
			if got := r.Header.Get("Allow"); got != allow {
				t.Errorf("%s: Allow = %q, want %q", path, got, allow)
			}
		}
	})
	t.Run("probes and the document", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if r := call(t, http.MethodGet, path, "", nil); r.StatusCode != http.StatusOK || string(r.body) != "ok" {
				t.Errorf("%s = %d %q", path, r.StatusCode, r.body)
			}
		}
		// The document is embedded from internal/api/openapi.json at build
		// time, so what is checked here is the serving: all of it, as JSON.
		r := call(t, http.MethodGet, "/openapi.json", "", nil)
		if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, OpenAPIDocument) {
			t.Errorf("/openapi.json = %d, %d bytes; want 200 and the embedded document's %d bytes", r.StatusCode, len(r.body), len(OpenAPIDocument))
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("/openapi.json Content-Type = %q, want application/json", ct)
		}
	})
}

// TestOpenAPIRejectsWrongBodies: the validation the suite relies on fails on
// bodies that break the contract.
func TestOpenAPIRejectsWrongBodies(t *testing.T) {
	in := seedInstance("instance-schema")
	in.UID = "07cc67f4-45d6-494b-adac-09b5cbc7e2b5"
	good, err := json.Marshal(toAPI(region, project, in))
	if err != nil {
		t.Fatal(err)
	}
	schema := spec.Components.Schemas["Instance"].Value
	check := func(body []byte) error {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return schema.VisitJSON(v)
	}
	if err := check(good); err != nil {
		t.Fatalf("a good body is refused: %v", err)
	}
	for name, bad := range map[string]func(map[string]any){
		"unknown lifecycle":      func(m map[string]any) { m["lifecycle"] = map[string]any{"status": "ERROR", "statusMessage": ""} },
		"extra field":            func(m map[string]any) { m["kind"] = "Instance" },
		"missing selfLink":       func(m map[string]any) { delete(m, "selfLink") },
		"bad disk mode":          func(m map[string]any) { m["disks"] = []any{map[string]any{"mode": "RW"}} },
		"createdAt not RFC 3339": func(m map[string]any) { m["createdAt"] = "yesterday" },
		"uid not a UUID":         func(m map[string]any) { m["uid"] = "not-a-uuid" },
	} {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		bad(m)
		body, _ := json.Marshal(m)
		if err := check(body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRequestID(t *testing.T) {
	r := call(t, http.MethodGet, instancePath("x"), "", nil, "X-Request-Id", "trace-123")
	if got := r.Header.Get("X-Request-Id"); got != "trace-123" {
		t.Errorf("echoed X-Request-Id = %q", got)
	}
	r = call(t, http.MethodGet, instancePath("x"), "", nil)
	if got := r.Header.Get("X-Request-Id"); len(got) != 32 {
		t.Errorf("generated X-Request-Id = %q", got)
	}
	r = call(t, http.MethodGet, instancePath("x"), "", nil, "X-Request-Id", strings.Repeat("a", 500))
	if got := r.Header.Get("X-Request-Id"); len(got) != 32 {
		t.Errorf("an over-long X-Request-Id was not replaced: %q", got)
	}
}

func TestMetrics(t *testing.T) {
	route := "/v1/regions/{region}/projects/{project}/compute/instances/{id}"
	before := counterValue(t, route, "GET", "401")
	call(t, http.MethodGet, instancePath("metrics"), "", nil).envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)
	if after := counterValue(t, route, "GET", "401"); after != before+1 {
		t.Errorf("compute_api_requests_total{401} went %v -> %v", before, after)
	}
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "compute_api_request_duration_seconds" && f.GetType() == dto.MetricType_HISTOGRAM {
			found = true
		}
	}
	if !found {
		t.Error("no latency histogram")
	}
}

func counterValue(t *testing.T, route, method, code string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "compute_api_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["method"] == method && labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestRateLimit: a principal over its budget gets 429 with Retry-After, others do not.
func TestRateLimit(t *testing.T) {
	limited := &Server{
		opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live,
		authn: srv.authn, authz: srv.authz, base: srv.base,
		rate: newRateLimiter(0.5, 3),
	}
	limited.ready.Store(true)
	ts := httptest.NewServer(limited.Handler())
	defer ts.Close()
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+instancePath("instance-rate"), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if get(tokens["viewer"]) == http.StatusTooManyRequests {
			t.Fatalf("request %d of the burst was limited", i)
		}
	}
	r := callAt(t, ts.URL, http.MethodGet, instancePath("instance-rate"), tokens["viewer"], nil)
	r.envelope(t, http.StatusTooManyRequests, ReasonRateLimited)
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	if get(tokens["deployer"]) == http.StatusTooManyRequests {
		t.Error("another principal was limited")
	}
}

// TestProjectConflict: two namespaces claiming one region and project is a
// reported conflict, never a silent pick.
func TestProjectConflict(t *testing.T) {
	for _, ns := range []string{"conflict-a", "conflict-b"} {
		if err := createProjectNamespace(ns, region, "project-twice"); err != nil {
			t.Fatal(err)
		}
	}
	path := "/v1/regions/" + region + "/projects/project-twice/compute/instances/x"
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := call(t, http.MethodGet, path, tokens["admin"], nil)
		if r.StatusCode == http.StatusInternalServerError {
			e := r.envelope(t, http.StatusInternalServerError, ReasonProjectMappingClash)
			if strings.Contains(e.Error.Message, "conflict-a") {
				t.Errorf("the message names namespaces: %s", e.Error.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	call(t, http.MethodGet, path, tokens["stranger"], nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
}

// TestTLS: the server serves TLS from cert and key files, HTTP/1.1 only by
// default, and picks up a new certificate when the files change.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeSelfSigned(t, certFile, keyFile, "first")

	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	opts.TLSCertFile, opts.TLSKeyFile = certFile, keyFile
	addr := startServer(t, opts)
	serial := func() *big.Int {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
			t.Errorf("HTTP/2 was negotiated though it is off")
		}
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got := serial(); got.Cmp(first) != 0 {
		t.Fatalf("served serial %v, want %v", got, first)
	}
	second := writeSelfSigned(t, certFile, keyFile, "second")
	deadline := time.Now().Add(20 * time.Second)
	for serial().Cmp(second) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz over TLS = %d", resp.StatusCode)
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile, cn string) *big.Int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Key first, then certificate: the watcher reloads on the certificate's change.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return serial
}

// TestRecover: a panic in a handler is a 500 envelope with no trace of it.
func TestRecover(t *testing.T) {
	s := &Server{base: srv.base}
	h := s.withRequestID(s.withRecover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret internal detail")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	r := response{Response: rec.Result(), body: rec.Body.Bytes()}
	validateResponse(t, http.MethodGet, "/v1/x", r)
	e := r.envelope(t, http.StatusInternalServerError, ReasonInternal)
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("the panic leaked: %s", r.body)
	}
	if e.Error.Message == "" || r.Header.Get("X-Request-Id") == "" {
		t.Errorf("answer %s", r.body)
	}
}

// startServer runs a server of the suite's with opts on its own listener
// until the test ends, and returns its address.
func startServer(t *testing.T, opts Options) string {
	t.Helper()
	s := &Server{opts: opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, base: srv.base,
		rate: newRateLimiter(opts.RateLimit, opts.RateBurst), listening: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	addrCtx, addrCancel := context.WithTimeout(ctx, 30*time.Second)
	defer addrCancel()
	addr, err := s.Addr(addrCtx)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestSlowClient: a client that never finishes its headers is cut off after
// the read-header timeout instead of holding a connection.
func TestSlowClient(t *testing.T) {
	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	opts.ReadHeaderTimeout = 300 * time.Millisecond
	addr := startServer(t, opts)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the connection was not closed by the server: %v", err)
	}
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Errorf("closed after %s", elapsed)
	}
}
