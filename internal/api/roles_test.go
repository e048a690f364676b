package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

// TestShippedRoles: the ClusterRoles in config/rbac/api, as installed in the
// cluster by kubectl, grant what their names promise and carry the labels
// that aggregate them into view, edit and admin (the aggregation itself is
// kube-controller-manager's, which envtest does not run).
func TestShippedRoles(t *testing.T) {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, name string
		verbs      []string
		aggregate  []string
	}{
		{"compute_viewer_role.yaml", "compute.viewer", []string{"get", "list", "watch"}, []string{"view", "edit", "admin"}},
		{"compute_deployer_role.yaml", "compute.deployer", []string{"get", "list", "watch", "create", "patch", "update", "delete"}, []string{"edit", "admin"}},
		{"compute_admin_role.yaml", "compute.admin", []string{"get", "list", "watch", "create", "patch", "update", "delete", "deletecollection", "orphan", "finalize", "pause"}, []string{"admin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "api", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var file rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(data, &file); err != nil {
				t.Fatal(err)
			}
			var role rbacv1.ClusterRole
			if err := env.Client.Get(context.Background(), client.ObjectKey{Name: tc.name}, &role); err != nil {
				t.Fatalf("not installed: %v", err)
			}
			if file.Name != tc.name {
				t.Errorf("name = %q", file.Name)
			}
			var verbs []string
			for _, rule := range role.Rules {
				if slices.Contains(rule.APIGroups, "compute.k0rdent.ai") && slices.Contains(rule.Resources, "instances") {
					verbs = append(verbs, rule.Verbs...)
				}
			}
			slices.Sort(verbs)
			want := slices.Clone(tc.verbs)
			slices.Sort(want)
			if !slices.Equal(verbs, want) {
				t.Errorf("verbs on instances = %v, want %v", verbs, want)
			}
			for _, agg := range []string{"view", "edit", "admin"} {
				got := role.Labels["rbac.authorization.k8s.io/aggregate-to-"+agg] == "true"
				if got != slices.Contains(tc.aggregate, agg) {
					t.Errorf("aggregate-to-%s = %v", agg, got)
				}
			}
		})
	}
}

// TestInstallsKeepRoleNames: the API's ClusterRoles are part of the product
// (users bind them by name), so the install overlays, which prefix the
// operator's own objects, must leave their names alone.
func TestInstallsKeepRoleNames(t *testing.T) {
	for _, overlay := range []string{"default", "kubevirt"} {
		var names []string
		for _, u := range env.Kustomize(t, overlay) {
			if u.GetKind() == "ClusterRole" {
				names = append(names, u.GetName())
			}
		}
		for _, want := range []string{"compute.viewer", "compute.deployer", "compute.admin", "instance-operator-manager-role"} {
			if !slices.Contains(names, want) {
				t.Errorf("config/%s renders ClusterRoles %v, want %s among them", overlay, names, want)
			}
		}
	}
}

// TestAccessLog: every request leaves one structured line with its request
// ID, route template, status, caller and duration.
func TestAccessLog(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		lines = append(lines, args)
		mu.Unlock()
	}, funcr.Options{})
	s := &Server{opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live,
		authn: srv.authn, authz: srv.authz, base: logger, rate: newRateLimiter(1e6, 1e6)}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+instancePath("no-such-instance"), nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	req.Header.Set("X-Request-Id", "access-log-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	var found string
	for _, l := range lines {
		if strings.Contains(l, `"requestID"="access-log-1"`) && strings.Contains(l, `"msg"="request"`) {
			found = l
		}
	}
	if found == "" {
		t.Fatalf("no access log line for the request; lines: %q", lines)
	}
	for _, want := range []string{
		`"method"="GET"`, `"route"="/v1/regions/{region}/projects/{project}/compute/instances/{id}"`,
		`"status"=404`, `"user"="system:serviceaccount:callers:viewer"`, `"duration"=`,
	} {
		if !strings.Contains(found, want) {
			t.Errorf("access log line lacks %s: %s", want, found)
		}
	}
	if bytes.Contains([]byte(found), []byte(tokens["viewer"])) {
		t.Error("the access log holds the token")
	}
}
