package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/oidcissuer"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// The suite's fixtures: a real kube-apiserver, a manager running the API on
// a real listener, an OIDC issuer, and service accounts with real RBAC.
var (
	env       *testenv.Env
	clientset *kubernetes.Clientset
	srv       *Server
	baseURL   string
	issuer    *oidcissuer.Issuer
	spec      *openapi3.T
)

const (
	region  = "us-texas-1"
	project = "project-x9y8z7"
	// projectNS serves region/project.
	projectNS = "us-texas-1-project-x9y8z7"
	// saNS holds the callers' service accounts.
	saNS = "callers"
	// oidcClientID is the audience the API accepts.
	oidcClientID = "compute-api"
)

// tokens of the callers, minted by the kube-apiserver (TokenRequest).
var tokens = map[string]string{}

func TestMain(m *testing.M) {
	// Fuzzing workers run only the fuzz targets, which need no control plane.
	for _, arg := range os.Args[1:] {
		if strings.HasPrefix(arg, "-test.fuzzworker") {
			os.Exit(m.Run())
		}
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// API_TEST_LOG=1 shows the server's logs.
	if os.Getenv("API_TEST_LOG") != "" {
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	var err error
	// kube-controller-manager aggregates the shipped roles into view, edit
	// and admin, and counts the quotas the API answers QUOTA_EXCEEDED for.
	env, err = testenv.Start(testenv.WithControllerManager())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "failed to stop the control plane:", err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := setUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "failed to set up the suite:", err)
		return 1
	}
	defer issuer.Close()
	return m.Run()
}

func setUp(ctx context.Context) error {
	var err error
	clientset, err = kubernetes.NewForConfig(env.Config)
	if err != nil {
		return err
	}
	issuer, err = oidcissuer.New()
	if err != nil {
		return err
	}
	caFile := filepath.Join(os.TempDir(), fmt.Sprintf("api-oidc-ca-%d.pem", os.Getpid()))
	if err := os.WriteFile(caFile, issuer.CAPEM, 0o600); err != nil {
		return err
	}

	// The shipped ClusterRoles, applied with the real kubectl.
	root, err := controlplane.ModuleRoot()
	if err != nil {
		return err
	}
	if out, err := kubectl("apply", "-k", filepath.Join(root, "config", "rbac", "api")); err != nil {
		return fmt.Errorf("kubectl apply -k config/rbac/api: %w: %s", err, out)
	}

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: saNS}},
		{ObjectMeta: metav1.ObjectMeta{Name: projectNS, Labels: map[string]string{
			computev1alpha1.RegionLabel: region, computev1alpha1.ProjectLabel: project}}},
	} {
		if err := env.Client.Create(ctx, ns); err != nil {
			return err
		}
	}
	bindings := map[string]string{"viewer": "compute.viewer", "deployer": "compute.deployer"}
	for _, name := range []string{"viewer", "deployer", "stranger", "admin"} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: saNS}}); err != nil {
			return err
		}
		tr, err := clientset.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("failed to mint a token for %s: %w", name, err)
		}
		tokens[name] = tr.Status.Token
		if role, ok := bindings[name]; ok {
			if err := bindRole(ctx, projectNS, "ServiceAccount", name, role); err != nil {
				return err
			}
		}
	}
	// admin may do anything with instances anywhere: it learns of missing projects.
	if err := env.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "compute-admin-sa"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "admin", Namespace: saNS}},
	}); err != nil {
		return err
	}

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	opts := DefaultOptions()
	opts.BindAddress = "127.0.0.1:0"
	opts.OIDCIssuerURL = issuer.URL()
	opts.OIDCClientID = oidcClientID
	opts.OIDCCAFile = caFile
	opts.OIDCGroupsClaim = "groups"
	opts.RateLimit = 1e6
	opts.RateBurst = 1e6
	// The suite's tests send bad tokens on purpose; the throttle has its own tests.
	opts.AuthFailureRate = 1e6
	opts.AuthFailureBurst = 1e6
	srv, err = AddToManager(mgr, opts)
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "the manager stopped:", err)
		}
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	addr, err := srv.Addr(waitCtx)
	if err != nil {
		return fmt.Errorf("the API never listened: %w", err)
	}
	baseURL = "http://" + addr
	for {
		resp, err := http.Get(baseURL + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-waitCtx.Done():
			return fmt.Errorf("the API never became ready")
		case <-time.After(50 * time.Millisecond):
		}
	}
	resp, err := http.Get(baseURL + "/openapi.json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	// kin-openapi checks date-time by itself; uuid is opt-in.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122))
	loader := openapi3.NewLoader()
	spec, err = loader.LoadFromData(data)
	if err != nil {
		return fmt.Errorf("the served OpenAPI document does not load: %w", err)
	}
	if err := spec.Validate(ctx); err != nil {
		return fmt.Errorf("the served OpenAPI document is invalid: %w", err)
	}
	return nil
}

