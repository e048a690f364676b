package kubevirt

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestOwnedObjectsAreCollectedAfterTheInstance: when an Instance goes
// without the provider's Delete (its finalizer removed by hand, or never
// there), kube-controller-manager's garbage collector deletes what the
// provider made for it through their owner references: the VirtualMachine
// (owned by the Instance) and the cloud-init Secret (owned by the Instance
// and the VM, so collected once both are gone).
func TestOwnedObjectsAreCollectedAfterTheInstance(t *testing.T) {
	ctx := context.Background()
	_, inst := running(t, nil)
	vm := getVM(t, inst)
	secret := getSecret(t, inst)
	if len(inst.Finalizers) != 0 {
		t.Fatalf("the instance carries finalizers %v; this test needs it to go at once", inst.Finalizers)
	}
	if err := k8sClient.Delete(ctx, inst, client.PropagationPolicy("Background")); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []struct {
		what string
		key  types.NamespacedName
		into client.Object
	}{
		{"the VirtualMachine", client.ObjectKeyFromObject(vm), &kubevirtv1.VirtualMachine{}},
		{"the cloud-init Secret", client.ObjectKeyFromObject(secret), &corev1.Secret{}},
	} {
		eventually(t, obj.what+" to be collected", func() (bool, string) {
			err := k8sClient.Get(ctx, obj.key, obj.into)
			return apierrors.IsNotFound(err), fmt.Sprintf("get: %v, owners %v", err, obj.into.GetOwnerReferences())
		})
	}
}
