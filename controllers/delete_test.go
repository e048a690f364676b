package controllers

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// deletingInstance is an instance being deleted whose status, as read,
// records no machine: the read came before the status write of the pass
// that created it (or that write failed).
func deletingInstance(policy computev1alpha1.DeletionPolicy) *computev1alpha1.Instance {
	inst := testInstance()
	inst.Spec.DeletionPolicy = policy
	inst.Finalizers = []string{computev1alpha1.Finalizer}
	now := metav1.Now()
	inst.DeletionTimestamp = &now
	return inst
}

func (f *fixture) gone() bool {
	err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "i"}, &computev1alpha1.Instance{})
	if err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

// TestDeleteAsksTheCloudWhateverStatusSays: status shows neither a machine
// id nor a create token, yet the cloud has the machine the first create made
// with the token derived from the UID; the finalizer goes only once that
// machine is deleted.
func TestDeleteAsksTheCloudWhateverStatusSays(t *testing.T) {
	inst := deletingInstance(computev1alpha1.DeletionPolicyDelete)
	f := newFixture(t, inst)
	f.prov.machines[provider.CreateToken(inst)] = &provider.Machine{ID: "m1", Phase: provider.PhaseRunning}
	for pass := 0; pass < 3 && !f.gone(); pass++ {
		if _, err := f.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.prov.machines) != 0 || f.prov.called("Delete") != 1 {
		t.Errorf("the machine outlived its instance: calls %v, machines %v", f.prov.calls, f.prov.machines)
	}
	if !f.gone() {
		t.Error("the instance was not let go once its machine was deleted")
	}
}

// TestOrphanReleasesWhateverStatusSays: with deletionPolicy Orphan, a
// provider that ties machines to instances (KubeVirt's owner reference) is
// asked to release the machine even when status records none, or garbage
// collection would take the machine the user asked to keep.
func TestOrphanReleasesWhateverStatusSays(t *testing.T) {
	inst := deletingInstance(computev1alpha1.DeletionPolicyOrphan)
	f := newFixture(t, inst)
	f.prov.machines[provider.CreateToken(inst)] = &provider.Machine{ID: "m1", Phase: provider.PhaseRunning}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if !f.prov.released || len(f.prov.machines) != 1 || !f.gone() {
		t.Errorf("released %v, machines %v, instance gone %v", f.prov.released, f.prov.machines, f.gone())
	}
}

// TestFinalizerStaysOnAStaleRead: the pass reads an instance whose lost
// machine it then finds gone, but since its read another pass recorded a
// replacement's create token and created that machine. The finalizer's
// removal carries the version read, so it conflicts instead of letting the
// instance go with the replacement still running; the next pass, on the
// new version, deletes the replacement first.
func TestFinalizerStaysOnAStaleRead(t *testing.T) {
	inst := deletingInstance(computev1alpha1.DeletionPolicyDelete)
	lost := provider.CreateToken(inst)
	inst.Status.Machine = computev1alpha1.MachineRef{Provider: "fake", ID: "m-lost", CreateToken: lost}
	f := newFixture(t, inst)
	replacement := provider.ReplacementToken(lost)
	raced := false
	f.r.Client = interceptor.NewClient(f.c.(client.WithWatch), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := c.Get(ctx, key, obj, opts...); err != nil || raced {
				return err
			}
			// Just after this read: the replacement's token is stored, then its machine made.
			raced = true
			fresh := &computev1alpha1.Instance{}
			if err := c.Get(ctx, key, fresh); err != nil {
				return err
			}
			fresh.Status.Machine = computev1alpha1.MachineRef{Provider: "fake", CreateToken: replacement}
			if err := c.Status().Update(ctx, fresh); err != nil {
				return err
			}
			f.prov.machines[replacement] = &provider.Machine{ID: "m2", Phase: provider.PhaseRunning}
			return nil
		},
	})
	_, err := f.reconcile()
	if !apierrors.IsConflict(err) {
		t.Fatalf("the pass on the stale read ended with %v, want a conflict", err)
	}
	if f.gone() || !controllerutil.ContainsFinalizer(f.get(), computev1alpha1.Finalizer) {
		t.Fatal("the finalizer went on a stale read while the replacement machine runs")
	}
	for pass := 0; pass < 3 && !f.gone(); pass++ {
		if _, err := f.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.prov.machines) != 0 || !f.gone() {
		t.Errorf("after the retry: machines %v, instance gone %v", f.prov.machines, f.gone())
	}
}

// TestNoCreateForADeletedInstance: the create step refuses an instance
// being deleted, whoever calls it.
func TestNoCreateForADeletedInstance(t *testing.T) {
	inst := deletingInstance(computev1alpha1.DeletionPolicyDelete)
	f := newFixture(t, inst)
	p := &pass{inst: f.get(), now: f.clock.Now()}
	p.written = p.inst.DeepCopy()
	if err := f.r.create(context.Background(), p, provider.CreateToken(inst), "creating the machine"); err == nil {
		t.Error("create of a deleted instance succeeded")
	}
	if n := f.prov.called("Create"); n != 0 {
		t.Errorf("%d provider creates for a deleted instance", n)
	}
}
