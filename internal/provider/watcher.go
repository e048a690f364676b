package provider

import (
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Watcher is implemented by providers whose machines are Kubernetes objects
// the manager can watch (KubeVirt's VirtualMachines, their instances and
// disks). The reconciler watches each type, so a change at the provider
// wakes the instance's reconcile at once instead of at its next poll.
type Watcher interface {
	Watches() []Watch
}

// Watch is one object type to watch and how to find the instance a changed
// object belongs to.
type Watch struct {
	// Object is an empty object of the type, e.g. &kubevirtv1.VirtualMachine{}.
	Object client.Object
	// Instance names the instance obj belongs to; false when it belongs to none.
	Instance func(obj client.Object) (types.NamespacedName, bool)
}
