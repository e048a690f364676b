package controllers

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// reconcileDelete stops and deletes the machine (policy Delete) or releases
// it (policy Orphan), then removes the finalizer. It asks the cloud whatever
// status says: the status it read may predate the pass that created the
// machine. Each action is followed by an observation, up to
// maxActionsPerPass actions, as in drivePower.
func (r *InstanceReconciler) reconcileDelete(ctx context.Context, p *pass) error {
	if !controllerutil.ContainsFinalizer(p.inst, computev1alpha1.Finalizer) {
		p.gone = true
		return nil
	}
	r.lookUpByToken(p)
	if p.inst.Spec.DeletionPolicy == computev1alpha1.DeletionPolicyOrphan {
		return r.orphan(ctx, p)
	}
	for actions := 0; ; actions++ {
		m, err := r.observe(ctx, p)
		if errors.Is(err, provider.ErrNotFound) {
			if id := p.inst.Status.Machine.ID; id != "" {
				r.event(p, "Normal", "MachineDeleted", "Delete", "deleted machine %s", id)
			}
			return r.removeFinalizer(ctx, p)
		}
		if err != nil {
			return err
		}
		r.recordMachine(p, m)
		if actions == maxActionsPerPass {
			return nil // the requeue carries on
		}
		switch m.Phase {
		case provider.PhaseStopping, provider.PhaseSuspending, provider.PhaseDeleting:
			return nil // under way; look again later
		case provider.PhaseProvisioning, provider.PhaseStopped:
			err = r.callProvider(ctx, "Delete", func(ctx context.Context) error { return r.Provider.Delete(ctx, p.inst) })
			if err != nil {
				return fmt.Errorf("failed to delete the machine: %w", err)
			}
		default:
			err = r.callProvider(ctx, "Stop", func(ctx context.Context) error {
				return r.Provider.SetPower(ctx, p.inst, provider.PowerStop)
			})
			if err != nil {
				return fmt.Errorf("failed to stop the machine before deleting it: %w", err)
			}
		}
	}
}

// lookUpByToken makes the provider look for the machine by the create token
// derived from the UID when status records none. The pass that created the
// machine records the token with its status write, after the call; the read
// of a pass that starts before that write shows up in the cache has no token,
// yet the machine may exist. A first create always uses the derived token,
// and a replacement's token is on record before its create call, so with
// the finalizer removed only on the version read (removeFinalizer) no
// machine escapes the lookup.
func (r *InstanceReconciler) lookUpByToken(p *pass) {
	ref := &p.inst.Status.Machine
	if ref.CreateToken == "" {
		ref.CreateToken = provider.CreateToken(p.inst)
	}
	if ref.Provider == "" {
		ref.Provider = r.Provider.Name()
	}
}

// orphan releases the machine from the instance, for a provider that ties
// them (KubeVirt's owner reference), so that it outlives the resource; it
// asks whatever status says, as a machine status does not record yet would
// otherwise be collected with the resource.
func (r *InstanceReconciler) orphan(ctx context.Context, p *pass) error {
	if releaser, ok := r.Provider.(provider.Releaser); ok {
		err := r.callProvider(ctx, "Release", func(ctx context.Context) error { return releaser.Release(ctx, p.inst) })
		if err != nil && !errors.Is(err, provider.ErrNotFound) {
			return fmt.Errorf("failed to release the machine from the instance: %w", err)
		}
	}
	if id := p.inst.Status.Machine.ID; id != "" {
		r.event(p, "Normal", "MachineOrphaned", "Delete", "left machine %s in the cloud (deletionPolicy: Orphan)", id)
	}
	return r.removeFinalizer(ctx, p)
}

// removeFinalizer lets the instance go; it may be gone once this returns.
// The patch carries the resourceVersion the pass read, so it applies only to
// the version the pass decided on (that the machine is gone, or released).
// If the instance changed since (a status write recording a replacement's
// token, another deletionPolicy), kube-apiserver answers Conflict and the
// retry decides again on the new version.
func (r *InstanceReconciler) removeFinalizer(ctx context.Context, p *pass) error {
	base := p.inst.DeepCopy()
	controllerutil.RemoveFinalizer(p.inst, computev1alpha1.Finalizer)
	err := r.Client.Patch(ctx, p.inst, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if err == nil || apierrors.IsNotFound(err) {
		p.gone = true
		return nil
	}
	// Keep the finalizer in the pass's copy, so the status write does not carry its removal.
	p.inst.Finalizers = base.Finalizers
	if apierrors.IsConflict(err) {
		return fmt.Errorf("failed to remove the finalizer: the instance changed since it was read, so its deletion is looked at again: %w", err)
	}
	return fmt.Errorf("failed to remove the finalizer: %w", err)
}
