package controllers_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// TestInstanceOutsideProjectGetsNoMachine: an instance in a namespace
// mapped to no project that names a project's network (kube-apiserver's
// admission policy would refuse it at create; this envtest installs none,
// as a cluster before 1.36 or an instance made before the policy) gets no
// machine, so no address on that project's network: it is Stalled with
// reason OutsideProject and a Warning event. Once a platform admin maps
// the namespace to that project, the same instance gets its machine.
func TestInstanceOutsideProjectGetsNoMachine(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies = simulated.Latencies{} })
	ctx := context.Background()
	const network = "/v1/regions/us-texas-1/projects/project-victim/compute/networks/net-1"
	inst := h.newInstance("intruder")
	inst.Spec.NICs = []computev1alpha1.NIC{{Network: network}}
	h.create(inst)

	inst = h.waitFor("intruder", "Stalled", func(i *computev1alpha1.Instance) bool { return kstatus(t, i) == status.FailedStatus })
	h.expect(inst, computev1alpha1.LifecycleProvisioning, map[string]string{
		computev1alpha1.ConditionReady:       f_ + computev1alpha1.ReasonProvisioning,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonOutsideProject,
		computev1alpha1.ConditionStalled:     t_ + computev1alpha1.ReasonOutsideProject,
	}, status.FailedStatus)
	if msg := inst.Status.Lifecycle.StatusMessage; !containsAll(msg, "not mapped to a project", network) {
		t.Errorf("statusMessage %q does not say why", msg)
	}
	h.waitEvents("intruder", computev1alpha1.ReasonOutsideProject)
	for _, m := range h.cloud().Machines() {
		if m.Namespace == h.ns {
			t.Fatalf("the cloud made machine %+v for an instance outside any project", m)
		}
	}

	// Mapped to another project, the network is still outside it.
	mapNamespace(t, h.ns, "project-mine")
	h.waitFor("intruder", "told the namespace's project", func(i *computev1alpha1.Instance) bool {
		return containsAll(i.Status.Lifecycle.StatusMessage, "outside region us-texas-1 and project project-mine")
	})
	if n := len(h.cloud().Machines()); n != 0 {
		t.Fatalf("the cloud holds %d machines for an instance outside its project", n)
	}

	// The wait ends when the namespace serves the network's project.
	mapNamespace(t, h.ns, "project-victim")
	h.waitLifecycle("intruder", computev1alpha1.LifecycleRunning)
	h.machineOf("intruder")
	if err := h.c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.waitGone("intruder")
}

// mapNamespace labels the namespace as serving us-texas-1 and project.
func mapNamespace(t *testing.T, name, project string) {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatal(err)
	}
	base := ns.DeepCopy()
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[computev1alpha1.RegionLabel], ns.Labels[computev1alpha1.ProjectLabel] = "us-texas-1", project
	if err := env.Client.Patch(context.Background(), ns, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
}
