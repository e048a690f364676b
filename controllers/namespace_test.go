package controllers_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// TestNamespaceDeletionDeletesItsMachines: `kubectl delete namespace` of a
// project completes (kube-controller-manager's namespace controller deletes
// its Instances, the operator finalizes each), and the cloud is left with
// none of their machines.
func TestNamespaceDeletionDeletesItsMachines(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) {
		c.Latencies = simulated.Latencies{}
	})
	names := []string{"ns-a", "ns-b", "ns-c"}
	for _, name := range names {
		h.create(h.newInstance(name))
	}
	for _, name := range names {
		h.waitLifecycle(name, computev1alpha1.LifecycleRunning)
	}
	machines := func() (n int) {
		for _, m := range h.cloud().Machines() {
			if m.Namespace == h.ns {
				n++
			}
		}
		return n
	}
	if n := machines(); n != len(names) {
		t.Fatalf("the cloud holds %d machines of the namespace before its deletion, want %d", n, len(names))
	}

	if _, stderr, err := env.Kubectl(t, "", "delete", "namespace", h.ns, "--wait=true", "--timeout=60s"); err != nil {
		t.Fatalf("kubectl delete namespace %s: %v: %s", h.ns, err, stderr)
	}
	err := h.c.Get(context.Background(), types.NamespacedName{Name: h.ns}, &corev1.Namespace{})
	if !apierrors.IsNotFound(err) {
		ns := &corev1.Namespace{}
		_ = h.c.Get(context.Background(), types.NamespacedName{Name: h.ns}, ns)
		t.Fatalf("namespace %s after kubectl delete --wait: err = %v, status %s", h.ns, err, describeNamespace(ns))
	}
	// The finalizer lets an Instance go only once its machine is gone.
	if n := machines(); n != 0 {
		t.Errorf("the cloud still holds %d machines of the deleted namespace: %+v", n, h.cloud().Machines())
	}
}

func describeNamespace(ns *corev1.Namespace) string {
	s := string(ns.Status.Phase)
	for _, c := range ns.Status.Conditions {
		s += fmt.Sprintf("; %s=%s: %s", c.Type, c.Status, c.Message)
	}
	return s
}
