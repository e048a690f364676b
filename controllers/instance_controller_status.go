package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// finish turns what the pass found into conditions, writes status once, and
// picks the result: a terminal error stalls, another error retries with
// backoff, and a wait requeues after the poll interval or the resync period.
func (r *InstanceReconciler) finish(ctx context.Context, p *pass, err error) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(p.inst)
	if p.gone {
		return ctrl.Result{}, err
	}
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
		// backoff afresh, so the retry comes soon. So does a conflict: the
		// cache was behind the instance, not the cloud down.
		if progressed(p) || apierrors.IsConflict(err) {
			r.backoff.Forget(reconcile.Request{NamespacedName: key})
		}
	}
	if !paused {
		r.setCondition(p, computev1alpha1.ConditionPaused, false, computev1alpha1.ReasonNotPaused, "the instance is reconciled")
		r.setReadyReconcilingStalled(p, err)
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
		after = wait.Jitter(r.Options.ResyncPeriod, 0.2)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// progressed reports whether the pass changed what status says of the
// machine: its identity or its lifecycle.
func progressed(p *pass) bool {
	before, now := p.written.Status, p.inst.Status
	return before.Machine.ID != now.Machine.ID || before.Lifecycle.Status != now.Lifecycle.Status
}

// setReadyReconcilingStalled sets the three kstatus conditions from the
// lifecycle, the error and the provisioning deadline, and, short of the power
// state, picks when to look again.
func (r *InstanceReconciler) setReadyReconcilingStalled(p *pass, err error) {
	inst := &p.inst.Status
	status, message := inst.Lifecycle.Status, inst.Lifecycle.StatusMessage
	deleting := !p.inst.DeletionTimestamp.IsZero()
	want := wantedLifecycle(p.inst.Spec.PowerState)
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
	p.requeueAfter = r.Options.PollInterval
	if p.machine != nil && p.machine.NextChangeIn > 0 {
		p.requeueAfter = min(p.machine.NextChangeIn+10*time.Millisecond, r.Options.PollInterval)
	}
	p.requeueAfter = wait.Jitter(p.requeueAfter, 0.1)
	if p.stalledReason == "" && r.Options.ProvisioningDeadline > 0 && !deleting {
		if since := meta.FindStatusCondition(inst.Conditions, computev1alpha1.ConditionReady); since != nil &&
			p.now.Sub(since.LastTransitionTime.Time) > r.Options.ProvisioningDeadline {
			p.stalledReason = computev1alpha1.ReasonProvisioningDeadlineExceeded
			p.stalledMessage = fmt.Sprintf("the instance has not reached %s within the provisioning deadline of %s: %s",
				want, r.Options.ProvisioningDeadline, message)
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
// history, updatedAt and the transition metrics. It emits no event: announce
// does, when status is written, for the changes a user cares about.
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
