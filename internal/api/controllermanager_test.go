package api

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// The tests of this file need kube-controller-manager's controllers
// (ClusterRole aggregation, ResourceQuota counting), which the suite's
// control plane runs beside the kube-apiserver.

// waitUntil polls cond every 100ms for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newServiceAccountToken makes a service account in saNS and mints its token.
func newServiceAccountToken(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: saNS}}); err != nil {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("failed to mint a token for %s: %v", name, err)
	}
	return tr.Status.Token
}

// TestViewRoleReadsInstancesThroughAggregation: a caller bound only to the
// built-in `view` ClusterRole reads instances over REST, because
// kube-controller-manager aggregates compute.viewer's rules into it (the
// label in config/rbac/api); and cannot create, as `view` gains nothing of
// compute.deployer's.
func TestViewRoleReadsInstancesThroughAggregation(t *testing.T) {
	ctx := context.Background()
	createWithStatus(t, seedInstance("instance-view"), runningStatus())
	token := newServiceAccountToken(t, "plain-view")
	if err := bindRole(ctx, projectNS, "ServiceAccount", "plain-view", "view"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the view ClusterRole to gain the instances rule", func() bool {
		role := &rbacv1.ClusterRole{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: "view"}, role); err != nil {
			return false
		}
		for _, rule := range role.Rules {
			if slices.Contains(rule.APIGroups, computev1alpha1.GroupVersion.Group) && slices.Contains(rule.Resources, "instances") {
				return true
			}
		}
		return false
	})

	r := call(t, http.MethodGet, instancePath("instance-view"), token, nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET as a view-bound caller = %d: %s", r.StatusCode, r.body)
	}
	var got Instance
	r.json(t, &got)
	if got.ID != "instance-view" {
		t.Errorf("got instance %q", got.ID)
	}
	if r := call(t, http.MethodGet, collectionPath, token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("list as a view-bound caller = %d: %s", r.StatusCode, r.body)
	}
	call(t, http.MethodPost, collectionPath, token, map[string]any{"type": typeURI}).
		envelope(t, http.StatusForbidden, ReasonPermissionDenied)
}

// TestCreateOverQuotaIsQuotaExceeded: a count/instances.compute.k0rdent.ai
// ResourceQuota in a project's namespace, counted by kube-controller-manager
// and enforced by kube-apiserver's quota admission, refuses the create past
// its limit, and the REST API answers it as 403 QUOTA_EXCEEDED naming the
// quota and its limit; the refused instance is not stored.
func TestCreateOverQuotaIsQuotaExceeded(t *testing.T) {
	ctx := context.Background()
	const (
		ns, quotaProject = "us-texas-1-project-quota", "project-quota"
		quotaName        = "instances"
		resourceName     = "count/instances.compute.k0rdent.ai"
	)
	if err := createProjectNamespace(ns, region, quotaProject); err != nil {
		t.Fatal(err)
	}
	if err := bindRole(ctx, ns, "ServiceAccount", "deployer", "compute.deployer"); err != nil {
		t.Fatal(err)
	}
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: quotaName, Namespace: ns},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{resourceName: resource.MustParse("2")}},
	}
	if err := env.Client.Create(ctx, quota); err != nil {
		t.Fatal(err)
	}
	// Until kube-controller-manager has counted it, kube-apiserver refuses
	// every create the quota constrains.
	waitUntil(t, "the quota to be counted", func() bool {
		got := &corev1.ResourceQuota{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: quotaName}, got); err != nil {
			return false
		}
		_, counted := got.Status.Hard[resourceName]
		return counted
	})

	path := "/v1/regions/" + region + "/projects/" + quotaProject + "/compute/instances"
	for _, id := range []string{"quota-1", "quota-2"} {
		r := call(t, http.MethodPost, path, tokens["deployer"], map[string]any{"id": id, "type": typeURI})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("create %s within the quota = %d: %s", id, r.StatusCode, r.body)
		}
	}
	e := call(t, http.MethodPost, path, tokens["deployer"], map[string]any{"id": "quota-3", "type": typeURI}).
		envelope(t, http.StatusForbidden, ReasonQuotaExceeded)
	md, _ := e.Error.Details[0]["metadata"].(map[string]any)
	if md["quota"] != quotaName || md["limit"] != resourceName+"=2" || md["used"] != resourceName+"=2" ||
		md["project"] != quotaProject || md["region"] != region {
		t.Errorf("metadata = %v, want the quota %q, its limit and use of 2, the project and region", md, quotaName)
	}
	if want := `project "project-quota" of region "us-texas-1" is at its quota "instances": limited count/instances.compute.k0rdent.ai=2, used count/instances.compute.k0rdent.ai=2`; e.Error.Message != want {
		t.Errorf("message = %q, want %q", e.Error.Message, want)
	}
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "quota-3"}, &computev1alpha1.Instance{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the refused instance: err = %v, want not found", err)
	}
}
