package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestStrangerCostsNoKubeAPIServerRead: a caller with no role at all asking
// about a project that does not exist makes the API read nothing from
// kube-apiserver (counted on the manager's own transport): the project is
// looked up in the informer cache only. Its 403 costs authorization, as
// every request's does.
func TestStrangerCostsNoKubeAPIServerRead(t *testing.T) {
	var reads atomic.Int64
	var counting atomic.Bool
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			// The guard reads the cluster's service-account keys on its own schedule.
			review := strings.Contains(r.URL.Path, "tokenreviews") || strings.Contains(r.URL.Path, "subjectaccessreviews") ||
				strings.HasPrefix(r.URL.Path, "/openid/") || strings.HasPrefix(r.URL.Path, "/.well-known/")
			if counting.Load() && r.Method == http.MethodGet && !review && r.URL.Query().Get("watch") != "true" {
				reads.Add(1)
				t.Logf("kube-apiserver read: %s %s", r.Method, r.URL)
			}
			return rt.RoundTrip(r)
		})
	})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.opts
	opts.Guard = nil
	opts.BindAddress = "127.0.0.1:0"
	s, err := AddToManager(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, err := s.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	waitFor(t, "the API is ready", func() bool { return s.ready.Load() })
	// The stranger's token is reviewed once, before counting starts.
	unknown := "/v1/regions/" + region + "/projects/project-nobody-has/compute/instances"
	callAt(t, base, http.MethodGet, unknown, tokens["stranger"], nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	counting.Store(true)
	for i := range 100 {
		r := callAt(t, base, http.MethodGet, unknown+fmt.Sprintf("/instance-%d", i%3), tokens["stranger"], nil)
		r.envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	}
	counting.Store(false)
	if n := reads.Load(); n != 0 {
		t.Errorf("100 requests of a stranger for an unknown project cost %d kube-apiserver reads, want 0", n)
	}
}

// recordingAuthorizer records the questions it is asked.
type recordingAuthorizer struct {
	authorizer.Authorizer
	mu         sync.Mutex
	asked      []string
	namespaces []string
}

func (a *recordingAuthorizer) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	a.mu.Lock()
	ns := "no namespace"
	switch {
	case attrs.GetNamespace() == projectNS:
		ns = "the project's namespace"
	case attrs.GetNamespace() != "":
		ns = "a namespace of its own"
	}
	a.namespaces = append(a.namespaces, attrs.GetNamespace())
	a.asked = append(a.asked, fmt.Sprintf("%s %s in %s, name %q", attrs.GetVerb(), attrs.GetResource(), ns, attrs.GetName()))
	a.mu.Unlock()
	return a.Authorizer.Authorize(ctx, attrs)
}

func (a *recordingAuthorizer) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = nil
	return out
}

func (a *recordingAuthorizer) takeNamespaces() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.namespaces
	a.namespaces = nil
	return out
}

// TestUnknownProjectIsRefusedByTheSamePath: a stranger's 403 for a project
// that does not exist asks the same questions, each as new to the
// authorizer's cache, as its 403 for a project that does: the answer's time
// says nothing of existence. (Before, an unknown project was asked about
// every namespace at once, one cached question for all unknown projects and
// no second question by name.)
func TestUnknownProjectIsRefusedByTheSamePath(t *testing.T) {
	rec := &recordingAuthorizer{Authorizer: srv.authz}
	s := &Server{opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authn: srv.authn, authz: rec,
		base: srv.base, scopes: newScopeCache()}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	asked, namespaces := map[string][]string{}, map[string][]string{}
	for name, p := range map[string]string{"known": project, "unknown": "project-unknown-1", "unknown too": "project-unknown-2"} {
		path := "/v1/regions/" + region + "/projects/" + p + "/compute/instances/instance-1"
		callAt(t, ts.URL, http.MethodGet, path, tokens["stranger"], nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		asked[name], namespaces[name] = rec.take(), rec.takeNamespaces()
	}
	t.Logf("known: %q; unknown: %q", asked["known"], asked["unknown"])
	if len(asked["known"]) != len(asked["unknown"]) {
		t.Fatalf("a known project's 403 asked %d questions, an unknown one's %d", len(asked["known"]), len(asked["unknown"]))
	}
	for i, q := range asked["known"] {
		want := strings.Replace(q, "the project's namespace", "a namespace of its own", 1)
		if asked["unknown"][i] != want {
			t.Errorf("question %d: known %q, unknown %q", i, q, asked["unknown"][i])
		}
	}
	// Each unknown project is a question of its own, never one the cache
	// answers for all of them (as a known project's is its own).
	if len(namespaces["unknown"]) == 0 || len(namespaces["unknown too"]) == 0 || namespaces["unknown"][0] == namespaces["unknown too"][0] {
		t.Errorf("two unknown projects were asked about as namespaces %q and %q", namespaces["unknown"], namespaces["unknown too"])
	}
}

// slowPost sends a create whose body never finishes, from the caller of
// token, and returns the connection (to read its answer from).
func slowPost(t *testing.T, base, token string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
		collectionPath, token)
	return conn
}

// sharingServer is a server of the suite's with a global bound of
// requests in flight and shares of it.
func sharingServer(t *testing.T, global, perPrincipal, perProject int, bodyTimeout time.Duration) string {
	t.Helper()
	opts := srv.opts
	opts.BodyReadTimeout = bodyTimeout
	s := &Server{opts: opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authn: srv.authn, authz: srv.authz,
		base: srv.base, inFlight: newInFlight(global), principalShares: newShares(perPrincipal), projectShares: newShares(perProject)}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestSlowBodiesOfOneCallerLeaveOthersServed: a deployer whose creates'
// bodies never finish holds at most its share of the in-flight slots (its
// further requests are answered 429), and a viewer's read is served.
// Without shares the slow bodies hold every slot and the read gets 503.
func TestSlowBodiesOfOneCallerLeaveOthersServed(t *testing.T) {
	const global, perPrincipal = 4, 2
	base := sharingServer(t, global, perPrincipal, 3, time.Minute)
	for range global {
		slowPost(t, base, tokens["deployer"])
	}
	// The slow creates are in once the deployer's next request is refused.
	var r response
	waitFor(t, "the deployer's share is held", func() bool {
		r = callAt(t, base, http.MethodGet, instancePath("instance-share"), tokens["deployer"], nil)
		return r.StatusCode == http.StatusTooManyRequests
	})
	r.envelope(t, http.StatusTooManyRequests, ReasonRateLimited)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	for range 5 {
		if r := callAt(t, base, http.MethodGet, instancePath("instance-share"), tokens["viewer"], nil); r.StatusCode != http.StatusNotFound {
			t.Fatalf("the viewer's read during the deployer's slow creates: %d %s", r.StatusCode, r.body)
		}
	}
}

// TestBodyMustArriveWithinItsDeadline: a body that does not arrive within
// --api-body-read-timeout is answered 408 with the envelope then, not when
// the server's read timeout ends.
func TestBodyMustArriveWithinItsDeadline(t *testing.T) {
	base := sharingServer(t, 0, 0, 0, 300*time.Millisecond)
	conn := slowPost(t, base, tokens["deployer"])
	began := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that never finished: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), ReasonRequestTimeout) {
		t.Errorf("answer: %d %s", resp.StatusCode, body)
	}
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Errorf("answered after %s", elapsed)
	}
}
