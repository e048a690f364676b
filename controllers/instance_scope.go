package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// outsideProject reports whether the instance, with no machine yet, names a
// URI outside its namespace's region and project (its namespace's labels
// computev1alpha1.RegionLabel and ProjectLabel); then it makes no machine,
// and the pass ends Stalled with reason OutsideProject and a Warning event.
// The admission policy refuses such an instance at create; this holds where
// the policy is not installed (Kubernetes before 1.36), for instances made
// before it was, and for a namespace relabelled since. It is a wait, not a
// terminal error: a platform admin may map the namespace, and the pass
// looks again at the poll interval. An instance with a machine was checked
// before its machine was made, and its spec references cannot change, so
// the namespace is read only while no machine is known: a live get, since
// the controllers hold no right to list or watch namespaces (least
// privilege: they keep no cache of every namespace for one read per
// instance).
func (r *InstanceReconciler) outsideProject(ctx context.Context, p *pass) (bool, error) {
	if p.inst.Status.Machine.ID != "" {
		return false, nil
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	ns := &corev1.Namespace{}
	if err := reader.Get(ctx, client.ObjectKey{Name: p.inst.Namespace}, ns); err != nil {
		return false, fmt.Errorf("failed to read the instance's namespace: %w", err)
	}
	region, project := ns.Labels[computev1alpha1.RegionLabel], ns.Labels[computev1alpha1.ProjectLabel]
	outside := p.inst.Spec.OutsideScope(region, project)
	if len(outside) == 0 {
		return false, nil
	}
	var msg string
	if region == "" || project == "" {
		msg = fmt.Sprintf("no machine is made: the namespace %s is not mapped to a project (labels %s and %s), and the instance names %s",
			p.inst.Namespace, computev1alpha1.RegionLabel, computev1alpha1.ProjectLabel, strings.Join(outside, ", "))
	} else {
		msg = fmt.Sprintf("no machine is made: %s is outside region %s and project %s, those of the namespace %s",
			strings.Join(outside, ", "), region, project, p.inst.Namespace)
	}
	ctrl.LoggerFrom(ctx).Info("instance outside its namespace's project", "outside", outside, "region", region, "project", project)
	if p.inst.Status.Lifecycle.Status == "" {
		setLifecycle(p, computev1alpha1.LifecycleProvisioning, msg)
	}
	p.stalledReason, p.stalledMessage = computev1alpha1.ReasonOutsideProject, msg
	return true, nil
}
