package kubevirt

import (
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

var _ provider.Watcher = (*Provider)(nil)

// Watches implements provider.Watcher: the VMs the provider made, and the
// VMIs and DataVolumes KubeVirt makes for them, each mapped to the instance
// the VM is named after. The provider reads all three through the manager's
// cache already, so watching them costs no more informers.
func (p *Provider) Watches() []provider.Watch {
	return []provider.Watch{
		{Object: &kubevirtv1.VirtualMachine{}, Instance: madeForAnInstance},
		{Object: &kubevirtv1.VirtualMachineInstance{}, Instance: controlledByAVM},
		{Object: &cdiv1beta1.DataVolume{}, Instance: controlledByAVM},
	}
}

// madeForAnInstance names the instance of a VM the provider made (it
// carries the create token); other VMs belong to no instance.
func madeForAnInstance(obj client.Object) (types.NamespacedName, bool) {
	_, ok := obj.GetAnnotations()[CreateTokenAnnotation]
	return client.ObjectKeyFromObject(obj), ok
}

// controlledByAVM names the instance of the VM that controls obj.
func controlledByAVM(obj client.Object) (types.NamespacedName, bool) {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != "VirtualMachine" || !strings.HasPrefix(ref.APIVersion, kubevirtv1.GroupVersion.Group+"/") {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}, true
}
