package metricsserving

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/k0rdent-ai/instance-operator/internal/api"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to stop the control plane:", err)
	}
	os.Exit(code)
}

func TestMetricsAreSecureByDefault(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f := BindFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !f.Secure || f.BindAddress != ":8443" {
		t.Errorf("defaults: secure=%v address=%q, want secure on :8443", f.Secure, f.BindAddress)
	}
	opts := f.Options()
	if !opts.SecureServing || opts.FilterProvider == nil {
		t.Errorf("default options serve without TLS or without the authn/authz filter: %+v", opts)
	}
}

// TestScrapeNeedsAMetricsReaderToken: the kube-apiserver authenticates and
// authorizes every scrape, against the metrics-reader ClusterRole as
// config/rbac ships it.
func TestScrapeNeedsAMetricsReaderToken(t *testing.T) {
	ctx := context.Background()
	reader := metricsReaderRole(t)
	if err := env.Client.Create(ctx, reader); err != nil {
		t.Fatal(err)
	}
	const ns = "scrapers"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: ns}},
	}); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	clientset := kubernetes.NewForConfigOrDie(env.Config)
	for _, name := range []string{"prometheus", "stranger"} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
		tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tokens[name] = tr.Status.Token
	}

	url := startManager(t, Flags{BindAddress: freeAddress(t), Secure: true})
	for _, tc := range []struct {
		caller string
		token  string
		want   int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime's filter answers a TokenReview that rejects
		// the token with an error, and so with 500, not 401.
		{"a token the kube-apiserver never issued", "not-a-token", http.StatusInternalServerError},
		{"a service account without metrics-reader", tokens["stranger"], http.StatusForbidden},
		{"a service account bound to metrics-reader", tokens["prometheus"], http.StatusOK},
	} {
		code, body := scrape(t, "https://"+url, tc.token)
		if code != tc.want {
			t.Errorf("%s: %d, want %d: %.200s", tc.caller, code, tc.want, body)
		}
		if tc.want == http.StatusOK && !strings.Contains(body, "# TYPE rest_client_requests_total") {
			t.Errorf("%s: 200 without the manager's metrics: %.300s", tc.caller, body)
		}
	}
	if code, _ := scrape(t, "http://"+url, tokens["prometheus"]); code == http.StatusOK {
		t.Errorf("secure metrics answered plain HTTP")
	}
}

// TestMetricsTokenFloodIsGuarded: random bearer tokens sent to the metrics
// port cost at most the guard's burst of TokenReviews (counted by
// kube-apiserver), as on the REST API, instead of one each.
func TestMetricsTokenFloodIsGuarded(t *testing.T) {
	const burst, flood = 5, 40
	opts := api.DefaultOptions()
	opts.AuthFailureRate, opts.AuthFailureBurst = 0.01, burst
	guard, err := api.NewTokenGuard(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	url := startManager(t, Flags{BindAddress: freeAddress(t), Secure: true, Guard: guard})
	cs := kubernetes.NewForConfigOrDie(env.Config)
	before := tokenReviews(t, cs)
	codes := map[int]int{}
	for i := range flood {
		code, _ := scrape(t, "https://"+url, fmt.Sprintf("random-token-%d-%d", time.Now().UnixNano(), i))
		codes[code]++
	}
	reviews := tokenReviews(t, cs) - before
	t.Logf("%d random tokens: answers %v, %.0f TokenReviews", flood, codes, reviews)
	if reviews > burst+1 {
		t.Errorf("a flood of %d random tokens on the metrics port cost %.0f TokenReviews; want at most the burst %d (+1)", flood, reviews, burst)
	}
	if codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("no token of the flood was refused before review: %v", codes)
	}
}

// tokenReviews is kube-apiserver's own count of the TokenReviews it served.
func tokenReviews(t *testing.T, cs kubernetes.Interface) float64 {
	t.Helper()
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="tokenreviews"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("bad metric line %q", line)
		}
		total += v
	}
	return total
}

func TestInsecureMetricsForLocalUse(t *testing.T) {
	url := startManager(t, Flags{BindAddress: freeAddress(t), Secure: false})
	if code, body := scrape(t, "http://"+url, ""); code != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Errorf("--metrics-secure=false without a token: %d %.200s", code, body)
	}
}

// metricsReaderRole is config/rbac's metrics-reader ClusterRole.
func metricsReaderRole(t *testing.T) *rbacv1.ClusterRole {
	for _, u := range env.Kustomize(t, "rbac") {
		if u.GetKind() != "ClusterRole" || u.GetName() != "metrics-reader" {
			continue
		}
		role := &rbacv1.ClusterRole{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, role); err != nil {
			t.Fatal(err)
		}
		return role
	}
	t.Fatal("config/rbac has no metrics-reader ClusterRole")
	return nil
}

// startManager runs a manager serving metrics as f says and returns its address.
func startManager(t *testing.T, f Flags) string {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: f.Options(), HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", f.BindAddress); err == nil {
			_ = c.Close()
			return f.BindAddress
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the metrics server never listened on %s", f.BindAddress)
	return ""
}

func scrape(t *testing.T, base, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// The manager's certificate is self-signed, as in a cluster where the
	// ServiceMonitor scrapes with insecureSkipVerify.
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
