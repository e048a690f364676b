package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k0rdent-ai/instance-operator/internal/oidcissuer"
)

// countingServer is a server of the suite's whose authenticator (the real
// OIDC + TokenReview chain) counts the requests it is asked to authenticate.
func countingServer(t *testing.T, guard *authGuard, limit inFlight) (string, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	s := &Server{
		opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authz: srv.authz, base: srv.base,
		authn: authenticator.RequestFunc(func(r *http.Request) (*authenticator.Response, bool, error) {
			calls.Add(1)
			return srv.authn.AuthenticateRequest(r)
		}),
		guard: guard, inFlight: limit,
	}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, &calls
}

// tokenReviews is kube-apiserver's own count of the TokenReviews it served.
func tokenReviews(t *testing.T) float64 {
	t.Helper()
	body, err := clientset.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("failed to scrape kube-apiserver: %v", err)
	}
	var total float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="tokenreviews"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("bad metric line %q", line)
		}
		total += v
	}
	return total
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// answer is what status learned of a response whose body it already read and closed.
type answer struct {
	StatusCode int
	Header     http.Header
}

func status(t *testing.T, base, token string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+instancePath("instance-throttle"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return answer{StatusCode: resp.StatusCode, Header: resp.Header}
}

// TestBadTokenFloodCostsAtMostTheBurstInTokenReviews: a client address
// sending random tokens is refused before review once its budget of failures
// is spent, counted by kube-apiserver itself; a caller from the same address
// whose token authenticated before is not slowed.
func TestBadTokenFloodCostsAtMostTheBurstInTokenReviews(t *testing.T) {
	const burst, flood = 5, 60
	base, calls := countingServer(t, newAuthGuard(0.1, burst, time.Minute), nil)
	if got := status(t, base, tokens["viewer"]).StatusCode; got == http.StatusUnauthorized || got == http.StatusTooManyRequests {
		t.Fatalf("the viewer's first request = %d", got)
	}
	reviewsBefore, callsBefore := tokenReviews(t), calls.Load()
	// Concurrently, as a flood comes: the budget must hold for requests
	// that all arrive before any of them has failed.
	var throttledN, unexpected atomic.Int64
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < flood; i += 10 {
				switch status(t, base, randomToken()).StatusCode {
				case http.StatusTooManyRequests:
					throttledN.Add(1)
				case http.StatusUnauthorized:
				default:
					unexpected.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if unexpected.Load() != 0 {
		t.Fatalf("%d random tokens were answered neither 401 nor 429", unexpected.Load())
	}
	throttled := int(throttledN.Load())
	reviews := tokenReviews(t) - reviewsBefore
	t.Logf("%d random tokens: %d throttled, %.0f TokenReviews, %d authentications", flood, throttled, reviews, calls.Load()-callsBefore)
	// One token may refill while the flood runs (0.1/s).
	if reviews > burst+1 || calls.Load()-callsBefore > burst+1 {
		t.Errorf("the flood cost %.0f TokenReviews and %d authentications; want at most the burst %d (+1 refill)", reviews, calls.Load()-callsBefore, burst)
	}
	if throttled < flood-burst-1 {
		t.Errorf("%d of %d requests were throttled", throttled, flood)
	}
	r := callAt(t, base, http.MethodGet, instancePath("instance-throttle"), randomToken(), nil)
	r.envelope(t, http.StatusTooManyRequests, ReasonRateLimited)
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	if got := status(t, base, tokens["viewer"]).StatusCode; got == http.StatusUnauthorized || got == http.StatusTooManyRequests {
		t.Errorf("a caller that authenticated before was answered %d during the flood", got)
	}
}

// TestRejectedTokenIsRememberedByHash: a bad token sent again is refused
// from memory, not reviewed again (kube-apiserver's TokenReview reports a
// refused token as an error, which the authenticator's own cache skips).
func TestRejectedTokenIsRememberedByHash(t *testing.T) {
	base, calls := countingServer(t, newAuthGuard(1e6, 1e6, time.Minute), nil)
	bad := randomToken()
	reviewsBefore := tokenReviews(t)
	for range 10 {
		if got := status(t, base, bad).StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("a bad token was answered %d", got)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the bad token was authenticated %d times, want once", n)
	}
	if reviews := tokenReviews(t) - reviewsBefore; reviews > 1 {
		t.Errorf("the bad token cost %.0f TokenReviews, want 1", reviews)
	}
}

// TestEveryTokenSourceIsCapped: an oversized token in Sec-WebSocket-Protocol
// (which the delegating authenticator reads besides Authorization) is
// refused without authentication, as is an oversized Authorization.
func TestEveryTokenSourceIsCapped(t *testing.T) {
	base, calls := countingServer(t, newAuthGuard(1e6, 1e6, time.Minute), nil)
	huge := strings.Repeat("x", maxTokenBytes+1)
	for name, headers := range map[string][]string{
		"websocket protocol": {"Authorization", "Bearer short", "Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io." + huge},
		"authorization":      {"Authorization", "Bearer " + huge},
	} {
		t.Run(name, func(t *testing.T) {
			before := calls.Load()
			r := callAt(t, base, http.MethodGet, instancePath("instance-cap"), "", nil, headers...)
			r.envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)
			if n := calls.Load() - before; n != 0 {
				t.Errorf("an oversized token was passed to the authenticators %d times", n)
			}
		})
	}
}

// TestRequestsInFlightAreBounded: past the bound a request is answered 503
// with Retry-After at once, and served again when a slot frees.
func TestRequestsInFlightAreBounded(t *testing.T) {
	base, _ := countingServer(t, nil, newInFlight(1))
	// A create whose body never comes holds the one slot. Once in a
	// loaded full run the holder was answered before any read saw the slot
	// taken (the reads all answered 404); the holder is then sent again,
	// on a new connection, and its early answer logged.
	var conn net.Conn
	var r response
	for attempt := 1; ; attempt++ {
		var err error
		if conn, err = net.Dial("tcp", strings.TrimPrefix(base, "http://")); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
			collectionPath, tokens["deployer"])
		for deadline := time.Now().Add(3 * time.Second); ; {
			r = callAt(t, base, http.MethodGet, instancePath("instance-inflight"), tokens["viewer"], nil)
			if r.StatusCode == http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if r.StatusCode == http.StatusServiceUnavailable || attempt == 3 {
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		early, _ := io.ReadAll(io.LimitReader(conn, 512))
		t.Logf("attempt %d: no read saw the slot taken; the holder was answered %q", attempt, early)
		_ = conn.Close()
	}
	r.envelope(t, http.StatusServiceUnavailable, ReasonUnavailable)
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.Header.Get("Retry-After"))
	}
	_ = conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for r.StatusCode == http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("the slot was never freed")
		}
		time.Sleep(20 * time.Millisecond)
		r = callAt(t, base, http.MethodGet, instancePath("instance-inflight"), tokens["viewer"], nil)
	}
	if r.StatusCode != http.StatusNotFound {
		t.Errorf("after the slot freed: %d %s", r.StatusCode, r.body)
	}
}

