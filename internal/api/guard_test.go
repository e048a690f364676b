package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// guardedServer is a server of the suite's behind guard, whose TokenReview
// authenticator (no OIDC) remembers answers for authnTTL; calls counts
// the requests that reached the authenticator.
func guardedServer(t *testing.T, guard *authGuard, authnTTL time.Duration) (string, *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	o := DefaultOptions()
	o.AuthnCacheTTL = authnTTL
	authn, err := newAuthenticator(ctx, &o, clientset)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	s := &Server{opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authz: srv.authz, base: srv.base,
		authn: authenticator.RequestFunc(func(r *http.Request) (*authenticator.Response, bool, error) {
			calls.Add(1)
			return authn.AuthenticateRequest(r)
		}),
		guard: guard}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, &calls
}

// statusFrom is status's answer for a request from the loopback address ip.
func statusFrom(t *testing.T, ip, base, token string) int {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}}
	req, _ := http.NewRequest(http.MethodGet, base+instancePath("instance-guard"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	c.CloseIdleConnections()
	return resp.StatusCode
}

// TestFloodsFromManyAddressesShareOneBudget: random tokens from ten client
// addresses cost at most the global burst of TokenReviews, not ten
// addresses' bursts.
func TestFloodsFromManyAddressesShareOneBudget(t *testing.T) {
	const perAddress, global = 5, 8
	base, _ := guardedServer(t, newAuthGuard(0.01, perAddress, time.Minute).withBudgets(0.01, global, 0, 0), time.Minute)
	before := tokenReviews(t)
	codes := map[int]int{}
	for a := range 10 {
		for range perAddress + 2 {
			codes[statusFrom(t, fmt.Sprintf("127.0.0.%d", a+2), base, randomToken())]++
		}
	}
	reviews := tokenReviews(t) - before
	t.Logf("answers %v, %.0f TokenReviews", codes, reviews)
	if reviews > global+1 {
		t.Errorf("ten addresses' floods cost %.0f TokenReviews; want at most the global burst %d (+1 refill)", reviews, global)
	}
}

// loadedVerifier is a verifier that has read the suite's kube-apiserver's keys.
func loadedVerifier(t *testing.T) *saVerifier {
	t.Helper()
	v := newSAVerifier(func(ctx context.Context, path string) ([]byte, error) {
		return clientset.RESTClient().Get().AbsPath(path).DoRaw(ctx)
	})
	if err := v.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSignedTokenPassesAFloodedAddress: once an address's budget is spent
// by random tokens, a service-account token never seen before from it is
// still reviewed (it checks out against the cluster's keys), while a forged
// token of the cluster's issuer is refused with no review.
func TestSignedTokenPassesAFloodedAddress(t *testing.T) {
	const burst = 3
	g := newAuthGuard(0.01, burst, time.Minute).withBudgets(0.01, 50, 0.01, 5)
	g.verifier = loadedVerifier(t)
	base, calls := guardedServer(t, g, time.Minute)
	for range burst + 2 {
		statusFrom(t, "127.0.0.1", base, randomToken())
	}
	if got := statusFrom(t, "127.0.0.1", base, randomToken()); got != http.StatusTooManyRequests {
		t.Fatalf("the flooded address's next random token: %d, want 429", got)
	}
	fresh := newServiceAccountToken(t, "fresh-after-flood")
	if got := statusFrom(t, "127.0.0.1", base, fresh); got == http.StatusTooManyRequests || got == http.StatusUnauthorized {
		t.Errorf("a valid token never seen before from the flooded address: %d", got)
	}
	before, callsBefore := tokenReviews(t), calls.Load()
	for range 20 {
		if got := statusFrom(t, "127.0.0.9", base, forge(t, fresh, randomToken())); got != http.StatusUnauthorized {
			t.Fatalf("a forged token of the cluster's issuer: %d, want 401", got)
		}
	}
	if n, c := tokenReviews(t)-before, calls.Load()-callsBefore; n != 0 || c != 0 {
		t.Errorf("forged tokens cost %.0f TokenReviews and %d authentications, want none", n, c)
	}
}

// forge is token with its claims changed (a longer life, a nonce) and its
// signature left as it was.
func forge(t *testing.T, token, nonce string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["exp"] = time.Now().Add(100 * 24 * time.Hour).Unix()
	claims["nonce"] = nonce
	raw, _ = json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
}

// TestRevokedTokensSpendTheBudget: tokens that authenticated once and are
// revoked since (their service accounts deleted) are charged to their
// address's budget when their review fails, and are then reviewed only
// from it: a pile of once-valid tokens costs what as many bad ones do.
func TestRevokedTokensSpendTheBudget(t *testing.T) {
	const burst, revokedN = 3, 5
	ttl := 300 * time.Millisecond
	base, _ := guardedServer(t, newAuthGuard(0.01, burst, ttl), ttl)
	var revoked []string
	for i := range revokedN {
		name := fmt.Sprintf("revoked-%d", i)
		token := newServiceAccountToken(t, name)
		if got := statusFrom(t, "127.0.0.1", base, token); got == http.StatusUnauthorized || got == http.StatusTooManyRequests {
			t.Fatalf("%s before revocation: %d", name, got)
		}
		revoked = append(revoked, token)
		if err := env.Client.Delete(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: saNS}}); err != nil {
			t.Fatal(err)
		}
	}
	// kube-apiserver remembers a token's success for 10s itself.
	time.Sleep(11 * time.Second)
	for i, token := range revoked {
		if got := statusFrom(t, "127.0.0.1", base, token); got != http.StatusUnauthorized && got != http.StatusTooManyRequests {
			t.Fatalf("revoked token %d: %d", i, got)
		}
	}
	if got := statusFrom(t, "127.0.0.1", base, randomToken()); got != http.StatusTooManyRequests {
		t.Errorf("after %d revoked tokens failed, a random token from the address: %d, want 429 (budget %d spent)", revokedN, got, burst)
	}
	time.Sleep(2 * ttl)
	before := tokenReviews(t)
	for _, token := range revoked {
		statusFrom(t, "127.0.0.1", base, token)
	}
	if n := tokenReviews(t) - before; n != 0 {
		t.Errorf("the revoked tokens sent again cost %.0f TokenReviews from a spent address, want 0", n)
	}
}
