package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

// policyAttacks are the attacks on the admission policies' write paths:
// the project mapping through namespaces' subresources, server-side apply
// and dry-run; turning a deletion into an orphan by pausing and stripping
// the finalizer; an instance in a namespace mapped to no project naming
// another project's network; and impersonation headers, on kube-apiserver
// with the deployer's own token and on the REST API. The attacker is the
// deployer's service account (kubeCfg is the stack's admin configuration,
// attacker impersonates the service account), granted here what a
// namespace controller or self-service tenant may hold: update and patch
// of namespaces/status and namespaces/finalize, and compute.deployer in a
// namespace of its own that no project maps.
func policyAttacks(kubeCfg *rest.Config, admin, attacker client.Client, apiURL, token string) []tenancyAttack {
	const unmapped = "tenant-attacker-unmapped"
	saUser := "system:serviceaccount:" + devstack.SampleNamespace + ":" + devstack.DeployerServiceAccount
	setUp := sync.OnceValue(func() error { return grantPolicyAttacker(context.Background(), admin, attacker, unmapped, saUser) })
	otherNetwork := "/v1/regions/us-texas-1/projects/" + victimProject + "/compute/networks/net-1"
	labels := map[string]string{computev1alpha1.RegionLabel: "us-texas-1", computev1alpha1.ProjectLabel: victimProject}
	labelsJSON, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})

	// relabel tries one way of mapping a fresh namespace to the victim's
	// project, dry-run first: accepted either way, or a label stored, is a success.
	relabel := func(prefix string, write func(ctx context.Context, ns *corev1.Namespace, dry bool) error) func(context.Context, int) (bool, string, error) {
		return func(ctx context.Context, n int) (bool, string, error) {
			if err := setUp(); err != nil {
				return false, "", err
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, n)}}
			if err := attacker.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
				return false, "", err
			}
			if err := admin.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
				return false, "", err
			}
			dryErr, err := write(ctx, ns.DeepCopy(), true), write(ctx, ns.DeepCopy(), false)
			if err := admin.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
				return false, "", err
			}
			stored := ns.Labels[computev1alpha1.ProjectLabel] != ""
			return dryErr == nil || err == nil || stored, fmt.Sprintf("dry-run: %v; real: %v; mapped: %v", dryErr, err, stored), nil
		}
	}
	withLabels := func(ns *corev1.Namespace) *corev1.Namespace {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		for k, v := range labels {
			ns.Labels[k] = v
		}
		return ns
	}
	dryUpdate := func(dry bool) []client.SubResourceUpdateOption {
		if dry {
			return []client.SubResourceUpdateOption{client.DryRunAll}
		}
		return nil
	}
	drySubPatch := func(dry bool, o ...client.SubResourcePatchOption) []client.SubResourcePatchOption {
		if dry {
			o = append(o, client.DryRunAll)
		}
		return o
	}
	dryPatch := func(dry bool, o ...client.PatchOption) []client.PatchOption {
		if dry {
			o = append(o, client.DryRunAll)
		}
		return o
	}

	return []tenancyAttack{
		{"map a project via namespaces/status", relabel("claim-status", func(ctx context.Context, ns *corev1.Namespace, dry bool) error {
			return attacker.Status().Patch(ctx, ns, client.RawPatch(types.MergePatchType, labelsJSON), drySubPatch(dry)...)
		})},
		{"map a project via namespaces/status apply", relabel("claim-status-apply", func(ctx context.Context, ns *corev1.Namespace, dry bool) error {
			body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns.Name, "labels": labels}})
			return attacker.Status().Patch(ctx, ns, client.RawPatch(types.ApplyPatchType, body),
				drySubPatch(dry, client.FieldOwner("intruder"), client.ForceOwnership)...)
		})},
		{"map a project via namespaces/finalize", relabel("claim-finalize", func(ctx context.Context, ns *corev1.Namespace, dry bool) error {
			return attacker.SubResource("finalize").Update(ctx, withLabels(ns), dryUpdate(dry)...)
		})},
		{"map a project by server-side apply (forced)", relabel("claim-apply", func(ctx context.Context, ns *corev1.Namespace, dry bool) error {
			body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns.Name, "labels": labels}})
			return attacker.Patch(ctx, ns, client.RawPatch(types.ApplyPatchType, body), dryPatch(dry, client.FieldOwner("intruder"), client.ForceOwnership)...)
		})},
		{"orphan: pause, delete, strip the finalizer", func(ctx context.Context, n int) (bool, string, error) {
			return orphanByFinalizer(ctx, admin, attacker, fmt.Sprintf("orphan-strip-%d", n))
		}},
		{"kubectl instance in an unmapped namespace", func(ctx context.Context, n int) (bool, string, error) {
			if err := setUp(); err != nil {
				return false, "", err
			}
			in := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unmapped-%d", n), Namespace: unmapped},
				Spec: computev1alpha1.InstanceSpec{Type: tenancyType, NICs: []computev1alpha1.NIC{{Network: otherNetwork}}}}
			err := attacker.Create(ctx, in)
			if err == nil {
				return true, "accepted: " + otherNetwork, nil
			}
			if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
				return false, "", err
			}
			return false, err.Error(), nil
		}},
		{"kube-apiserver impersonation header", func(ctx context.Context, n int) (bool, string, error) {
			cfg := rest.AnonymousClientConfig(kubeCfg)
			cfg.BearerToken = token
			cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:admin", Groups: []string{"system:masters"}}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return false, "", err
			}
			_, err = cs.RESTClient().Get().AbsPath("/apis/compute.k0rdent.ai/v1alpha1/namespaces/" + victimProject + "/instances/victim-vm").DoRaw(ctx)
			// kube-apiserver answers a refused impersonation 403 with no body the client can decode.
			return err == nil || !apierrors.IsForbidden(err), fmt.Sprint(err), nil
		}},
		{"REST impersonation headers", func(ctx context.Context, n int) (bool, string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/v1/regions/us-texas-1/projects/"+victimProject+"/compute/instances/victim-vm", nil)
			if err != nil {
				return false, "", err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Impersonate-User", "system:admin")
			req.Header.Add("Impersonate-Group", "system:masters")
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return false, "", err
			}
			_ = resp.Body.Close()
			return resp.StatusCode != http.StatusForbidden, resp.Status, nil
		}},
	}
}

