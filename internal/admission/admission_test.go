package admission_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/admission"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

var env *testenv.Env

const namespace = "admission"

// TestMain starts a control plane, installs config/admission with kubectl
// as a user would, and waits until kube-apiserver enforces it. No manager
// runs: every finalizer seen here was put there by kube-apiserver.
func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err = install(); err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func install() error {
	ctx := context.Background()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		return err
	}
	kubeconfig, err := env.Kubeconfig()
	if err != nil {
		return err
	}
	out, err := exec.Command(filepath.Join(env.AssetsDir, "kubectl"), "--kubeconfig", kubeconfig,
		"apply", "--server-side", "-k", admission.Dir(root)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl apply -k config/admission: %w: %s", err, out)
	}
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	began := time.Now()
	if err := admission.WaitEnforced(ctx, env.Client, namespace, time.Minute); err != nil {
		return err
	}
	fmt.Printf("the policy was enforced %s after it was applied\n", time.Since(began).Round(time.Millisecond))
	return nil
}

func instance(name string, finalizers ...string) *computev1alpha1.Instance {
	return &computev1alpha1.Instance{
		TypeMeta:   metav1.TypeMeta{APIVersion: computev1alpha1.GroupVersion.String(), Kind: "Instance"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Finalizers: finalizers},
		Spec:       computev1alpha1.InstanceSpec{Type: "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small"},
	}
}

func get(t *testing.T, name string) *computev1alpha1.Instance {
	t.Helper()
	inst := &computev1alpha1.Instance{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestCreateCarriesTheFinalizer(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		finalizers []string
		want       []string
	}{
		{"bare", nil, []string{computev1alpha1.Finalizer}},
		{"with-others", []string{"example.com/keep"}, []string{"example.com/keep", computev1alpha1.Finalizer}},
		{"already-there", []string{computev1alpha1.Finalizer}, []string{computev1alpha1.Finalizer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := instance("create-"+tc.name, tc.finalizers...)
			if err := env.Client.Create(ctx, inst); err != nil {
				t.Fatal(err)
			}
			// The answer to the create, not a later read, carries it.
			if !slices.Equal(inst.Finalizers, tc.want) {
				t.Fatalf("finalizers %v, want %v", inst.Finalizers, tc.want)
			}
		})
	}
}

// A user who edits the finalizer away on a live instance gets it back: the
// operator must still delete the machine before the instance goes.
func TestUpdateRestoresARemovedFinalizer(t *testing.T) {
	ctx := context.Background()
	inst := instance("edited")
	if err := env.Client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst.Finalizers = nil
	if err := env.Client.Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if got := get(t, "edited").Finalizers; !slices.Equal(got, []string{computev1alpha1.Finalizer}) {
		t.Fatalf("finalizers after an update removed it: %v", got)
	}
}

// GitOps tools apply server-side with their own field manager and a
// manifest without the finalizer; re-applying must not strip it.
func TestServerSideReapplyKeepsTheFinalizer(t *testing.T) {
	ctx := context.Background()
	for i, metadata := range []string{`{"env": "dev"}`, `{"env": "prod"}`} {
		inst := instance("applied")
		inst.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "labels", Value: metadata}}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(inst)
		if err != nil {
			t.Fatal(err)
		}
		applied := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u})
		if err := env.Client.Apply(ctx, applied, client.FieldOwner("flux"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		if got := get(t, "applied").Finalizers; !slices.Equal(got, []string{computev1alpha1.Finalizer}) {
			t.Fatalf("finalizers after apply %d: %v", i, got)
		}
	}
}

// Once deletion starts the policy stays out of the way: the operator's
// removal of the finalizer lets the instance go.
func TestRemovalDuringDeletionIsKept(t *testing.T) {
	ctx := context.Background()
	inst := instance("deleted")
	if err := env.Client.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst = get(t, "deleted")
	if inst.DeletionTimestamp.IsZero() {
		t.Fatal("the finalizer did not hold the deleted instance")
	}
	base := inst.DeepCopy()
	inst.Finalizers = nil
	if err := env.Client.Patch(ctx, inst, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "deleted"}, &computev1alpha1.Instance{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("the instance outlived the removal of its finalizer: %v", err)
	}
}

// The install overlays carry the policy and its binding under the names the
// binding refers to (the overlays prefix the operator's own objects).
func TestOverlaysInstallThePolicy(t *testing.T) {
	for _, overlay := range []string{"default", "kubevirt"} {
		found := map[string]bool{}
		for _, u := range env.Kustomize(t, overlay) {
			switch u.GetKind() {
			case "MutatingAdmissionPolicy":
				found["policy"] = found["policy"] || u.GetName() == admission.PolicyName
			case "MutatingAdmissionPolicyBinding":
				policyName, _, _ := unstructured.NestedString(u.Object, "spec", "policyName")
				found["binding"] = found["binding"] || policyName == admission.PolicyName
			}
		}
		if !found["policy"] || !found["binding"] {
			t.Errorf("config/%s: policy %s and its binding found: %v", overlay, admission.PolicyName, found)
		}
	}
}
