package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

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
	role := &rbacv1.ClusterRole{}
	for _, u := range env.Kustomize(t, "rbac") {
		if u.GetKind() == "ClusterRole" && u.GetName() == "manager-role" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac renders no ClusterRole manager-role with rules")
	}
	role.Name = "rbac-test-manager-role"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
	authn, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}

	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies = simulated.Latencies{} })
	h.stop()
	h.config = authn.Config()
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
