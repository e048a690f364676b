package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/internal/oidcissuer"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

const seedPath = "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/" + devstack.SampleInstance

// attack is one hostile request: bad credentials, a malformed path or query,
// or a malformed body. None of them may succeed, none may cause a 5xx, and
// every answer must be the error envelope.
type attack struct {
	name    string
	method  string
	path    string
	auth    string // the whole Authorization header; "" sends none
	ctype   string
	body    []byte
	goodKey bool // auth is replaced with the valid token
	// want is the one status the attack must be answered with; 0 takes any
	// 4xx in the error envelope.
	want int
}

// oidcClientID is the audience the run's API expects of OIDC tokens.
const oidcClientID = "instance-api"

func jwt(header, claims map[string]any, sign func([]byte) []byte) string {
	enc := func(v any) string {
		data, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(data)
	}
	unsigned := enc(header) + "." + enc(claims)
	sig := ""
	if sign != nil {
		sig = base64.RawURLEncoding.EncodeToString(sign([]byte(unsigned)))
	}
	return unsigned + "." + sig
}

// attacks are the hostile requests. The JWTs of the trusted issuer differ from
// the control, which authenticates (403: its user has no role), in one claim
// each, so a 401 says the API checked that claim and nothing else.
func attacks(issuer *oidcissuer.Issuer) ([]attack, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	forge := func(data []byte) []byte {
		sum := sha256.Sum256(data)
		r, s, _ := ecdsa.Sign(rand.Reader, key, sum[:])
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	now := time.Now().Unix()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": issuer.URL(), "sub": "reliability", "aud": oidcClientID,
			"exp": now + 3600, "iat": now - 60, "nbf": now - 60}
		if change != nil {
			change(c)
		}
		return c
	}
	trusted := func(change func(map[string]any)) string {
		return "Bearer " + oidcissuer.SignRS256(claims(change), "key-1", issuer.Key("key-1"))
	}
	forged := jwt(map[string]any{"alg": "ES256", "kid": "key-1"}, claims(nil), forge)
	algNone := jwt(map[string]any{"alg": "none"}, claims(nil), nil)
	huge := bytes.Repeat([]byte("a"), 4<<20)
	deep := []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000))
	base := "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances"
	return []attack{
		{name: "no token", method: "GET", path: seedPath},
		{name: "empty bearer", method: "GET", path: seedPath, auth: "Bearer "},
		{name: "garbage bearer", method: "GET", path: seedPath, auth: "Bearer not-a-token"},
		{name: "basic auth", method: "GET", path: seedPath, auth: "Basic YWRtaW46YWRtaW4="},
		{name: "trusted jwt (control)", method: "GET", path: seedPath, auth: trusted(nil), want: http.StatusForbidden},
		{name: "expired jwt", method: "GET", path: seedPath, want: http.StatusUnauthorized,
			auth: trusted(func(c map[string]any) { c["exp"] = now - 60 })},
		{name: "wrong audience jwt", method: "GET", path: seedPath, want: http.StatusUnauthorized,
			auth: trusted(func(c map[string]any) { c["aud"] = "someone-else" })},
		{name: "wrong issuer jwt", method: "GET", path: seedPath, want: http.StatusUnauthorized,
			auth: trusted(func(c map[string]any) { c["iss"] = "https://issuer.invalid" })},
		{name: "forged jwt", method: "GET", path: seedPath, auth: "Bearer " + forged, want: http.StatusUnauthorized},
		{name: "alg none jwt", method: "GET", path: seedPath, auth: "Bearer " + algNone, want: http.StatusUnauthorized},
		{name: "jwt with bad base64", method: "GET", path: seedPath, auth: "Bearer eyJ!!.eyJ??.sig"},
		{name: "huge header token", method: "GET", path: seedPath, auth: "Bearer " + strings.Repeat("x", 64<<10)},
		{name: "empty region", method: "GET", path: "/v1/regions//projects/project-x9y8z7/compute/instances/x", goodKey: true},
		{name: "dot-dot", method: "GET", path: "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/../../../../etc/passwd", goodKey: true},
		{name: "encoded dot-dot", method: "GET", path: "/v1/regions/%2e%2e/projects/%2e%2e/compute/instances/x", goodKey: true},
		{name: "upper-case id", method: "GET", path: base + "/Instance-X", goodKey: true},
		{name: "long id", method: "GET", path: base + "/" + strings.Repeat("a", 300), goodKey: true},
		{name: "unknown custom method", method: "POST", path: seedPath + ":explode", goodKey: true},
		{name: "unknown route", method: "GET", path: "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/gadgets", goodKey: true},
		{name: "wrong method", method: "PUT", path: seedPath, goodKey: true, ctype: "application/json", body: []byte(`{}`)},
		{name: "negative page size", method: "GET", path: base + "?pageSize=-1", goodKey: true},
		{name: "page size not a number", method: "GET", path: base + "?pageSize=abc", goodKey: true},
		{name: "page size too large", method: "GET", path: base + "?pageSize=100000", goodKey: true},
		{name: "bad page token", method: "GET", path: base + "?pageToken=%25%25%25not-a-token", goodKey: true},
		{name: "invalid json", method: "POST", path: base, goodKey: true, ctype: "application/json", body: []byte(`{"type":`)},
		{name: "unknown field", method: "POST", path: base, goodKey: true, ctype: "application/json",
			body: []byte(`{"type":"/v1/regions/us-texas-1/zones/us1-a/instance-types/cpu1-small","colour":"blue"}`)},
		{name: "wrong field type", method: "POST", path: base, goodKey: true, ctype: "application/json", body: []byte(`{"type":42}`)},
		{name: "bad type uri", method: "POST", path: base, goodKey: true, ctype: "application/json", body: []byte(`{"type":"g1-xlarge"}`)},
		{name: "missing type", method: "POST", path: base, goodKey: true, ctype: "application/json", body: []byte(`{"displayName":"x"}`)},
		{name: "bad id", method: "POST", path: base, goodKey: true, ctype: "application/json",
			body: []byte(`{"id":"Bad_ID","type":"/v1/regions/us-texas-1/zones/us1-a/instance-types/cpu1-small"}`)},
		{name: "huge body", method: "POST", path: base, goodKey: true, ctype: "application/json", body: huge},
		{name: "deep json", method: "POST", path: base, goodKey: true, ctype: "application/json", body: deep},
		{name: "text body", method: "POST", path: base, goodKey: true, ctype: "text/plain", body: []byte("type=x")},
		{name: "patch immutable", method: "PATCH", path: seedPath, goodKey: true, ctype: "application/json",
			body: []byte(`{"type":"/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-2xlarge"}`)},
		{name: "patch with nul", method: "PATCH", path: seedPath, goodKey: true, ctype: "application/json", body: []byte("{\"displayName\":\"a\x00b\"")},
		{name: "patch array", method: "PATCH", path: seedPath, goodKey: true, ctype: "application/json", body: []byte(`[1,2,3]`)},
	}, nil
}

