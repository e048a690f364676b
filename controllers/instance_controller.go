package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// InstanceReconciler drives Instances through the lifecycle over a Provider.
type InstanceReconciler struct {
	Client   client.Client
	Provider provider.Provider
	Recorder events.EventRecorder
	// Clock is the reconciler's time (deadlines, condition and history
	// times); nil means the real clock.
	Clock   clock.Clock
	Options Options

	// APIReader reads what the reconciler must not cache: the namespace of
	// an instance without a machine (instance_scope.go); nil means the
	// manager's API reader, or Client for a reconciler built without one.
	APIReader client.Reader

	// backoff spaces the retries after transient errors; the reconciler
	// resets it when a failing pass still moved the instance forward.
	backoff *jitteredBackoff
	// noPolicyLogged says once that instances come without the finalizer.
	noPolicyLogged sync.Once
}

// SetupWithManager registers the reconciler with mgr. Only changes that ask
// for work wake it: spec (generation), annotations (pause), and deletion;
// its own status writes do not. A provider whose machines are Kubernetes
// objects (provider.Watcher) wakes it too, when one of them changes.
func (r *InstanceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		recorder, err := newBoundedRecorder(mgr, "instance-operator")
		if err != nil {
			return err
		}
		r.Recorder = recorder
	}
	r.applyDefaults()
	instances.use(mgr.GetCache(), mgr.Elected())
	deletion := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() != e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&computev1alpha1.Instance{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletion))).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles,
			RateLimiter:             r.backoff,
		})
	if w, ok := r.Provider.(provider.Watcher); ok {
		for _, watch := range w.Watches() {
			b = b.Watches(watch.Object, handler.EnqueueRequestsFromMapFunc(instanceOf(watch.Instance)))
		}
	}
	return b.Complete(r)
}

// applyDefaults fills in once what the reconciler was not given, so that the
// code of a pass reads r.Options and r.Clock as they are. SetupWithManager
// calls it; a reconciler built without a manager (the step tests) must too.
func (r *InstanceReconciler) applyDefaults() {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.Options = r.Options.withDefaults()
	r.backoff = newJitteredBackoff(r.Options.RetryBaseDelay, r.Options.RetryMaxDelay)
}

// instanceOf turns a provider's mapping of its objects into reconcile requests.
func instanceOf(find func(client.Object) (types.NamespacedName, bool)) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		if key, ok := find(obj); ok {
			return []reconcile.Request{{NamespacedName: key}}
		}
		return nil
	}
}

// pass is one reconcile of one instance: the instance as read, the status
// as last written, and what the steps found.
type pass struct {
	inst *computev1alpha1.Instance
	// written is the instance as last read or written, the base of the status patch.
	written *computev1alpha1.Instance
	now     time.Time
	machine *provider.Machine
	// requeueAfter is when to look again; zero means the resync period.
	requeueAfter time.Duration
	// stalled, when set, is why the operator cannot go on without a change.
	stalledReason, stalledMessage string
	// waitingForCapacity is true while the cloud has no room yet.
	waitingForCapacity bool
	// gone is true once the finalizer is removed and the object may be gone.
	gone bool
}

// Reconcile is thin: get, pause, finalizer or deletion, then the ordered
// steps, with one status patch at the end.
func (r *InstanceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	inst := &computev1alpha1.Instance{}
	if err := r.Client.Get(ctx, req.NamespacedName, inst); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to get the instance: %w", err)
	}
	p := &pass{inst: inst, written: inst.DeepCopy(), now: r.Clock.Now()}
	defer func() { res, err = r.finish(ctx, p, err) }()

	if inst.IsPaused() {
		r.pause(p)
		return ctrl.Result{}, nil
	}
	if !inst.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, p)
	}
	if err := r.ensureFinalizer(ctx, p); err != nil {
		return ctrl.Result{}, err
	}
	fillStatusFromSpec(p)
	if outside, err := r.outsideProject(ctx, p); outside || err != nil {
		return ctrl.Result{}, err
	}
	for _, step := range []func(context.Context, *pass) error{
		r.ensureMachine,
		r.drivePower,
		r.pushMetadata,
	} {
		if err := step(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// pausedNote ends the status message of a paused instance.
var pausedNote = fmt.Sprintf(" (paused by the annotation %s: no provider call is made until it is removed)", computev1alpha1.PausedAnnotation)

// pause records that the annotation stops all provider calls.
func (r *InstanceReconciler) pause(p *pass) {
	r.setCondition(p, computev1alpha1.ConditionPaused, true, computev1alpha1.ReasonPausedByAnnotation,
		fmt.Sprintf("the annotation %s stops all provider calls", computev1alpha1.PausedAnnotation))
	lc := &p.inst.Status.Lifecycle
	switch {
	case lc.Status == "":
		setLifecycle(p, computev1alpha1.LifecycleProvisioning, "no machine yet"+pausedNote)
	case !strings.HasSuffix(lc.StatusMessage, pausedNote):
		lc.StatusMessage += pausedNote
	}
}

// ensureFinalizer adds the finalizer that holds the resource until its machine is gone.
func (r *InstanceReconciler) ensureFinalizer(ctx context.Context, p *pass) error {
	if controllerutil.ContainsFinalizer(p.inst, computev1alpha1.Finalizer) {
		return nil
	}
	r.noPolicyLogged.Do(func() {
		ctrl.LoggerFrom(ctx).Info("an instance came without the finalizer, so the operator adds it with a write of its own; " +
			"install config/admission (Kubernetes 1.36 or later) to have kube-apiserver stamp it at create")
	})
	base := p.inst.DeepCopy()
	controllerutil.AddFinalizer(p.inst, computev1alpha1.Finalizer)
	// A merge patch replaces the whole list of finalizers: the
	// resourceVersion makes sure it replaces the list the pass read, not
	// one another writer has changed since (or one of a deleted instance).
	if err := r.Client.Patch(ctx, p.inst, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to add the finalizer: %w", err)
	}
	// The patch answered with the stored object; the status is unchanged so far.
	p.written = p.inst.DeepCopy()
	return nil
}

// callProvider runs one provider call under the call timeout and records its metrics.
func (r *InstanceReconciler) callProvider(ctx context.Context, operation string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.Options.CallTimeout)
	defer cancel()
	started := time.Now()
	err := call(ctx)
	observeCall(r.Provider.Name(), operation, started, err)
	return err
}

func (r *InstanceReconciler) event(p *pass, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p.inst, nil, eventType, reason, action, note, args...)
	}
}
