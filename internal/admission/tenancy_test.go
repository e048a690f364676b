package admission_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

// The tenancy policies of config/admission/tenancy_policies.yaml, checked on
// the real kube-apiserver with impersonated users whose rights are the
// shipped ClusterRoles (config/rbac/api) bound as a platform team would.
const (
	tenantNS  = "tenant-a"
	tRegion   = "us-texas-1"
	tProject  = "project-a"
	inScope   = "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small"
	projectA  = "/v1/regions/us-texas-1/projects/project-a/compute"
	projectB  = "/v1/regions/us-texas-1/projects/project-b/compute"
	nsMaker   = "ns-maker"
	platform  = "platform-admin"
	tenant    = "tenant"
	reader    = "tenant-reader"
	tenantAdm = "tenant-admin"
	deputy    = "deputy"
)

var setUpTenancy = sync.OnceValue(func() error {
	ctx := context.Background()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		return err
	}
	kubeconfig, err := env.Kubeconfig()
	if err != nil {
		return err
	}
	if out, err := exec.Command(filepath.Join(env.AssetsDir, "kubectl"), "--kubeconfig", kubeconfig,
		"apply", "-k", filepath.Join(root, "config", "rbac", "api")).CombinedOutput(); err != nil {
		return &setupError{string(out)}
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tenantNS, Labels: map[string]string{
			computev1alpha1.RegionLabel: tRegion, computev1alpha1.ProjectLabel: tProject}}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:namespace-maker"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "update", "patch"}}}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:pvc-reader"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get"}}}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:deputy"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"compute.k0rdent.ai"}, Resources: []string{"instances"}, Verbs: []string{"create", "create-on-behalf"}}}},
		clusterBinding(nsMaker, "test:namespace-maker"),
		clusterBinding(platform, "test:namespace-maker"),
		clusterBinding(platform, "compute.platform-admin"),
		binding(tenant, "compute.deployer"),
		binding(reader, "compute.deployer"),
		binding(reader, "test:pvc-reader"),
		binding(tenantAdm, "compute.admin"),
		binding(deputy, "test:deputy"),
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
})

type setupError struct{ out string }

func (e *setupError) Error() string { return "kubectl apply -k config/rbac/api: " + e.out }

func clusterBinding(user, role string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test:" + user + ":" + role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
}

func binding(user, role string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test:" + user + ":" + role, Namespace: tenantNS},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
}

// as is a client that acts as user.
func as(t *testing.T, user string) client.Client {
	t.Helper()
	if err := setUpTenancy(); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refused fails unless err is kube-apiserver's refusal of the given kind
// whose message contains want.
func refused(t *testing.T, err error, forbidden bool, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("allowed; want refused with %q", want)
	case forbidden && !apierrors.IsForbidden(err), !forbidden && !apierrors.IsInvalid(err):
		t.Fatalf("refused as %v; want forbidden=%v", err, forbidden)
	case !strings.Contains(err.Error(), want):
		t.Fatalf("refused with %q; want it to say %q", err, want)
	}
}

func mapped(name, region, project string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		computev1alpha1.RegionLabel: region, computev1alpha1.ProjectLabel: project, "team": "x"}}}
}

// TestProjectMappingNeedsTheMapVerb: whoever may create namespaces cannot
// claim or hijack a project (a second namespace labelled with a victim's
// region and project), nor unmap one, without map on projects.
func TestProjectMappingNeedsTheMapVerb(t *testing.T) {
	ctx := context.Background()
	maker, admin := as(t, nsMaker), as(t, platform)
	waitTenancyEnforced(t)

	refused(t, maker.Create(ctx, mapped("hijack", tRegion, tProject)), true, "needs the verb map on projects.compute.k0rdent.ai")

	plain := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}
	if err := maker.Create(ctx, plain); err != nil {
		t.Fatalf("a namespace without the labels: %v", err)
	}
	base := plain.DeepCopy()
	plain.Labels = map[string]string{computev1alpha1.RegionLabel: tRegion, computev1alpha1.ProjectLabel: tProject}
	refused(t, maker.Patch(ctx, plain, client.MergeFrom(base)), true, "map on projects")

	owned := mapped("owned-by-platform", tRegion, "project-owned")
	if err := admin.Create(ctx, owned); err != nil {
		t.Fatalf("compute.platform-admin mapping a project: %v", err)
	}
	base = owned.DeepCopy()
	owned.Labels["team"] = "y"
	if err := maker.Patch(ctx, owned, client.MergeFrom(base)); err != nil {
		t.Errorf("changing another label of a mapped namespace: %v", err)
	}
	base = owned.DeepCopy()
	delete(owned.Labels, computev1alpha1.ProjectLabel)
	refused(t, maker.Patch(ctx, owned, client.MergeFrom(base)), true, "map on projects")
	owned.Labels[computev1alpha1.ProjectLabel] = "project-renamed"
	refused(t, maker.Patch(ctx, owned, client.MergeFrom(base)), true, "map on projects")

	// Cluster administrators hold every verb.
	if err := env.Client.Create(ctx, mapped("mapped-by-admin", tRegion, "project-admin")); err != nil {
		t.Errorf("the cluster admin mapping a project: %v", err)
	}
}

func tenantInstance(name string, mutate ...func(*computev1alpha1.Instance)) *computev1alpha1.Instance {
	in := &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: tenantNS},
		Spec:       computev1alpha1.InstanceSpec{Type: inScope},
	}
	for _, m := range mutate {
		m(in)
	}
	return in
}

