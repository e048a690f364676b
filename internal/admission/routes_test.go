package admission_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// The user of these tests may write namespaces and both of their
// subresources, as a namespace controller or a CI system might, but holds
// no map on projects.
const subWriter = "ns-subresource-writer"

var setUpSubWriter = sync.OnceValue(func() error {
	ctx := context.Background()
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:namespace-subresources"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces/status", "namespaces/finalize"}, Verbs: []string{"get", "update", "patch"}}}},
		clusterBinding(subWriter, "test:namespace-subresources"),
	} {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
})

// claimLabels map a namespace to the project routeProject, which a
// namespace of the platform admin already serves: the claim is a hijack.
const routeProject = "project-routes"

var claimLabels = map[string]string{computev1alpha1.RegionLabel: tRegion, computev1alpha1.ProjectLabel: routeProject}

// mappingRoutes are the routes by which kube-apiserver v1.37 changes a
// namespace's labels (docs/tenancy.md): each takes the stored namespace and
// asks for it with claimLabels added.
func mappingRoutes(c client.Client) map[string]func(context.Context, *corev1.Namespace, ...any) error {
	labelled := func(ns *corev1.Namespace) *corev1.Namespace {
		ns = ns.DeepCopy()
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		for k, v := range claimLabels {
			ns.Labels[k] = v
		}
		return ns
	}
	labelsJSON, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": claimLabels}})
	jsonPatch := []byte(`[{"op":"add","path":"/metadata/labels/k0rdent.ai~1region","value":"` + tRegion +
		`"},{"op":"add","path":"/metadata/labels/k0rdent.ai~1project","value":"` + routeProject + `"}]`)
	apply := func(ns *corev1.Namespace) []byte {
		body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": ns.Name, "labels": claimLabels}})
		return body
	}
	dry := func(opts []any) bool { return len(opts) > 0 }
	patchOpts := func(opts []any, more ...client.PatchOption) []client.PatchOption {
		if dry(opts) {
			more = append(more, client.DryRunAll)
		}
		return more
	}
	subOpts := func(opts []any, more ...client.SubResourcePatchOption) []client.SubResourcePatchOption {
		if dry(opts) {
			more = append(more, client.DryRunAll)
		}
		return more
	}
	updOpts := func(opts []any) []client.SubResourceUpdateOption {
		if dry(opts) {
			return []client.SubResourceUpdateOption{client.DryRunAll}
		}
		return nil
	}
	return map[string]func(context.Context, *corev1.Namespace, ...any) error{
		"namespaces update": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			if dry(o) {
				return c.Update(ctx, labelled(ns), client.DryRunAll)
			}
			return c.Update(ctx, labelled(ns))
		},
		"namespaces merge patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Patch(ctx, ns.DeepCopy(), client.RawPatch(types.MergePatchType, labelsJSON), patchOpts(o)...)
		},
		"namespaces JSON patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Patch(ctx, ns.DeepCopy(), client.RawPatch(types.JSONPatchType, jsonPatch), patchOpts(o)...)
		},
		"namespaces strategic merge patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Patch(ctx, ns.DeepCopy(), client.RawPatch(types.StrategicMergePatchType, labelsJSON), patchOpts(o)...)
		},
		"namespaces forced server-side apply": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Patch(ctx, ns.DeepCopy(), client.RawPatch(types.ApplyPatchType, apply(ns)),
				patchOpts(o, client.FieldOwner("intruder"), client.ForceOwnership)...)
		},
		"namespaces/status update": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Status().Update(ctx, labelled(ns), updOpts(o)...)
		},
		"namespaces/status merge patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Status().Patch(ctx, ns.DeepCopy(), client.RawPatch(types.MergePatchType, labelsJSON), subOpts(o)...)
		},
		"namespaces/status JSON patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Status().Patch(ctx, ns.DeepCopy(), client.RawPatch(types.JSONPatchType, jsonPatch), subOpts(o)...)
		},
		"namespaces/status strategic merge patch": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Status().Patch(ctx, ns.DeepCopy(), client.RawPatch(types.StrategicMergePatchType, labelsJSON), subOpts(o)...)
		},
		"namespaces/status server-side apply": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.Status().Patch(ctx, ns.DeepCopy(), client.RawPatch(types.ApplyPatchType, apply(ns)),
				subOpts(o, client.FieldOwner("intruder"), client.ForceOwnership)...)
		},
		// finalize has no get, hence no patch: update is its one write.
		"namespaces/finalize update": func(ctx context.Context, ns *corev1.Namespace, o ...any) error {
			return c.SubResource("finalize").Update(ctx, labelled(ns), updOpts(o)...)
		},
	}
}

