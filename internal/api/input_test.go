package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// diskSourceReviews wraps the suite's authorizer and counts the questions
// about disk sources (persistentvolumeclaims, volumesnapshots): the reviews
// a create asks per item.
type diskSourceReviews struct {
	authorizer.Authorizer
	asked atomic.Int64
}

func (d *diskSourceReviews) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if a.GetResource() == "persistentvolumeclaims" || a.GetResource() == "volumesnapshots" {
		d.asked.Add(1)
	}
	return d.Authorizer.Authorize(ctx, a)
}

// reviewCountingServer is the suite's server with its authorizer counted.
func reviewCountingServer(t *testing.T) (string, *diskSourceReviews) {
	t.Helper()
	reviews := &diskSourceReviews{Authorizer: srv.authz}
	s := &Server{
		opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authz: reviews, base: srv.base,
		authn: srv.authn, guard: srv.guard, rate: srv.rate,
	}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts.URL, reviews
}

func cloneDisks(n int, distinct bool) []map[string]any {
	disks := make([]map[string]any, n)
	for i := range disks {
		name := "volume-1"
		if distinct {
			name = fmt.Sprintf("volume-%d", i)
		}
		disks[i] = map[string]any{"source": "/v1/regions/" + region + "/projects/" + project + "/compute/volumes/" + name}
	}
	return disks
}

