package admission_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// boundedManifest is an Instance manifest with labels labels and
// annotations annotations, as a kubectl user writes it.
func boundedManifest(name string, labels, annotations, finalizers int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: compute.k0rdent.ai/v1alpha1\nkind: Instance\nmetadata:\n  name: %s\n  namespace: %s\n", name, namespace)
	if labels > 0 {
		b.WriteString("  labels:\n")
		for i := range labels {
			fmt.Fprintf(&b, "    label-%d: v\n", i)
		}
	}
	if annotations > 0 {
		b.WriteString("  annotations:\n")
		for i := range annotations {
			fmt.Fprintf(&b, "    example.com/note-%d: v\n", i)
		}
	}
	if finalizers > 0 {
		b.WriteString("  finalizers:\n")
		for i := range finalizers {
			fmt.Fprintf(&b, "  - example.com/hold-%d\n", i)
		}
	}
	b.WriteString("spec:\n  type: /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small\n")
	return b.String()
}

// TestKubectlMeetsTheLabelBounds: config/admission's instance-bounds policy
// holds kubectl users to the REST API's bounds (api/v1alpha1 MaxLabels,
// MaxAnnotations, MaxFinalizers), which the CRD's schema cannot express: an
// Instance of 65 labels or annotations or 17 finalizers is refused, one at
// the bounds is stored, and a stored
// Instance cannot grow past the bound by a later edit.
func TestKubectlMeetsTheLabelBounds(t *testing.T) {
	// kube-apiserver enforces a policy once its informer has it; TestMain
	// waited for the finalizer policy only.
	probe := &unstructured.Unstructured{}
	probe.SetAPIVersion(computev1alpha1.GroupVersion.String())
	probe.SetKind("Instance")
	probe.SetNamespace(namespace)
	probe.SetName("bounds-probe")
	labels := map[string]string{}
	for i := range computev1alpha1.MaxLabels + 1 {
		labels[fmt.Sprintf("l%d", i)] = "v"
	}
	probe.SetLabels(labels)
	_ = unstructured.SetNestedField(probe.Object, "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small", "spec", "type")
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return apierrors.IsInvalid(env.Client.Create(ctx, probe.DeepCopy(), client.DryRunAll)), nil
	})
	if err != nil {
		t.Fatalf("the instance-bounds policy is not enforced after 30s: %v", err)
	}
	// kubectl create, not apply: apply's last-applied annotation would count.
	for _, c := range []struct {
		name                            string
		labels, annotations, finalizers int
		refused                         string
	}{
		{"bounds-65-labels", computev1alpha1.MaxLabels + 1, 0, 0, "at most 64 labels"},
		{"bounds-65-annotations", 0, computev1alpha1.MaxAnnotations + 1, 0, "at most 64 annotations"},
		{"bounds-17-finalizers", 0, 0, computev1alpha1.MaxFinalizers + 1, "at most 16 finalizers"},
		// kube-apiserver adds compute.k0rdent.ai/created-by and the
		// operator's finalizer, which count.
		{"bounds-64-each", computev1alpha1.MaxLabels, computev1alpha1.MaxAnnotations - 1, computev1alpha1.MaxFinalizers - 1, ""},
	} {
		out, errOut, err := env.Kubectl(t, boundedManifest(c.name, c.labels, c.annotations, c.finalizers), "create", "-f", "-")
		switch {
		case c.refused == "" && err != nil:
			t.Errorf("%s: refused: %v\n%s%s", c.name, err, out, errOut)
		case c.refused != "" && (err == nil || !strings.Contains(errOut, c.refused)):
			t.Errorf("%s: want refused with %q, got %v\n%s%s", c.name, c.refused, err, out, errOut)
		}
	}
	out, errOut, err := env.Kubectl(t, "", "label", "-n", namespace, "instance", "bounds-64-each", "one-more=v")
	if err == nil || !strings.Contains(errOut, "at most 64 labels") {
		t.Errorf("a 65th label added by kubectl label: %v\n%s%s", err, out, errOut)
	}
	// Changing a label's value and removing one stay allowed.
	if out, errOut, err := env.Kubectl(t, "", "label", "-n", namespace, "--overwrite", "instance", "bounds-64-each", "label-0=w", "label-1-"); err != nil {
		t.Errorf("relabelling within the bound: %v\n%s%s", err, out, errOut)
	}
}
