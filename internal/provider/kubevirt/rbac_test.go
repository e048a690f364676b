package kubevirt

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

func find(t *testing.T, objs []unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in the rendered config", kind, name)
}

func TestConfigKubevirtRendersTheProvider(t *testing.T) {
	objs := env.Kustomize(t, "kubevirt")
	dep := &appsv1.Deployment{}
	find(t, objs, "Deployment", "instance-operator-controller-manager", dep)
	c := dep.Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--leader-elect", "--provider=kubevirt", "--kubevirt-catalog=/etc/instance-operator/kubevirt/catalog.yaml"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("manager args %v lack %s", c.Args, arg)
		}
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/instance-operator/kubevirt" ||
		len(dep.Spec.Template.Spec.Volumes) != 1 || dep.Spec.Template.Spec.Volumes[0].ConfigMap == nil {
		t.Fatalf("catalog volume = %+v / %+v", dep.Spec.Template.Spec.Volumes, c.VolumeMounts)
	}
	cmName := dep.Spec.Template.Spec.Volumes[0].ConfigMap.Name
	cm := &corev1.ConfigMap{}
	find(t, objs, "ConfigMap", cmName, cm)
	if cm.Namespace != "instance-operator-system" {
		t.Errorf("catalog ConfigMap namespace = %s", cm.Namespace)
	}
	// The shipped catalog loads.
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["catalog.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalog(path); err != nil {
		t.Errorf("the shipped catalog: %v", err)
	}

	binding := &rbacv1.ClusterRoleBinding{}
	find(t, objs, "ClusterRoleBinding", "instance-operator-kubevirt-provider-rolebinding", binding)
	if binding.RoleRef.Name != "instance-operator-kubevirt-provider-role" || len(binding.Subjects) != 1 ||
		binding.Subjects[0].Name != "instance-operator-controller-manager" || binding.Subjects[0].Namespace != "instance-operator-system" {
		t.Errorf("binding = %+v", binding)
	}

	// Without the provider, no KubeVirt permission is granted.
	for _, u := range env.Kustomize(t, "default") {
		data, _ := u.MarshalJSON()
		if strings.Contains(string(data), "kubevirt.io\"") {
			t.Errorf("config/default grants KubeVirt access in %s %s", u.GetKind(), u.GetName())
		}
	}
}

// TestRBACIsEnough runs the provider as a user bound only to the rendered
// manager and KubeVirt roles, through create, observe, stop, release and
// delete, and asks the API server whether it may pause and unpause. The user
// is the controllers' service account as config/kubevirt installs it, under
// the policy that config/kubevirt installs to narrow its Secret writes, so
// every cloud-init Secret write of the provider (create, update, release)
// passes it.
func TestRBACIsEnough(t *testing.T) {
	ctx := context.Background()
	objs := env.Kustomize(t, "kubevirt")
	const user = "system:serviceaccount:instance-operator-system:instance-operator-controller-manager"
	secretPolicyEnforced(t, objs, user)
	config := env.UserBoundTo(t, user, objs, "instance-operator-manager-role", "instance-operator-kubevirt-provider-role")
	userClient, err := client.New(config, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}

	inst := newInstance(t, nil)
	p := New(userClient, Options{Pauser: double})
	hold(t, double.HoldImports)
	if _, err := p.Create(ctx, inst); err != nil {
		t.Fatalf("Create as the manager: %v", err)
	}
	// Reading the import's progress needs the DataVolumes.
	eventually(t, "the import progress, read as the manager", func() (bool, string) {
		m, err := p.Observe(ctx, inst)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(m.Message, "ImportInProgress"), m.Message
	})
	double.HoldImports(false)
	observeUntil(t, p, inst, provider.PhaseRunning)
	inst.Spec.InstanceMetadata = append(inst.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "role", Value: "trainer"})
	if err := p.Update(ctx, inst); err != nil {
		t.Fatalf("Update as the manager: %v", err)
	}
	if err := p.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatalf("Stop as the manager: %v", err)
	}
	observeUntil(t, p, inst, provider.PhaseStopped)
	if err := p.Release(ctx, inst); err != nil {
		t.Fatalf("Release as the manager: %v", err)
	}
	if err := p.Delete(ctx, inst); err != nil {
		t.Fatalf("Delete as the manager: %v", err)
	}
	goneUntil(t, p, inst)

	for _, sub := range []string{"pause", "unpause"} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: inst.Namespace, Verb: "update", Group: "subresources.kubevirt.io",
				Resource: "virtualmachineinstances", Subresource: sub, Name: inst.Name,
			},
		}}
		if err := k8sClient.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if !sar.Status.Allowed {
			t.Errorf("the manager may not %s VMIs: %s", sub, sar.Status.Reason)
		}
	}
}

// secretPolicyEnforced creates config/'s controller-secrets policy and its
// binding from objs, and waits until kube-apiserver refuses user a Secret
// that no Instance owns.
func secretPolicyEnforced(t *testing.T, objs []unstructured.Unstructured, user string) {
	t.Helper()
	ctx := context.Background()
	const name = "controller-secrets.compute.k0rdent.ai"
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		var obj unstructured.Unstructured
		for _, u := range objs {
			if u.GetKind() == kind && u.GetName() == name {
				obj = *u.DeepCopy()
			}
		}
		if obj.Object == nil {
			t.Fatalf("config/kubevirt has no %s %s", kind, name)
		}
		if err := k8sClient.Create(ctx, &obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), &obj) })
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	loose := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "loose-cloudinit", Namespace: "default"}}
	deadline := time.Now().Add(time.Minute)
	for {
		err := c.Create(ctx, loose, client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), name) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy %s never refused an unowned Secret: %v", name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
