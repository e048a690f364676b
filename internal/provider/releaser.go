package provider

import (
	"context"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// Releaser is implemented by providers whose machines are tied to the
// Instance's lifetime at the provider (KubeVirt: an owner reference that
// garbage collection follows). For an instance with deletionPolicy Orphan,
// the reconciler calls Release, instead of Delete, before it removes the
// finalizer, so the machine outlives the resource. Release is idempotent.
type Releaser interface {
	Release(ctx context.Context, inst *computev1alpha1.Instance) error
}
