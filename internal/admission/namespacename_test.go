package admission_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// nameRuleLabel confines the optional rule to this test's namespaces: the
// other tests of the package map namespaces under other names, as a cluster
// without the rule does.
const nameRuleLabel = "compute.k0rdent.ai/test-name-rule"

// TestNamespaceNameRuleWhenOn: with config/admission/namespace-name applied,
// a namespace newly mapped to a project must be named <region>-<project>,
// even for the cluster admin (who may map); a namespace mapped before under
// another name keeps working until its mapping changes.
func TestNamespaceNameRuleWhenOn(t *testing.T) {
	ctx := context.Background()
	// Mapped before the rule was on (the binding below does not select it yet).
	legacy := mapped("legacy-project", tRegion, "project-legacy")
	if err := env.Client.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	for _, u := range env.Kustomize(t, "admission/namespace-name") {
		obj := u.DeepCopy()
		if obj.GetKind() == "ValidatingAdmissionPolicyBinding" {
			if err := unstructured.SetNestedStringMap(obj.Object, map[string]string{nameRuleLabel: "on"},
				"spec", "matchResources", "objectSelector", "matchLabels"); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
	ns := func(name, project string) *corev1.Namespace {
		n := mapped(name, tRegion, project)
		n.Labels[nameRuleLabel] = "on"
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := env.Client.Create(ctx, ns("probe", "project-probe"), client.DryRunAll)
		if apierrors.IsInvalid(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the name rule never refused a misnamed project namespace: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	refused(t, env.Client.Create(ctx, ns("team-gpu", "project-gpu")), false, "must be named us-texas-1-project-gpu")
	if err := env.Client.Create(ctx, ns("us-texas-1-project-gpu", "project-gpu")); err != nil {
		t.Fatalf("a namespace named <region>-<project>: %v", err)
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unmapped-any-name",
		Labels: map[string]string{nameRuleLabel: "on"}}}); err != nil {
		t.Fatalf("an unmapped namespace: %v", err)
	}

	// The namespace mapped before the rule: other labels still change;
	// remapping it is held to the rule.
	base := legacy.DeepCopy()
	legacy.Labels[nameRuleLabel] = "on"
	legacy.Labels["team"] = "y"
	if err := env.Client.Patch(ctx, legacy, client.MergeFrom(base)); err != nil {
		t.Fatalf("relabelling a namespace mapped before the rule: %v", err)
	}
	base = legacy.DeepCopy()
	legacy.Labels[computev1alpha1.ProjectLabel] = "project-moved"
	refused(t, env.Client.Patch(ctx, legacy, client.MergeFrom(base)), false, "must be named us-texas-1-project-moved")
}
