package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
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
	if r.Recorder == nil {
		recorder, err := newBoundedRecorder(mgr, "instance-operator")
		if err != nil {
			return err
		}
		r.Recorder = recorder
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	r.Options = r.Options.withDefaults()
	instances.use(mgr.GetCache(), mgr.Elected())
	r.backoff = newJitteredBackoff(r.Options.RetryBaseDelay, r.Options.RetryMaxDelay)
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
	p := &pass{inst: inst, written: inst.DeepCopy(), now: r.clock().Now()}
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
	describe(p)
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

func (r *InstanceReconciler) clock() clock.Clock {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
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
	if err := r.Client.Patch(ctx, p.inst, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("failed to add the finalizer: %w", err)
	}
	// The patch answered with the stored object; the status is unchanged so far.
	p.written = p.inst.DeepCopy()
	return nil
}

// describe fills the status fields that come from the spec alone.
func describe(p *pass) {
	st, spec := &p.inst.Status, &p.inst.Spec
	st.InstanceTypeName = computev1alpha1.TypeName(spec.Type)
	st.Zone = computev1alpha1.ZoneOf(spec.Type)
	st.GPUSummary = ""
	for i, g := range spec.GPUs {
		if i > 0 {
			st.GPUSummary += ", "
		}
		st.GPUSummary += fmt.Sprintf("%dx %s", g.Count, computev1alpha1.TypeName(g.Type))
	}
	if spec.Hostname != "" {
		st.Hostname = spec.Hostname
	}
}

// ensureMachine observes the instance's machine, creating it (or a
// replacement for a lost one) when there is none.
func (r *InstanceReconciler) ensureMachine(ctx context.Context, p *pass) error {
	ref := &p.inst.Status.Machine
	if ref.ID == "" {
		// No machine is known yet. Create is idempotent by its token, so
		// with a token already recorded (a crash or a failed call since)
		// it answers with the machine that call made, if any: no need to
		// observe first.
		token := ref.CreateToken
		if token == "" {
			token = provider.CreateToken(p.inst)
		}
		return r.create(ctx, p, token, "creating the machine")
	}
	m, err := r.observe(ctx, p)
	switch {
	case err == nil:
		r.see(p, m)
		return nil
	case !errors.Is(err, provider.ErrNotFound):
		return err
	}
	lost := ref.ID
	ctrl.LoggerFrom(ctx).Info("machine lost out of band", "machine", lost, "policy", r.Options.LostMachinePolicy)
	if r.Options.LostMachinePolicy == LostMachineReport {
		r.event(p, "Warning", "MachineLost", "Observe", "machine %s disappeared from the cloud; the lost-machine policy is Report", lost)
		p.inst.Status.NICs = nil
		setLifecycle(p, computev1alpha1.LifecycleTerminated, fmt.Sprintf(
			"machine %s was lost out of band; the operator's lost-machine policy is Report, so no replacement is made: delete the instance, or run the operator with --lost-machine-policy=Recreate", lost))
		p.stalledReason, p.stalledMessage = computev1alpha1.ReasonMachineLostReported, p.inst.Status.Lifecycle.StatusMessage
		return nil
	}
	r.event(p, "Warning", "MachineLost", "Create", "machine %s disappeared from the cloud; creating a replacement", lost)
	return r.create(ctx, p, provider.ReplacementToken(ref.CreateToken),
		fmt.Sprintf("machine %s was lost out of band; creating a replacement", lost))
}

// create calls the provider's Create with a token that a crash anywhere
// cannot lose: derived from the UID, or recorded in status before the call.
func (r *InstanceReconciler) create(ctx context.Context, p *pass, token, why string) error {
	ref := &p.inst.Status.Machine
	if ref.CreateToken != token || ref.ID != "" || ref.Provider != r.Provider.Name() {
		ref.Provider, ref.CreateToken, ref.ID = r.Provider.Name(), token, ""
		p.inst.Status.NICs = nil
		setLifecycle(p, computev1alpha1.LifecycleProvisioning, why)
		// The first machine's token is derived from the UID, which is
		// stored: a retry or a restarted operator derives the same token, so
		// it needs no write of its own before the call and goes out with the
		// pass's one status write. A replacement's token is derived from the
		// lost machine's and must be on record before the call.
		if token != provider.CreateToken(p.inst) {
			if err := r.writeStatus(ctx, p); err != nil {
				return fmt.Errorf("failed to record the create token: %w", err)
			}
		}
	}
	var m *provider.Machine
	err := r.callProvider(ctx, "Create", func(ctx context.Context) (err error) {
		m, err = r.Provider.Create(ctx, p.inst)
		return err
	})
	if err != nil {
		if perm, ok := provider.AsPermanent(err); ok {
			setLifecycle(p, computev1alpha1.LifecycleProvisioning, "the cloud refused the instance: "+perm.Message)
		}
		return fmt.Errorf("failed to create the machine: %w", err)
	}
	r.event(p, "Normal", "MachineCreated", "Create", "created machine %s at provider %s", m.ID, r.Provider.Name())
	r.see(p, m)
	return nil
}

// observe asks the provider for the instance's machine.
func (r *InstanceReconciler) observe(ctx context.Context, p *pass) (*provider.Machine, error) {
	var m *provider.Machine
	err := r.callProvider(ctx, "Observe", func(ctx context.Context) (err error) {
		m, err = r.Provider.Observe(ctx, p.inst)
		return err
	})
	if err != nil && !errors.Is(err, provider.ErrNotFound) {
		return nil, fmt.Errorf("failed to observe the machine: %w", err)
	}
	return m, err
}

// see records what the provider reports of the machine in status.
func (r *InstanceReconciler) see(p *pass, m *provider.Machine) {
	p.machine = m
	st := &p.inst.Status
	st.Machine.Provider, st.Machine.ID = r.Provider.Name(), m.ID
	if m.Hostname != "" {
		st.Hostname = m.Hostname
	}
	if len(m.NICs) > 0 {
		st.NICs = m.NICs
	}
	p.waitingForCapacity = m.WaitingForCapacity
	setLifecycle(p, lifecycleOf(m.Phase, !p.inst.DeletionTimestamp.IsZero()), m.Message)
}

// lifecycleOf maps a provider phase onto the API's lifecycle status.
func lifecycleOf(phase provider.Phase, deleting bool) computev1alpha1.LifecycleStatus {
	switch phase {
	case provider.PhaseProvisioning:
		return computev1alpha1.LifecycleProvisioning
	case provider.PhaseStaging:
		return computev1alpha1.LifecycleStaging
	case provider.PhaseRunning:
		return computev1alpha1.LifecycleRunning
	case provider.PhaseStopping:
		return computev1alpha1.LifecycleStopping
	case provider.PhaseSuspending:
		return computev1alpha1.LifecycleSuspending
	case provider.PhaseSuspended:
		return computev1alpha1.LifecycleSuspended
	case provider.PhaseRepairing:
		return computev1alpha1.LifecycleRepairing
	case provider.PhaseDeleting:
		if deleting {
			return computev1alpha1.LifecycleTerminated
		}
		return computev1alpha1.LifecycleStopping
	default: // Stopped
		return computev1alpha1.LifecycleTerminated
	}
}

// target is the lifecycle status that spec.powerState asks for.
func target(ps computev1alpha1.PowerState) computev1alpha1.LifecycleStatus {
	switch ps {
	case computev1alpha1.PowerStateStopped:
		return computev1alpha1.LifecycleTerminated
	case computev1alpha1.PowerStateSuspended:
		return computev1alpha1.LifecycleSuspended
	default:
		return computev1alpha1.LifecycleRunning
	}
}

// powerAction is the action that moves a machine in phase towards power
// state ps, or "" when there is nothing to do but wait (or nothing at all).
func powerAction(ps computev1alpha1.PowerState, phase provider.Phase) provider.PowerAction {
	switch ps {
	case computev1alpha1.PowerStateStopped:
		switch phase {
		case provider.PhaseRunning, provider.PhaseStaging, provider.PhaseSuspended:
			return provider.PowerStop
		}
	case computev1alpha1.PowerStateSuspended:
		switch phase {
		case provider.PhaseRunning:
			return provider.PowerSuspend
		case provider.PhaseStopped:
			// A stopped machine has no memory to save: start it, then suspend it.
			return provider.PowerStart
		}
	default:
		switch phase {
		case provider.PhaseStopped:
			return provider.PowerStart
		case provider.PhaseSuspended:
			return provider.PowerResume
		}
	}
	return ""
}

// maxActionsPerPass bounds the act-and-observe loop of one pass; with
// instant steps a pass can chain start and suspend, or stop and delete.
const maxActionsPerPass = 3

// drivePower moves the machine towards spec.powerState, observing it again
// after each action so that status tells the truth.
func (r *InstanceReconciler) drivePower(ctx context.Context, p *pass) error {
	for i := 0; p.machine != nil && i < maxActionsPerPass; i++ {
		action := powerAction(p.inst.Spec.PowerState, p.machine.Phase)
		if action == "" {
			return nil
		}
		if err := r.setPower(ctx, p, action); err != nil {
			return err
		}
	}
	return nil
}

func (r *InstanceReconciler) setPower(ctx context.Context, p *pass, action provider.PowerAction) error {
	err := r.callProvider(ctx, string(action), func(ctx context.Context) error {
		return r.Provider.SetPower(ctx, p.inst, action)
	})
	if err != nil {
		return fmt.Errorf("failed to %s the machine: %w", verb(action), err)
	}
	m, err := r.observe(ctx, p)
	if err != nil {
		return err
	}
	r.see(p, m)
	return nil
}

func verb(a provider.PowerAction) string {
	switch a {
	case provider.PowerStart:
		return "start"
	case provider.PowerStop:
		return "stop"
	case provider.PowerSuspend:
		return "suspend"
	case provider.PowerResume:
		return "resume"
	}
	return string(a)
}

// pushMetadata sends instanceMetadata to the machine when the spec changed
// since the last successful pass; the provider's Update is idempotent. At
// generation 1 the spec never changed, so any machine of the instance was
// created with this metadata and there is nothing to push.
func (r *InstanceReconciler) pushMetadata(ctx context.Context, p *pass) error {
	if p.machine == nil || p.inst.Generation <= 1 || p.inst.Generation == p.inst.Status.ObservedGeneration ||
		p.machine.Phase == provider.PhaseDeleting {
		return nil
	}
	err := r.callProvider(ctx, "Update", func(ctx context.Context) error {
		return r.Provider.Update(ctx, p.inst)
	})
	if err != nil {
		return fmt.Errorf("failed to push instanceMetadata to the machine: %w", err)
	}
	return nil
}

// reconcileDelete stops and deletes the machine (policy Delete) or leaves it
// (policy Orphan), then removes the finalizer.
func (r *InstanceReconciler) reconcileDelete(ctx context.Context, p *pass) error {
	if !controllerutil.ContainsFinalizer(p.inst, computev1alpha1.Finalizer) {
		p.gone = true
		return nil
	}
	ref := p.inst.Status.Machine
	if p.inst.Spec.DeletionPolicy == computev1alpha1.DeletionPolicyOrphan {
		if releaser, ok := r.Provider.(provider.Releaser); ok && (ref.ID != "" || ref.CreateToken != "") {
			err := r.callProvider(ctx, "Release", func(ctx context.Context) error { return releaser.Release(ctx, p.inst) })
			if err != nil && !errors.Is(err, provider.ErrNotFound) {
				return fmt.Errorf("failed to release the machine from the instance: %w", err)
			}
		}
		if ref.ID != "" {
			r.event(p, "Normal", "MachineOrphaned", "Delete", "left machine %s in the cloud (deletionPolicy: Orphan)", ref.ID)
		}
		return r.removeFinalizer(ctx, p)
	}
	if ref.ID == "" && ref.CreateToken == "" {
		return r.removeFinalizer(ctx, p)
	}
	for i := 0; i <= maxActionsPerPass; i++ {
		m, err := r.observe(ctx, p)
		if errors.Is(err, provider.ErrNotFound) {
			if ref.ID != "" {
				r.event(p, "Normal", "MachineDeleted", "Delete", "deleted machine %s", ref.ID)
			}
			return r.removeFinalizer(ctx, p)
		}
		if err != nil {
			return err
		}
		r.see(p, m)
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
	return nil
}

func (r *InstanceReconciler) removeFinalizer(ctx context.Context, p *pass) error {
	base := p.inst.DeepCopy()
	controllerutil.RemoveFinalizer(p.inst, computev1alpha1.Finalizer)
	if err := r.Client.Patch(ctx, p.inst, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to remove the finalizer: %w", err)
	}
	p.gone = true
	return nil
}

// callProvider runs one provider call under the call timeout and records its metrics.
func (r *InstanceReconciler) callProvider(ctx context.Context, operation string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.Options.withDefaults().CallTimeout)
	defer cancel()
	started := time.Now()
	err := call(ctx)
	observeCall(r.Provider.Name(), operation, started, err)
	return err
}

// finish turns what the pass found into conditions, writes status once, and
// picks the result: a terminal error stalls, another error retries with
// backoff, and a wait requeues after the poll interval or the resync period.
func (r *InstanceReconciler) finish(ctx context.Context, p *pass, err error) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(p.inst)
	if p.gone {
		return ctrl.Result{}, err
	}
	opts := r.Options.withDefaults()
	paused := p.inst.IsPaused()
	perm, permanent := provider.AsPermanent(err)
	switch {
	case paused:
		// Nothing was observed: keep the conditions and say why nothing moves.
	case permanent:
		p.stalledReason, p.stalledMessage = computev1alpha1.ReasonProviderRejected, "the cloud refused the instance: "+perm.Message
		if perm.Reason != "" {
			p.stalledMessage = fmt.Sprintf("the cloud refused the instance (%s): %s", perm.Reason, perm.Message)
		}
		err = reconcile.TerminalError(err)
	case err != nil:
		if p.inst.Status.Lifecycle.Status == "" {
			setLifecycle(p, computev1alpha1.LifecycleProvisioning, "retrying after an error: "+err.Error())
		}
		// Back off from a cloud that is down, not from a flaky one: a pass
		// that moved the instance on before a call failed starts the
		// backoff afresh, so the retry comes soon.
		if r.backoff != nil && progressed(p) {
			r.backoff.Forget(reconcile.Request{NamespacedName: key})
		}
	}
	if !paused {
		r.setCondition(p, computev1alpha1.ConditionPaused, false, computev1alpha1.ReasonNotPaused, "the instance is reconciled")
		r.judge(p, err, opts)
	}
	if err == nil || permanent {
		if p.inst.Status.ObservedGeneration != p.inst.Generation && !paused {
			p.inst.Status.ObservedGeneration = p.inst.Generation
			now := metav1.NewTime(p.now)
			p.inst.Status.UpdatedAt = &now
		}
	}
	if werr := r.writeStatus(ctx, p); werr != nil {
		if apierrors.IsNotFound(werr) {
			return ctrl.Result{}, nil
		}
		if err == nil {
			err = werr
		}
		ctrl.LoggerFrom(ctx).Error(werr, "failed to write the status")
	}
	if err != nil || paused || p.stalledReason == computev1alpha1.ReasonMachineLostReported {
		return ctrl.Result{}, err
	}
	after := p.requeueAfter
	if after <= 0 {
		after = wait.Jitter(opts.ResyncPeriod, 0.2)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// progressed reports whether the pass changed what status says of the
// machine: its identity or its lifecycle.
func progressed(p *pass) bool {
	before, now := p.written.Status, p.inst.Status
	return before.Machine.ID != now.Machine.ID || before.Lifecycle.Status != now.Lifecycle.Status
}

// judge sets Ready, Reconciling and Stalled from the lifecycle, the error and
// the deadline, and picks when to look again.
func (r *InstanceReconciler) judge(p *pass, err error, opts Options) {
	inst := &p.inst.Status
	status, message := inst.Lifecycle.Status, inst.Lifecycle.StatusMessage
	deleting := !p.inst.DeletionTimestamp.IsZero()
	want := target(p.inst.Spec.PowerState)
	ready := !deleting && p.machine != nil && status == want
	readyReason := map[computev1alpha1.LifecycleStatus]string{
		computev1alpha1.LifecycleRunning:    computev1alpha1.ReasonRunning,
		computev1alpha1.LifecycleTerminated: computev1alpha1.ReasonStopped,
		computev1alpha1.LifecycleSuspended:  computev1alpha1.ReasonSuspended,
	}[status]
	if !ready {
		readyReason = notReadyReason(status, want)
		if deleting {
			readyReason = computev1alpha1.ReasonDeleting
		} else if p.stalledReason == computev1alpha1.ReasonMachineLostReported {
			readyReason = computev1alpha1.ReasonMachineLost
		}
	}
	// A call that failed before the machine was seen leaves Ready as it was:
	// the operator knows no better than last time.
	if p.machine != nil || err == nil || meta.FindStatusCondition(inst.Conditions, computev1alpha1.ConditionReady) == nil {
		r.setCondition(p, computev1alpha1.ConditionReady, ready, readyReason, message)
	}

	if ready && err == nil {
		r.setCondition(p, computev1alpha1.ConditionReconciling, false, computev1alpha1.ReasonReconciled, "the instance matches its spec")
		r.setCondition(p, computev1alpha1.ConditionStalled, false, computev1alpha1.ReasonNotStalled, "nothing blocks the instance")
		return
	}
	// Short of the power state: poll the machine in transit, unless stalled.
	p.requeueAfter = opts.PollInterval
	if p.machine != nil && p.machine.NextChangeIn > 0 {
		p.requeueAfter = min(p.machine.NextChangeIn+10*time.Millisecond, opts.PollInterval)
	}
	p.requeueAfter = wait.Jitter(p.requeueAfter, 0.1)
	if p.stalledReason == "" && opts.ProvisioningDeadline > 0 && !deleting {
		if since := meta.FindStatusCondition(inst.Conditions, computev1alpha1.ConditionReady); since != nil &&
			p.now.Sub(since.LastTransitionTime.Time) > opts.ProvisioningDeadline {
			p.stalledReason = computev1alpha1.ReasonProvisioningDeadlineExceeded
			p.stalledMessage = fmt.Sprintf("the instance has not reached %s within the provisioning deadline of %s: %s",
				want, opts.ProvisioningDeadline, message)
		}
	}
	if p.stalledReason != "" {
		r.setCondition(p, computev1alpha1.ConditionStalled, true, p.stalledReason, p.stalledMessage)
		r.setCondition(p, computev1alpha1.ConditionReconciling, false, p.stalledReason, "stalled: "+p.stalledMessage)
		if p.stalledReason != computev1alpha1.ReasonProvisioningDeadlineExceeded {
			inst.Lifecycle.StatusMessage = p.stalledMessage
		}
		return
	}
	r.setCondition(p, computev1alpha1.ConditionStalled, false, computev1alpha1.ReasonNotStalled, "nothing blocks the instance")
	switch {
	case err != nil:
		msg := "retrying after a transient error: " + err.Error()
		r.setCondition(p, computev1alpha1.ConditionReconciling, true, computev1alpha1.ReasonRetryingAfterError, msg)
		if p.machine == nil || status == computev1alpha1.LifecycleProvisioning {
			inst.Lifecycle.StatusMessage = msg
		}
	case p.waitingForCapacity:
		r.setCondition(p, computev1alpha1.ConditionReconciling, true, computev1alpha1.ReasonWaitingForCapacity, message)
	default:
		r.setCondition(p, computev1alpha1.ConditionReconciling, true, computev1alpha1.ReasonProgressing, message)
	}
}

// notReadyReason is the Ready reason of an instance in status short of want.
func notReadyReason(status, want computev1alpha1.LifecycleStatus) string {
	switch status {
	case computev1alpha1.LifecycleProvisioning, "":
		return computev1alpha1.ReasonProvisioning
	case computev1alpha1.LifecycleStaging:
		return computev1alpha1.ReasonStaging
	case computev1alpha1.LifecycleStopping:
		return computev1alpha1.ReasonStopping
	case computev1alpha1.LifecycleSuspending:
		return computev1alpha1.ReasonSuspending
	case computev1alpha1.LifecycleRepairing:
		return computev1alpha1.ReasonRepairing
	}
	// A settled status other than the one asked for: name the way there.
	switch want {
	case computev1alpha1.LifecycleTerminated:
		return computev1alpha1.ReasonStopping
	case computev1alpha1.LifecycleSuspended:
		return computev1alpha1.ReasonSuspending
	}
	return computev1alpha1.ReasonStaging
}

// setCondition sets a condition with the reconciler's clock as its transition time.
func (r *InstanceReconciler) setCondition(p *pass, condType string, status bool, reason, message string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&p.inst.Status.Conditions, metav1.Condition{
		Type: condType, Status: s, Reason: reason, Message: message,
		ObservedGeneration: p.inst.Generation, LastTransitionTime: metav1.NewTime(p.now),
	})
}

// setLifecycle sets the lifecycle; a change of status is recorded in the
// history, updatedAt, the transition metrics and, where a user cares, an event.
func setLifecycle(p *pass, status computev1alpha1.LifecycleStatus, message string) {
	lc := &p.inst.Status.Lifecycle
	from := lc.Status
	lc.Status, lc.StatusMessage = status, message
	if from == status {
		return
	}
	now := metav1.NewTime(p.now)
	p.inst.Status.UpdatedAt = &now
	firstRunning := status == computev1alpha1.LifecycleRunning
	for _, h := range p.inst.Status.History {
		if h.Status == computev1alpha1.LifecycleRunning {
			firstRunning = false
		}
	}
	h := append(p.inst.Status.History, computev1alpha1.LifecycleTransition{Status: status, Message: message, Time: now})
	if len(h) > computev1alpha1.MaxHistory {
		h = h[len(h)-computev1alpha1.MaxHistory:]
	}
	p.inst.Status.History = h
	fromLabel := string(from)
	if fromLabel == "" {
		fromLabel = "None"
	}
	lifecycleTransitions.WithLabelValues(fromLabel, string(status)).Inc()
	if firstRunning {
		timeToRunning.Observe(p.now.Sub(p.inst.CreationTimestamp.Time).Seconds())
	}
}

// writeStatus patches status if it changed since it was last written.
func (r *InstanceReconciler) writeStatus(ctx context.Context, p *pass) error {
	if equality.Semantic.DeepEqual(p.written.Status, p.inst.Status) {
		return nil
	}
	r.announce(p)
	if err := r.Client.Status().Patch(ctx, p.inst, client.MergeFrom(p.written)); err != nil {
		return err
	}
	p.written = p.inst.DeepCopy()
	return nil
}

// announce emits an event for each change a user cares about since the last write.
func (r *InstanceReconciler) announce(p *pass) {
	was, is := p.written.Status, p.inst.Status
	if was.Lifecycle.Status != is.Lifecycle.Status {
		msg := fmt.Sprintf("%s: %s", is.Lifecycle.Status, is.Lifecycle.StatusMessage)
		switch is.Lifecycle.Status {
		case computev1alpha1.LifecycleRunning:
			r.event(p, "Normal", computev1alpha1.ReasonRunning, "Reconcile", "%s", msg)
		case computev1alpha1.LifecycleSuspended:
			r.event(p, "Normal", computev1alpha1.ReasonSuspended, "Reconcile", "%s", msg)
		case computev1alpha1.LifecycleTerminated:
			r.event(p, "Normal", computev1alpha1.ReasonStopped, "Reconcile", "%s", msg)
		case computev1alpha1.LifecycleRepairing:
			r.event(p, "Warning", computev1alpha1.ReasonRepairing, "Reconcile", "%s", msg)
		}
	}
	if c := meta.FindStatusCondition(is.Conditions, computev1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		if old := meta.FindStatusCondition(was.Conditions, computev1alpha1.ConditionStalled); old == nil || old.Status != c.Status || old.Reason != c.Reason {
			r.event(p, "Warning", c.Reason, "Reconcile", "%s", c.Message)
		}
	}
}

func (r *InstanceReconciler) event(p *pass, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p.inst, nil, eventType, reason, action, note, args...)
	}
}