// TestBoundsBeforeReviews: a create whose disks exceed the CRD's bound is
// refused with 400 before a single review of a disk source (it used to ask
// one per disk, 2,003 for 2,000 disks, and outlast the deadline as a 500
// for 9,500); within the bound, a source named by many disks is asked once.
func TestBoundsBeforeReviews(t *testing.T) {
	base, reviews := reviewCountingServer(t)
	// A deployer who may read the project's volumes: each review allows,
	// so nothing but the bound stops the fan-out.
	reader := volumeReaderToken(t)
	for _, n := range []int{computev1alpha1.MaxDisks + 1, 2000, 9500} {
		before := reviews.asked.Load()
		r := callAt(t, base, http.MethodPost, collectionPath, reader, map[string]any{
			"id": "many-disks", "type": typeURI, "disks": cloneDisks(n, true)})
		e := r.envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
		if v := e.violations(); len(v) != 1 || v[0] != "disks" {
			t.Errorf("%d disks: violations %v, want [disks]", n, v)
		}
		if asked := reviews.asked.Load() - before; asked != 0 {
			t.Errorf("%d disks: %d disk-source reviews before the refusal, want 0", n, asked)
		}
	}
	before := reviews.asked.Load()
	r := callAt(t, base, http.MethodPost, collectionPath+"?dryRun=All", reader, map[string]any{
		"id": "same-volume", "type": typeURI, "disks": cloneDisks(computev1alpha1.MaxDisks, false)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("16 disks of one volume: %d %s", r.StatusCode, r.body)
	}
	if asked := reviews.asked.Load() - before; asked != 1 {
		t.Errorf("16 disks of one volume: %d reviews, want 1", asked)
	}
	// A source that is not of the CRD's shape is refused before its review.
	before = reviews.asked.Load()
	r = callAt(t, base, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{"type": typeURI,
		"disks": []map[string]any{{"source": "/v1/regions/" + region + "/projects/" + project + "/compute/volumes/x\x00y"}}})
	r.envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
	if asked := reviews.asked.Load() - before; asked != 0 {
		t.Errorf("a malformed source was reviewed %d times before its refusal", asked)
	}
}

// TestRefusesWhatItDoesNotUnderstand: query parameters an operation does not
// take, query strings that do not parse, duplicate keys at any depth, field
// names in another case and control characters are 400s, never ignored.
func TestRefusesWhatItDoesNotUnderstand(t *testing.T) {
	createWithStatus(t, seedInstance("input-target"), runningStatus())
	deployer := tokens["deployer"]
	for _, tc := range []struct {
		name, method, path string
		body               any
		reason             string
	}{
		{"unknown parameter on GET", http.MethodGet, instancePath("input-target") + "?view=full", nil, ReasonInvalidArgument},
		{"unknown parameter on list", http.MethodGet, collectionPath + "?filter=x", nil, ReasonInvalidArgument},
		{"unknown parameter on DELETE", http.MethodDelete, instancePath("input-target") + "?force=true", nil, ReasonInvalidArgument},
		{"dryRun on PATCH", http.MethodPatch, instancePath("input-target") + "?dryRun=All", `{"description":"x"}`, ReasonInvalidArgument},
		{"bad escape in pageToken", http.MethodGet, collectionPath + "?pageToken=%%%", nil, ReasonInvalidPageToken},
		{"bad escape in pageSize", http.MethodGet, collectionPath + "?pageSize=%zz", nil, ReasonInvalidPageSize},
		{"semicolon separator", http.MethodGet, collectionPath + "?pageSize=1&a=1;b=2", nil, ReasonInvalidArgument},
		{"dryRun of another value", http.MethodPost, collectionPath + "?dryRun=true", map[string]any{"type": typeURI}, ReasonInvalidArgument},
		{"dryRun twice", http.MethodPost, collectionPath + "?dryRun=All&dryRun=All", map[string]any{"type": typeURI}, ReasonInvalidArgument},
		{"duplicate top-level key", http.MethodPost, collectionPath, `{"type":"` + typeURI + `","type":"` + typeURI + `"}`, ReasonInvalidArgument},
		{"duplicate label key", http.MethodPost, collectionPath, `{"type":"` + typeURI + `","labels":{"a":"1","a":"2"}}`, ReasonInvalidArgument},
		{"duplicate key in a disk", http.MethodPost, collectionPath, `{"type":"` + typeURI + `","disks":[{"sizeGb":1,"sizeGb":2}]}`, ReasonInvalidArgument},
		{"field in another case", http.MethodPost, collectionPath, `{"Type":"` + typeURI + `"}`, ReasonInvalidArgument},
		{"duplicate key in a PATCH", http.MethodPatch, instancePath("input-target"), `{"description":"a","description":"b"}`, ReasonInvalidArgument},
		{"duplicate label in a PATCH", http.MethodPatch, instancePath("input-target"), `{"labels":{"a":"1","a":null}}`, ReasonInvalidArgument},
		{"duplicate metadata field in a PATCH", http.MethodPatch, instancePath("input-target"), `{"instanceMetadata":[{"key":"a","key":"b"}]}`, ReasonInvalidArgument},
		{"NUL in a description", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "description": "a\x00b"}, ReasonInvalidArgument},
		{"escape in a displayName", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "displayName": "a\x1b[2Jb"}, ReasonInvalidArgument},
		{"line break in a displayName", http.MethodPatch, instancePath("input-target"), map[string]any{"displayName": "a\nb"}, ReasonInvalidArgument},
		{"NUL in a metadata value", http.MethodPatch, instancePath("input-target"), map[string]any{
			"instanceMetadata": []map[string]string{{"key": "user-data", "value": "x\x00"}}}, ReasonInvalidArgument},
		{"65 labels", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "labels": manyLabels(computev1alpha1.MaxLabels + 1)}, ReasonInvalidArgument},
		{"65 labels by PATCH", http.MethodPatch, instancePath("input-target"), map[string]any{"labels": manyLabels(computev1alpha1.MaxLabels + 1)}, ReasonInvalidArgument},
		{"a label value too long", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "labels": map[string]string{"a": strings.Repeat("x", 64)}}, ReasonInvalidArgument},
		{"a label key of another syntax", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "labels": map[string]string{"a b": "x"}}, ReasonInvalidArgument},
		{"129 metadata items", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "instanceMetadata": manyMetadata(computev1alpha1.MaxInstanceMetadataItems + 1)}, ReasonInvalidArgument},
		{"9 nics", http.MethodPost, collectionPath, map[string]any{"type": typeURI, "nics": make([]map[string]any, computev1alpha1.MaxNICs+1)}, ReasonInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call(t, tc.method, tc.path, deployer, tc.body).envelope(t, http.StatusBadRequest, tc.reason)
		})
	}
	// What is allowed stays allowed: multi-line text, 64 labels, a known parameter.
	in, err := getResource(t, "input-target")
	if err != nil {
		t.Fatal(err)
	}
	r := call(t, http.MethodPatch, instancePath("input-target"), deployer, map[string]any{
		"description": "line one\n\tline two", "labels": manyLabels(computev1alpha1.MaxLabels - len(in.Labels))})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("a multi-line description and labels to the bound: %d %s", r.StatusCode, r.body)
	}
	if r := call(t, http.MethodGet, collectionPath+"?pageSize=1", deployer, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("pageSize=1: %d %s", r.StatusCode, r.body)
	}
}

func manyLabels(n int) map[string]string {
	labels := map[string]string{}
	for i := range n {
		labels[fmt.Sprintf("label-%d", i)] = "v"
	}
	return labels
}

func manyMetadata(n int) []map[string]string {
	items := make([]map[string]string, n)
	for i := range items {
		items[i] = map[string]string{"key": fmt.Sprintf("k%d", i), "value": "v"}
	}
	return items
}