// kubectl runs the built kubectl as the cluster admin.
func kubectl(args ...string) (string, error) {
	kubeconfig, err := env.Kubeconfig()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(env.AssetsDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func ptr[T any](v T) *T { return &v }

func bindRole(ctx context.Context, ns, kind, name, clusterRole string) error {
	subject := rbacv1.Subject{Kind: kind, Name: name}
	if kind == "ServiceAccount" {
		subject.Namespace = saNS
	} else {
		subject.APIGroup = rbacv1.GroupName
	}
	err := env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: strings.ToLower(kind) + "-" + strings.ReplaceAll(name, ":", "-") + "-" + clusterRole, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{subject},
	})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// response is an answer of the API, already checked against the OpenAPI document.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response body is not JSON: %v: %s", err, r.body)
	}
}

// errorBody is the envelope, decoded.
type errorBody struct {
	Error struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Details []map[string]any `json:"details"`
	} `json:"error"`
}

func (r response) envelope(t *testing.T, wantStatus int, wantReason string) errorBody {
	t.Helper()
	if r.StatusCode != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", r.StatusCode, wantStatus, r.body)
	}
	var e errorBody
	r.json(t, &e)
	if e.Error.Code != wantStatus {
		t.Errorf("error.code = %d, want %d", e.Error.Code, wantStatus)
	}
	if e.Error.Message == "" {
		t.Errorf("error.message is empty")
	}
	if len(e.Error.Details) == 0 || e.Error.Details[0]["@type"] != typeErrorInfo {
		t.Fatalf("details[0] is not an ErrorInfo: %s", r.body)
	}
	if got := e.Error.Details[0]["reason"]; got != wantReason {
		t.Errorf("reason = %v, want %s; body %s", got, wantReason, r.body)
	}
	if got := e.Error.Details[0]["domain"]; got != Domain {
		t.Errorf("domain = %v, want %s", got, Domain)
	}
	for _, leak := range []string{"goroutine", ".go:", "spec.", "metadata.", "compute.k0rdent.ai/v1alpha1", "namespace"} {
		if strings.Contains(e.Error.Message, leak) {
			t.Errorf("error message leaks %q: %s", leak, e.Error.Message)
		}
	}
	return e
}

// violations returns the BadRequest detail's field names.
func (e errorBody) violations() []string {
	var out []string
	for _, d := range e.Error.Details {
		if d["@type"] != typeBadRequest {
			continue
		}
		fvs, _ := d["fieldViolations"].([]any)
		for _, fv := range fvs {
			if m, ok := fv.(map[string]any); ok {
				out = append(out, fmt.Sprint(m["field"]))
			}
		}
	}
	return out
}

// call makes a request with a bearer token (none when token is "") and
// validates the response against the served OpenAPI document.
func call(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	return callAt(t, baseURL, method, path, token, body, headers...)
}

// callAt is call against the server at base.
func callAt(t *testing.T, base, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{Response: resp, body: data}
	validateResponse(t, method, req.URL.Path, r)
	return r
}

// validateResponse checks the status, content type and body against the
// served document's operation for the path, or against Error for a path or
// method the document does not have.
func validateResponse(t *testing.T, method, path string, r response) {
	t.Helper()
	var schema *openapi3.Schema
	rt, ok := parsePath(path)
	var op *openapi3.Operation
	if ok {
		if item := spec.Paths.Value(rt.template()); item != nil {
			op = item.GetOperation(method)
		}
	} else if item := spec.Paths.Value(path); item != nil {
		op = item.GetOperation(method)
	}
	if op == nil {
		schema = spec.Components.Schemas["Error"].Value
	} else {
		ref := op.Responses.Status(r.StatusCode)
		if ref == nil || ref.Value == nil {
			t.Fatalf("%s %s answered %d, which the OpenAPI document does not declare; body %s", method, path, r.StatusCode, r.body)
		}
		for name := range ref.Value.Headers {
			if r.Header.Get(name) == "" {
				t.Fatalf("%s %s answered %d without the header %s that the document declares", method, path, r.StatusCode, name)
			}
		}
		if len(ref.Value.Content) == 0 {
			if len(r.body) != 0 {
				t.Fatalf("%s %s answered %d with a body, which the document does not declare: %s", method, path, r.StatusCode, r.body)
			}
			return
		}
		mt := ref.Value.Content.Get("application/json")
		if mt == nil {
			return // text/plain probes
		}
		schema = mt.Schema.Value
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type = %q, want application/json", method, path, ct)
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %s", method, path, err, r.body)
	}
	if err := schema.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		t.Fatalf("%s %s: %d body does not match the OpenAPI document: %v\nbody: %s", method, path, r.StatusCode, err, r.body)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// createProjectNamespace makes (once) the namespace serving region and project.
func createProjectNamespace(name, region, project string) error {
	err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		computev1alpha1.RegionLabel: region, computev1alpha1.ProjectLabel: project}}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func encodePageTokenRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