// TestForbiddenIs403WithItsReason: kube-apiserver's Forbidden answers (a
// ResourceQuota, a namespace being deleted) are 403s that say why, never 500.
func TestForbiddenIs403WithItsReason(t *testing.T) {
	ctx := context.Background()
	t.Run("quota", func(t *testing.T) {
		const ns, proj = "quota-zero", "project-quota-zero"
		if err := createProjectNamespace(ns, region, proj); err != nil {
			t.Fatal(err)
		}
		if err := bindRole(ctx, ns, "ServiceAccount", "deployer", "compute.deployer"); err != nil {
			t.Fatal(err)
		}
		hard := corev1.ResourceList{"count/instances.compute.k0rdent.ai": resource.MustParse("0")}
		if _, err := clientset.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
			ObjectMeta: metav1.ObjectMeta{Name: "instances"}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// kube-controller-manager's quota controller counts it; until then
		// kube-apiserver refuses creates as uncounted (the API's 503).
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			q, err := clientset.CoreV1().ResourceQuotas(ns).Get(ctx, "instances", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(q.Status.Hard) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("kube-controller-manager never counted the quota")
			}
		}
		path := "/v1/regions/" + region + "/projects/" + proj + "/compute/instances"
		r := callBound(t, http.MethodPost, path, tokens["deployer"], createBody("instance-over-quota"))
		e := r.envelope(t, http.StatusForbidden, ReasonQuotaExceeded)
		if md, _ := e.Error.Details[0]["metadata"].(map[string]any); md["quota"] != "instances" || !strings.Contains(fmt.Sprint(md["limit"]), "=0") {
			t.Errorf("metadata = %v", e.Error.Details[0]["metadata"])
		}
	})
	t.Run("namespace being deleted", func(t *testing.T) {
		const ns, proj = "terminating-project", "project-leaving"
		if err := createProjectNamespace(ns, region, proj); err != nil {
			t.Fatal(err)
		}
		if err := bindRole(ctx, ns, "ServiceAccount", "deployer", "compute.deployer"); err != nil {
			t.Fatal(err)
		}
		// An object whose finalizer nobody removes keeps the namespace
		// Terminating while kube-controller-manager's namespace controller
		// empties it; the test lets it go at the end.
		hold := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hold", Namespace: ns, Finalizers: []string{"test.compute.k0rdent.ai/hold"}}}
		if _, err := clientset.CoreV1().ConfigMaps(ns).Create(ctx, hold, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			patch := []byte(`{"metadata":{"finalizers":null}}`)
			if _, err := clientset.CoreV1().ConfigMaps(ns).Patch(ctx, "hold", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Errorf("failed to release the namespace: %v", err)
			}
		})
		if err := clientset.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		path := "/v1/regions/" + region + "/projects/" + proj + "/compute/instances"
		r := callBound(t, http.MethodPost, path, tokens["deployer"], createBody("instance-in-terminating"))
		e := r.envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		if !strings.Contains(e.Error.Message, "being terminated") || strings.Contains(e.Error.Message, ns) {
			t.Errorf("message = %q, want the reason without the namespace's name", e.Error.Message)
		}
	})
}

