package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// TestAPIRoleIsEnough runs the REST API in a manager of its own whose
// credentials are a user bound only to the ClusterRole config/restapi ships
// (generated from this package's RBAC markers; the API's Deployment runs
// with it), and drives it as callers do: authentication (TokenReview),
// authorization (SubjectAccessReview), the project lookup (namespaces),
// create, get, list, patch, stop and delete. A call the role lacks answers
// 401, 403 or 500 and fails here (shown by taking tokenreviews away). The
// verb create-on-behalf is the tenancy policy's, which this suite does not
// install; internal/admission tests it.
func TestAPIRoleIsEnough(t *testing.T) {
	ctx := context.Background()
	const user = "api-role-test"
	config := env.UserBoundTo(t, user, env.Kustomize(t, "restapi"), "api-role")
	// kube-apiserver's RBAC learns of the binding through an informer.
	userClient, err := client.New(config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the api role's binding is known", func() bool {
		return userClient.List(ctx, &corev1.NamespaceList{}, client.Limit(1)) == nil
	})

	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	s, err := AddToManager(mgr, opts)
	if err != nil {
		t.Fatal(err)
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the API's manager stopped: %v", err)
		}
	})
	addrCtx, addrCancel := context.WithTimeout(ctx, time.Minute)
	defer addrCancel()
	addr, err := s.Addr(addrCtx)
	if err != nil {
		t.Fatalf("the API never listened as %s: %v", user, err)
	}
	base := "http://" + addr
	waitUntil(t, "the API's caches sync as "+user, func() bool { return s.ready.Load() })

	const id = "api-role-1"
	path := instancePath(id)
	cleanupInstance(t, id)
	for _, step := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{http.MethodPost, collectionPath, tokens["deployer"], map[string]any{"id": id, "type": typeURI}, http.StatusCreated},
		{http.MethodGet, path, tokens["viewer"], nil, http.StatusOK},
		{http.MethodGet, collectionPath, tokens["viewer"], nil, http.StatusOK},
		{http.MethodPatch, path, tokens["deployer"], map[string]any{"displayName": "renamed"}, http.StatusOK},
		{http.MethodPost, path + ":stop", tokens["deployer"], `{}`, http.StatusOK},
		{http.MethodGet, path, tokens["stranger"], nil, http.StatusForbidden},
		{http.MethodDelete, path, tokens["deployer"], nil, http.StatusNoContent},
	} {
		t.Run(fmt.Sprintf("%s %s as %s", step.method, step.path, whose(step.token)), func(t *testing.T) {
			r := callAt(t, base, step.method, step.path, step.token, step.body)
			if r.StatusCode != step.want {
				t.Fatalf("status = %d, want %d: %s", r.StatusCode, step.want, r.body)
			}
		})
	}
}

// whose names the caller a token belongs to.
func whose(token string) string {
	for name, tok := range tokens {
		if tok == token {
			return name
		}
	}
	return "unknown"
}