// TestInstanceRulesHoldForKubectlUsers: the REST API's rules, enforced by
// kube-apiserver for a user with one project's compute.deployer role.
func TestInstanceRulesHoldForKubectlUsers(t *testing.T) {
	ctx := context.Background()
	c := as(t, tenant)
	waitTenancyEnforced(t)

	t.Run("URIs outside the namespace's region or project", func(t *testing.T) {
		for name, m := range map[string]func(*computev1alpha1.Instance){
			"type": func(in *computev1alpha1.Instance) {
				in.Spec.Type = "/v1/regions/eu-west-1/zones/eu1-a/instance-types/g1-small"
			},
			"network": func(in *computev1alpha1.Instance) {
				in.Spec.NICs = []computev1alpha1.NIC{{Network: projectB + "/networks/net-1"}}
			},
			"subnet": func(in *computev1alpha1.Instance) {
				in.Spec.NICs = []computev1alpha1.NIC{{Subnet: projectB + "/subnets/sub-1"}}
			},
			"disk": func(in *computev1alpha1.Instance) {
				in.Spec.Disks = []computev1alpha1.Disk{{Source: projectB + "/volumes/data", SizeGb: 10}}
			},
			"gpu": func(in *computev1alpha1.Instance) {
				in.Spec.GPUs = []computev1alpha1.GPU{{Type: "/v1/regions/eu-west-1/gpu-types/h100-80gb", Count: 1}}
			},
		} {
			t.Run(name, func(t *testing.T) {
				refused(t, c.Create(ctx, tenantInstance("scope-"+name, m)), false, "must be in region us-texas-1 and project project-a")
			})
		}
		in := tenantInstance("scope-ok", func(in *computev1alpha1.Instance) {
			in.Spec.NICs = []computev1alpha1.NIC{{Network: projectA + "/networks/net-1"}}
		})
		if err := c.Create(ctx, in); err != nil {
			t.Fatalf("an instance in its own scope: %v", err)
		}
	})

	t.Run("created-by is the requester's and cannot be forged or changed", func(t *testing.T) {
		in := tenantInstance("stamped")
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		if got := in.Annotations[computev1alpha1.CreatedByAnnotation]; got != tenant {
			t.Errorf("created-by = %q, want %q stamped by kube-apiserver", got, tenant)
		}
		forged := tenantInstance("forged", func(in *computev1alpha1.Instance) {
			in.Annotations = map[string]string{computev1alpha1.CreatedByAnnotation: "someone-else"}
		})
		refused(t, c.Create(ctx, forged), true, "created-by")
		base := in.DeepCopy()
		in.Annotations[computev1alpha1.CreatedByAnnotation] = "someone-else"
		refused(t, c.Patch(ctx, in, client.MergeFrom(base)), true, "created-by")
		// The REST API holds create-on-behalf: it writes its caller's name.
		onBehalf := tenantInstance("on-behalf", func(in *computev1alpha1.Instance) {
			in.Annotations = map[string]string{computev1alpha1.CreatedByAnnotation: "rest-caller"}
		})
		if err := as(t, deputy).Create(ctx, onBehalf); err != nil {
			t.Errorf("create-on-behalf writing created-by: %v", err)
		}
	})

	t.Run("a disk cloned from a volume needs get on it", func(t *testing.T) {
		clone := func(name string) *computev1alpha1.Instance {
			return tenantInstance(name, func(in *computev1alpha1.Instance) {
				in.Spec.Disks = []computev1alpha1.Disk{{Source: projectA + "/volumes/secret-data", Boot: true}}
			})
		}
		refused(t, c.Create(ctx, clone("clone-denied")), true, "get on that PersistentVolumeClaim")
		snap := tenantInstance("clone-snapshot", func(in *computev1alpha1.Instance) {
			in.Spec.Disks = []computev1alpha1.Disk{{Source: projectA + "/snapshots/nightly", Boot: true}}
		})
		refused(t, c.Create(ctx, snap), true, "VolumeSnapshot")
		if err := as(t, reader).Create(ctx, clone("clone-allowed")); err != nil {
			t.Errorf("a user who may read the PVC: %v", err)
		}
	})

	t.Run("deletionPolicy Orphan needs the verb orphan", func(t *testing.T) {
		orphan := func(in *computev1alpha1.Instance) { in.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan }
		refused(t, c.Create(ctx, tenantInstance("orphan-create", orphan)), true, "verb orphan")
		in := tenantInstance("orphan-patch")
		if err := c.Create(ctx, in); err != nil {
			t.Fatal(err)
		}
		base := in.DeepCopy()
		in.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan
		refused(t, c.Patch(ctx, in, client.MergeFrom(base)), true, "verb orphan")
		if err := as(t, tenantAdm).Create(ctx, tenantInstance("orphan-admin", orphan)); err != nil {
			t.Errorf("compute.admin setting Orphan: %v", err)
		}
	})
}

// waitTenancyEnforced waits until the validating policies are in force (they
// take effect once kube-apiserver's informer has them) and kube-apiserver's
// RBAC knows every test user's binding: each may dry-run create what its
// role allows, and the policy refuses the tenant's Orphan.
func waitTenancyEnforced(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	wait := func(what string, try func() error) {
		for {
			err := try()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %v after a minute", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, user := range []string{tenant, reader, tenantAdm, deputy} {
		c := as(t, user)
		wait(user+" creates an instance", func() error { return c.Create(ctx, tenantInstance("probe"), client.DryRunAll) })
	}
	for _, user := range []string{nsMaker, platform} {
		c := as(t, user)
		wait(user+" creates a namespace", func() error {
			return c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, client.DryRunAll)
		})
	}
	c := as(t, tenant)
	wait("the policy refuses Orphan", func() error {
		err := c.Create(ctx, tenantInstance("probe", func(in *computev1alpha1.Instance) {
			in.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan
		}), client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			return nil
		}
		return fmt.Errorf("answered %w", err)
	})
}
