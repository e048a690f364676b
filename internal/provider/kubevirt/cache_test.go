package kubevirt

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// staleCache is the real client behind a cache that has not seen any VirtualMachine yet.
func staleCache() client.Client {
	return interceptor.NewClient(k8sClient, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*kubevirtv1.VirtualMachine); ok {
				return apierrors.NewNotFound(schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachines"}, key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
}

// A VM made a moment ago that the manager's cache has not seen yet must not
// look lost: the reconciler would replace it.
func TestObserveLooksPastAStaleCache(t *testing.T) {
	ctx := context.Background()
	inst := newInstance(t, nil)
	if _, err := newProvider().Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	withReader := New(staleCache(), Options{APIReader: k8sClient})
	if m, err := withReader.Observe(ctx, inst); err != nil || m.ID != inst.Namespace+"/"+inst.Name {
		t.Errorf("Observe through a stale cache with an API reader: %+v, %v", m, err)
	}
	// The same cache without a reader is what the check protects against.
	if _, err := New(staleCache(), Options{}).Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Observe through a stale cache alone: err = %v, want ErrNotFound", err)
	}
}

// KubeVirt's admission webhooks answer a VM they refuse with Invalid: no
// retry will change that.
func TestCreateRefusedByKubeVirtIsPermanent(t *testing.T) {
	inst := newInstance(t, nil)
	refusing := interceptor.NewClient(k8sClient, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*kubevirtv1.VirtualMachine); !ok {
				return c.Create(ctx, obj, opts...)
			}
			return apierrors.NewInvalid(schema.GroupKind{Group: "kubevirt.io", Kind: "VirtualMachine"}, obj.GetName(), field.ErrorList{
				field.Invalid(field.NewPath("spec", "template", "spec", "domain", "devices", "gpus").Index(0).Child("deviceName"),
					"nvidia.com/GH100_H100_SXM5_80GB", "GPU is not permitted in permittedHostDevices configuration"),
			})
		},
	})
	_, err := New(refusing, Options{}).Create(context.Background(), inst)
	perm, ok := provider.AsPermanent(err)
	if !ok || perm.Reason != ReasonRejectedByKubeVirt {
		t.Fatalf("err = %v, want a PermanentError %s", err, ReasonRejectedByKubeVirt)
	}
	if want := "permittedHostDevices"; !strings.Contains(perm.Message, want) {
		t.Errorf("message %q does not carry KubeVirt's reason", perm.Message)
	}
}
