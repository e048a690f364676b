package testenv

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// KStatus is kstatus' verdict on the instance (Current, InProgress,
// Failed, ...), computed as Flux computes it.
func KStatus(inst *computev1alpha1.Instance) (status.Status, error) {
	obj := inst.DeepCopy()
	obj.SetGroupVersionKind(computev1alpha1.GroupVersion.WithKind("Instance"))
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return "", err
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: content})
	if err != nil {
		return "", err
	}
	return res.Status, nil
}
