package admission

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// PolicyName names the MutatingAdmissionPolicy and its binding.
const PolicyName = "instance-finalizer.compute.k0rdent.ai"

// Dir is the kustomization of the policy in the module at root.
func Dir(root string) string {
	return filepath.Join(root, "config", "admission")
}

// probeName names the instance WaitEnforced dry-run creates; nothing is stored.
const probeName = "admission-probe"

// WaitEnforced waits until kube-apiserver stamps the finalizer on a new
// Instance of namespace, by dry-run creates until the answer carries it.
// The policy takes effect once kube-apiserver's informer has it, and for a
// few seconds after the policy or the CRD is created (or kube-apiserver
// starts) every Instance create is refused with 503 "Resource kind ... not
// found": the policy engine learns the schemas it patches by polling
// kube-apiserver's OpenAPI every 5 seconds. Both are waited out here.
func WaitEnforced(ctx context.Context, c client.Client, namespace string, timeout time.Duration) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		probe := &computev1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: probeName, Namespace: namespace},
			Spec:       computev1alpha1.InstanceSpec{Type: "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small"},
		}
		switch err := c.Create(ctx, probe, client.DryRunAll); {
		case apierrors.IsServiceUnavailable(err):
			last = err
			return false, nil
		case apierrors.IsAlreadyExists(err):
			return false, fmt.Errorf("an instance named %s exists in %s: the probe needs the name", probeName, namespace)
		case err != nil:
			return false, fmt.Errorf("failed to dry-run create an instance: %w", err)
		}
		last = fmt.Errorf("a created instance does not carry the finalizer %s yet", computev1alpha1.Finalizer)
		return controllerutil.ContainsFinalizer(probe, computev1alpha1.Finalizer), nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("the admission policy %s is not enforced after %s: %w", PolicyName, timeout, last)
	}
	return err
}