// envelopeOK reports whether body is the documented error envelope for status.
func envelopeOK(status int, body []byte) bool {
	var env struct {
		Error *struct {
			Code    *int             `json:"code"`
			Message *string          `json:"message"`
			Details []map[string]any `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		return false
	}
	e := env.Error
	return e.Code != nil && *e.Code == status && e.Message != nil && *e.Message != "" && e.Details != nil
}

// hostileClients runs good and hostile clients against the API at once.
func hostileClients(ctx context.Context, e env, results *checks) error {
	clients := load.EnvInt("RELIABILITY_CLIENTS", 200)
	duration := time.Duration(load.EnvInt("RELIABILITY_HOSTILE_SECONDS", 30)) * time.Second
	issuer, err := oidcissuer.New()
	if err != nil {
		return fmt.Errorf("failed to start the OIDC issuer: %w", err)
	}
	defer issuer.Close()
	caFile := filepath.Join(e.work, "oidc-ca.pem")
	if err := os.WriteFile(caFile, issuer.CAPEM, 0o600); err != nil {
		return fmt.Errorf("failed to write the issuer's CA: %w", err)
	}
	stack, _, apiURL, err := e.startStack(ctx, "hostile", "--api-rate-limit=1000000", "--api-rate-burst=1000000",
		// The bad-token throttle has its own part (tenancy); here every
		// hostile kind must reach the checks it is aimed at.
		"--api-auth-failure-rate=1000000", "--api-auth-failure-burst=1000000",
		// As the rate limits: the shares of the in-flight bound have their
		// own part (tenancy), and here one token and one address send all.
		"--api-max-requests-in-flight-per-principal=0", "--api-max-requests-in-flight-per-project=0",
		"--api-max-authentications-in-flight-per-address=0", "--api-auth-review-rate=0",
		"--api-oidc-issuer-url="+issuer.URL(), "--api-oidc-client-id="+oidcClientID, "--api-oidc-ca-file="+caFile)
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	token, err := devstack.ReadToken(stack.TokenFile)
	if err != nil {
		return err
	}
	list, err := attacks(issuer)
	if err != nil {
		return err
	}
	// ran and unexpected count, per attack kind, the requests sent and those
	// answered otherwise than the kind's want.
	ran := make([]atomic.Int64, len(list))
	unexpected := make([]atomic.Int64, len(list))
	transport := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	httpClient := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	var (
		mu            sync.Mutex
		goodLatencies []time.Duration
		goodErrors    atomic.Int64
		hostileTotal  atomic.Int64
		fiveXX        atomic.Int64
		badEnvelopes  atomic.Int64
		succeeded     atomic.Int64
		examples      sync.Map
	)
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	hostile := max(1, clients/10)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; time.Now().Before(deadline); n += clients {
				if i < hostile {
					// Hostile client i sends kinds i, i+hostile, ...: all of
					// them, round robin, whatever the counts.
					k := (i + n/clients*hostile) % len(list)
					a := list[k]
					ran[k].Add(1)
					auth := a.auth
					if a.goodKey {
						auth = "Bearer " + token
					}
					code, body, err := do(httpClient, a.method, apiURL+a.path, auth, a.ctype, a.body)
					hostileTotal.Add(1)
					if err != nil {
						// A refused connection or reset is not a 5xx but is still wrong.
						badEnvelopes.Add(1)
						examples.LoadOrStore(a.name, err.Error())
						continue
					}
					if a.want != 0 && code != a.want {
						unexpected[k].Add(1)
						examples.LoadOrStore(a.name, fmt.Sprintf("%d, want %d: %s", code, a.want, truncate(body)))
					}
					switch {
					case code >= 500:
						fiveXX.Add(1)
						examples.LoadOrStore(a.name, fmt.Sprintf("%d %s", code, truncate(body)))
					case code < 400:
						succeeded.Add(1)
						examples.LoadOrStore(a.name, fmt.Sprintf("%d %s", code, truncate(body)))
					case !envelopeOK(code, body):
						badEnvelopes.Add(1)
						examples.LoadOrStore(a.name, fmt.Sprintf("%d %s", code, truncate(body)))
					}
					continue
				}
				began := time.Now()
				code, _, err := do(httpClient, http.MethodGet, apiURL+seedPath, "Bearer "+token, "", nil)
				if err != nil || code != http.StatusOK {
					goodErrors.Add(1)
					continue
				}
				mu.Lock()
				goodLatencies = append(goodLatencies, time.Since(began))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	examples.Range(func(k, v any) bool {
		fmt.Printf("hostile | %s: %v\n", k, v)
		return true
	})
	sort.Slice(goodLatencies, func(i, j int) bool { return goodLatencies[i] < goodLatencies[j] })
	p99 := 0.0
	if len(goodLatencies) > 0 {
		p99 = float64(goodLatencies[(len(goodLatencies)-1)*99/100]) / float64(time.Millisecond)
	}
	fmt.Printf("hostile | %d clients (%d hostile) for %s: %d hostile requests, %d good requests\n",
		clients, hostile, duration, hostileTotal.Load(), len(goodLatencies)+int(goodErrors.Load()))
	kindsAsExpected := 0
	for k, a := range list {
		fmt.Printf("hostile | %-24s %6d sent, %d answered otherwise than %s\n", a.name, ran[k].Load(), unexpected[k].Load(), wantText(a.want))
		if ran[k].Load() > 0 && unexpected[k].Load() == 0 {
			kindsAsExpected++
		}
	}
	results.add("hostile_kinds_answered_as_expected", fmt.Sprintf("%d/%d", kindsAsExpected, len(list)), kindsAsExpected == len(list))
	results.add("hostile_5xx", fiveXX.Load(), fiveXX.Load() == 0)
	results.add("hostile_bad_envelopes", badEnvelopes.Load(), badEnvelopes.Load() == 0)
	results.add("hostile_accepted", succeeded.Load(), succeeded.Load() == 0)
	results.add("hostile_good_errors", goodErrors.Load(), goodErrors.Load() == 0)
	results.add("hostile_good_p99_ms", fmt.Sprintf("%.2f", p99), len(goodLatencies) > 0)
	return nil
}

func wantText(want int) string {
	if want == 0 {
		return "4xx"
	}
	return fmt.Sprint(want)
}

func do(c *http.Client, method, url, auth, ctype string, body []byte) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