// TestEveryRouteToTheMappingNeedsTheMapVerb: a user who may write
// namespaces and their status and finalize subresources, but holds no map
// on projects, cannot set the mapping labels by any route, dry-run or not;
// and the same routes do carry labels for the cluster admin, so each
// refusal is the policy's and not kube-apiserver dropping the change.
func TestEveryRouteToTheMappingNeedsTheMapVerb(t *testing.T) {
	ctx := context.Background()
	if err := setUpSubWriter(); err != nil {
		t.Fatal(err)
	}
	c := as(t, subWriter)
	waitTenancyEnforced(t)
	waitAllowed(t, "the subresource writer creates a namespace", func() error {
		return c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, client.DryRunAll)
	})
	if err := env.Client.Create(ctx, mapped("routes-served", tRegion, routeProject)); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	refused(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "routes-create", Labels: claimLabels}}),
		true, "needs the verb map on projects.compute.k0rdent.ai")

	for name, try := range mappingRoutes(c) {
		t.Run(name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "routes-" + strings.ToLower(strings.NewReplacer(" ", "-", "/", "-").Replace(name))}}
			if err := c.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			refused(t, try(ctx, ns, "dry-run"), true, "needs the verb map on projects.compute.k0rdent.ai")
			refused(t, try(ctx, ns), true, "needs the verb map on projects.compute.k0rdent.ai")
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
				t.Fatal(err)
			}
			if got := ns.Labels[computev1alpha1.ProjectLabel]; got != "" {
				t.Fatalf("the namespace was mapped to %q", got)
			}
		})
	}
	// The cluster admin holds map: the subresources carry labels.
	for name, try := range mappingRoutes(env.Client) {
		if !strings.HasPrefix(name, "namespaces/") || strings.Contains(name, "patch") || strings.Contains(name, "apply") {
			continue
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "routes-admin-" + strings.ToLower(strings.NewReplacer(" ", "-", "/", "-").Replace(name))}}
		if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if err := try(ctx, ns); err != nil {
			t.Fatalf("%s as the cluster admin: %v", name, err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
			t.Fatal(err)
		}
		if got := ns.Labels[computev1alpha1.ProjectLabel]; got != routeProject {
			t.Errorf("%s kept no label change (project %q): the route would need no guard", name, got)
		}
	}
}

// TestThePolicyCoversEveryNamespaceSubresource: every subresource of
// namespaces that kube-apiserver serves is matched by the mapping policy,
// so a kube-apiserver that adds one fails here before it opens a route.
func TestThePolicyCoversEveryNamespaceSubresource(t *testing.T) {
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, r := range list.APIResources {
		if r.Name == "namespaces" || strings.HasPrefix(r.Name, "namespaces/") {
			served = append(served, r.Name)
		}
	}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "project-mapping.compute.k0rdent.ai"}, policy); err != nil {
		t.Fatal(err)
	}
	var matched []string
	for _, rule := range policy.Spec.MatchConstraints.ResourceRules {
		if slices.Contains(rule.APIGroups, "") && slices.Contains(rule.Operations, admissionregistrationv1.Update) {
			matched = append(matched, rule.Resources...)
		}
	}
	if len(served) < 3 {
		t.Fatalf("kube-apiserver serves %v: expected namespaces, namespaces/status and namespaces/finalize", served)
	}
	for _, r := range served {
		if !slices.Contains(matched, r) && !slices.Contains(matched, "namespaces/*") && !slices.Contains(matched, "*/*") {
			t.Errorf("kube-apiserver serves %s, which the mapping policy does not match (it matches %v)", r, matched)
		}
	}
}

// waitAllowed waits until try succeeds: kube-apiserver's RBAC learns new
// bindings by its informer.
func waitAllowed(t *testing.T, what string, try func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
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