// grantPolicyAttacker gives the attacker update and patch on namespaces'
// subresources and compute.deployer in a namespace that no project maps,
// and waits until kube-apiserver's RBAC knows both.
func grantPolicyAttacker(ctx context.Context, admin, attacker client.Client, unmapped, saUser string) error {
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: devstack.DeployerServiceAccount, Namespace: devstack.SampleNamespace}
	for _, o := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "reliability:namespace-subresources"}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces/status", "namespaces/finalize"}, Verbs: []string{"get", "update", "patch"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reliability:namespace-subresources"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "reliability:namespace-subresources"},
			Subjects: []rbacv1.Subject{subject}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unmapped}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reliability:deployer", Namespace: unmapped},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.deployer"},
			Subjects: []rbacv1.Subject{subject}},
	} {
		if err := admin.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to grant the attacker %T %s: %w", o, o.GetName(), err)
		}
	}
	probe := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: unmapped},
		Spec: computev1alpha1.InstanceSpec{Type: tenancyType}}
	for deadline := time.Now().Add(time.Minute); ; {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unmapped}}
		errStatus := attacker.Get(ctx, client.ObjectKeyFromObject(ns), ns)
		if errStatus == nil {
			errStatus = attacker.Status().Update(ctx, ns, client.DryRunAll)
		}
		errCreate := attacker.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if errStatus == nil && errCreate == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still lacks its rights on namespaces/status and instances in %s: %w", saUser, unmapped, errors.Join(errStatus, errCreate))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// orphanByFinalizer is the deployer's way to a machine no Instance tracks:
// create an instance, pause it, delete it, strip its finalizer (every step
// as the attacker; the strip also without the pause, racing the operator).
// It succeeded if the pause or the strip was accepted, dry-run or not.
func orphanByFinalizer(ctx context.Context, admin, attacker client.Client, name string) (bool, string, error) {
	in := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: devstack.SampleNamespace},
		Spec: computev1alpha1.InstanceSpec{Type: tenancyType}}
	if err := attacker.Create(ctx, in); err != nil {
		return false, "", fmt.Errorf("failed to create the instance: %w", err)
	}
	paused := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+computev1alpha1.PausedAnnotation+`":"true"}}}`))
	pauseErr := attacker.Patch(ctx, in.DeepCopy(), paused)
	if err := attacker.Delete(ctx, in); err != nil && !apierrors.IsNotFound(err) {
		return false, "", fmt.Errorf("failed to delete the instance: %w", err)
	}
	strip := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`))
	dryErr := attacker.Patch(ctx, in.DeepCopy(), strip, client.DryRunAll)
	stripErr := attacker.Patch(ctx, in.DeepCopy(), strip)
	detail := fmt.Sprintf("strip: %v; strip (dry-run): %v; pause: %v", stripErr, dryErr, pauseErr)
	succeeded := pauseErr == nil || dryErr == nil || stripErr == nil
	if pauseErr == nil {
		// Let the operator go on and delete the machine.
		unpause := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+computev1alpha1.PausedAnnotation+`":null}}}`))
		if err := admin.Patch(ctx, in.DeepCopy(), unpause); err != nil && !apierrors.IsNotFound(err) {
			return false, "", err
		}
	}
	// A strip refused as not found came after the operator let it go.
	if apierrors.IsNotFound(stripErr) || apierrors.IsNotFound(dryErr) {
		succeeded = pauseErr == nil
	}
	stored := &computev1alpha1.Instance{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(in), stored); err == nil && !controllerutil.ContainsFinalizer(stored, computev1alpha1.Finalizer) {
		succeeded = true
	}
	return succeeded, detail, nil
}