func createBody(id string) map[string]any { return map[string]any{"id": id, "type": typeURI} }

// TestInstanceMetadataTotalIsBounded: the CRD's CEL rule refuses metadata
// whose keys and values together exceed 256 KiB, though each value is
// within its own 256 KiB limit; the REST API answers it as a field violation.
func TestInstanceMetadataTotalIsBounded(t *testing.T) {
	item := func(key string, n int) map[string]string {
		return map[string]string{"key": key, "value": strings.Repeat("a", n)}
	}
	cleanupInstance(t, "metadata-fits")
	r := call(t, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{"id": "metadata-fits", "type": typeURI,
		"instanceMetadata": []map[string]string{item("user-data", 200<<10)}})
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("200 KiB of metadata: %d %s", r.StatusCode, r.body)
	}
	r = call(t, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{"id": "metadata-too-big", "type": typeURI,
		"instanceMetadata": []map[string]string{item("user-data", 200<<10), item("more", 100<<10)}})
	e := r.envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
	if v := e.violations(); len(v) != 1 || v[0] != "instanceMetadata" {
		t.Errorf("violations = %v, want instanceMetadata", v)
	}
	if !strings.Contains(e.Error.Message, "262144") {
		t.Errorf("message = %q, want the bound", e.Error.Message)
	}
}

// TestCloneSourceNeedsTheCallersGet: a caller who may create instances but
// not read a PersistentVolumeClaim cannot have the operator clone it for
// them; one who may read it can.
func TestCloneSourceNeedsTheCallersGet(t *testing.T) {
	ctx := context.Background()
	const ns, proj = "clone-project", "project-clone"
	if err := createProjectNamespace(ns, region, proj); err != nil {
		t.Fatal(err)
	}
	if err := bindRole(ctx, ns, "ServiceAccount", "deployer", "compute.deployer"); err != nil {
		t.Fatal(err)
	}
	if _, err := clientset.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pvc-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get"}}}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := clientset.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pvc-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pvc-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: saNS}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	clone := func(id, p string) map[string]any {
		return map[string]any{"id": id, "type": typeURI, "disks": []map[string]any{
			{"boot": true, "source": "/v1/regions/" + region + "/projects/" + p + "/compute/volumes/secret-data"}}}
	}
	cleanupInstance(t, "clone-denied")
	r := call(t, http.MethodPost, collectionPath, tokens["deployer"], clone("clone-denied", project))
	e := r.envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	if !strings.Contains(e.Error.Message, "secret-data") {
		t.Errorf("message = %q, want the source named", e.Error.Message)
	}
	if _, err := getResource(t, "clone-denied"); !apierrors.IsNotFound(err) {
		t.Errorf("the refused instance exists: %v", err)
	}
	path := "/v1/regions/" + region + "/projects/" + proj + "/compute/instances"
	if r := callBound(t, http.MethodPost, path, tokens["deployer"], clone("clone-allowed", proj)); r.StatusCode != http.StatusCreated {
		t.Errorf("a caller who may read the volume: %d %s", r.StatusCode, r.body)
	}
}

// TestTokenAudiences: with --api-token-audiences, only tokens minted for the
// API authenticate (TokenReview with spec.audiences), kube-apiserver refuses
// those tokens itself, so whoever terminates the API cannot replay them, and
// OIDC tokens for the client ID still authenticate.
func TestTokenAudiences(t *testing.T) {
	ctx := context.Background()
	const audience = "compute.k0rdent.ai"
	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	opts.TokenAudiences = []string{audience}
	base := "http://" + startServer(t, opts)
	createWithStatus(t, seedInstance("instance-audience"), runningStatus())
	path := instancePath("instance-audience")

	tr, err := clientset.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, "viewer", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forAPI := tr.Status.Token
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := callAt(t, base, http.MethodGet, path, forAPI, nil)
		if r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token minted for %s: %d %s", audience, r.StatusCode, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	callAt(t, base, http.MethodGet, path, tokens["viewer"], nil).envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)

	if err := bindRole(ctx, projectNS, "Group", "oidc:compute-team", "compute.viewer"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	jwt := oidcissuer.SignRS256(map[string]any{"iss": issuer.URL(), "aud": oidcClientID, "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"groups": []string{"compute-team"}}, "key-1", issuer.Key("key-1"))
	for r := callAt(t, base, http.MethodGet, path, jwt, nil); r.StatusCode != http.StatusOK; r = callAt(t, base, http.MethodGet, path, jwt, nil) {
		if time.Now().After(deadline) {
			t.Fatalf("an OIDC token for the client ID: %d %s", r.StatusCode, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = forAPI
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("kube-apiserver answered the API's token with %v; want 401", err)
	}
}

// callBound is call for a caller whose RoleBinding was just made:
// kube-apiserver's RBAC learns of it by its informer, and the API caches a
// denial for a few seconds, so the authorization step's 403 is retried.
func callBound(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := call(t, method, path, token, body)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), "the caller may not") || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}
