package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

func root(t *testing.T) string {
	t.Helper()
	dir, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// freshControlPlane starts a kube-apiserver and etcd with nothing installed,
// as a new cluster is before the operator, and stops them when the test ends.
func freshControlPlane(t *testing.T) *testenv.Env {
	t.Helper()
	assets, err := controlplane.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("no kube-apiserver in %s: run `make control-plane` first: %v", assets, err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start the control plane: %v", err)
	}
	scheme := controlplane.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e := &testenv.Env{Environment: env, Config: cfg, Client: c, Scheme: scheme, AssetsDir: assets}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("failed to stop the control plane: %v", err)
		}
	})
	return e
}

// kubectl runs the built kubectl and fails the test when it fails.
func kubectl(t *testing.T, e *testenv.Env, stdin string, args ...string) string {
	t.Helper()
	out, stderr, err := e.Kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// applyInstance applies Instance manifests, retrying while kube-apiserver
// refuses them for the few seconds after the admission policy is installed
// (its mutating-policy engine learns a new CRD's schema by polling every 5 s;
// docs/reconciler.md). That is what a user's or Flux's retry meets too.
func applyInstance(t *testing.T, e *testenv.Env, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		out, stderr, err := e.Kubectl(t, "", append([]string{"apply"}, args...)...)
		if err == nil {
			return out
		}
		if !strings.Contains(stderr, "There can be a delay") {
			t.Fatalf("kubectl apply %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kubectl apply %s: still refused after 60 s: %s", strings.Join(args, " "), stderr)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// must is a compact fatal check for set-up steps.
func must(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("failed to %s: %v", fmt.Sprintf(what, args...), err)
	}
}