// TestDryRunCreatesNothing: dryRun=All validates through kube-apiserver's
// own dry run and answers 200 with the would-be instance; nothing is stored.
// What kube-apiserver refuses is still refused.
func TestDryRunCreatesNothing(t *testing.T) {
	r := call(t, http.MethodPost, collectionPath+"?dryRun=All", tokens["deployer"], map[string]any{
		"id": "dry-run-1", "type": typeURI, "labels": map[string]string{"team": "ml"}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("dryRun=All: %d %s", r.StatusCode, r.body)
	}
	var got Instance
	r.json(t, &got)
	if got.ID != "dry-run-1" || got.Labels["team"] != "ml" || got.Lifecycle.Status != computev1alpha1.LifecycleProvisioning {
		t.Errorf("the would-be instance = %+v", got)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		t.Errorf("a dry run answered Location %q", loc)
	}
	if _, err := getResource(t, "dry-run-1"); !apierrors.IsNotFound(err) {
		cleanupInstance(t, "dry-run-1")
		t.Fatalf("the dry run stored the instance (get: %v)", err)
	}
	// The CRD's CEL rule (a disk needs a source or a size) is kube-apiserver's.
	call(t, http.MethodPost, collectionPath+"?dryRun=All", tokens["deployer"], map[string]any{
		"type": typeURI, "disks": []map[string]any{{"boot": true}}}).envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
	// The caller's own rights still apply.
	call(t, http.MethodPost, collectionPath+"?dryRun=All", tokens["viewer"], map[string]any{"type": typeURI}).
		envelope(t, http.StatusForbidden, ReasonPermissionDenied)
}

// TestQueryParamsAreTheDocument: the query parameters each operation takes
// (queryParams) are those openapi.json documents for it, no more, no fewer.
func TestQueryParamsAreTheDocument(t *testing.T) {
	for _, e := range routeTable {
		if e.operationID == "" || e.public() {
			continue
		}
		op := spec.Paths.Value(e.template).GetOperation(e.method)
		var documented []string
		for _, p := range op.Parameters {
			if p.Value != nil && p.Value.In == "query" {
				documented = append(documented, p.Value.Name)
			}
		}
		slices.Sort(documented)
		taken := slices.Sorted(slices.Values(queryParams[e.operationID]))
		if !slices.Equal(documented, taken) {
			t.Errorf("%s: documented query parameters %v, served %v", e.operationID, documented, taken)
		}
	}
}

// volumeReaderToken is a token of a service account bound to compute.deployer
// and to get on the project's PersistentVolumeClaims, once its rights are
// in force.
func volumeReaderToken(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	const name = "volume-reader"
	for _, o := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: saNS}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:pvc-reader"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get"}}}},
	} {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, role := range []string{"compute.deployer", "test:pvc-reader"} {
		if err := bindRole(ctx, projectNS, "ServiceAccount", name, role); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := clientset.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kube-apiserver's RBAC learns of the bindings by its informer.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "system:serviceaccount:" + saNS + ":" + name, Groups: []string{"system:serviceaccounts"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: projectNS, Verb: "get", Resource: "persistentvolumeclaims"}}}
		got, err := clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		return err == nil && got.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("the volume reader's rights are not in force: %v", err)
	}
	return tr.Status.Token
}

// stalledAuthorizer answers nothing until the request's deadline passes.
type stalledAuthorizer struct{ authorizer.Authorizer }

func (stalledAuthorizer) Authorize(ctx context.Context, _ authorizer.Attributes) (authorizer.Decision, string, error) {
	<-ctx.Done()
	return authorizer.DecisionNoOpinion, "", fmt.Errorf("failed to review: %w", ctx.Err())
}

// TestDeadlineIsNotInternal: a request that outlasts --api-request-timeout
// (here an authorizer that never answers) is a retryable 503 with the
// envelope and Retry-After, not a 500 INTERNAL.
func TestDeadlineIsNotInternal(t *testing.T) {
	opts := srv.opts
	opts.RequestTimeout = 200 * time.Millisecond
	s := &Server{
		opts: opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authz: stalledAuthorizer{srv.authz}, base: srv.base,
		authn: srv.authn, guard: srv.guard, rate: srv.rate,
	}
	s.ready.Store(true)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	r := callAt(t, ts.URL, http.MethodGet, instancePath("no-such-instance"), tokens["viewer"], nil)
	r.envelope(t, http.StatusServiceUnavailable, ReasonUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Error("the 503 has no Retry-After")
	}
}
