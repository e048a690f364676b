package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// TestManagerRoleIsEnough runs the reconciler as a user bound only to the
// ClusterRole that `make manifests` derives from the RBAC markers
// (config/rbac), through create, stop and delete, and checks that its writes
// landed: the finalizer, status, and an event.
func TestManagerRoleIsEnough(t *testing.T) {
	ctx := context.Background()
	const user = "manager-role-test"
	config := env.UserBoundTo(t, user, env.Kustomize(t, "rbac"), "manager-role")

	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies = simulated.Latencies{} })
	h.stop()
	h.config = config
	h.start()

	h.create(h.newInstance("rbac"))
	inst := h.waitLifecycle("rbac", computev1alpha1.LifecycleRunning)
	if len(inst.Finalizers) == 0 {
		t.Error("the instance reached RUNNING without the finalizer")
	}
	h.update("rbac", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	h.waitLifecycle("rbac", computev1alpha1.LifecycleTerminated)

	deadline := time.Now().Add(10 * time.Second)
	for {
		var events corev1.EventList
		if err := env.Client.List(ctx, &events, client.InNamespace(h.ns)); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events.Items {
			found = found || (e.InvolvedObject.Name == "rbac" && e.Reason == "MachineCreated")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no MachineCreated event recorded as the manager; events: %+v", events.Items)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := h.c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.waitGone("rbac")
}
