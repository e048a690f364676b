package controllers

import (
	"context"
	"errors"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// fillStatusFromSpec fills the status fields that come from the spec alone.
func fillStatusFromSpec(p *pass) {
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
	// A provider that names the machine otherwise says so in recordMachine.
	st.Hostname = p.inst.EffectiveHostname()
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
		r.recordMachine(p, m)
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
	if !p.inst.DeletionTimestamp.IsZero() {
		// Reconcile sends a deleted instance to reconcileDelete; a machine
		// created now would be one more for it to find.
		return errors.New("failed to create the machine: the instance is being deleted")
	}
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
	r.recordMachine(p, m)
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

// recordMachine records what the provider reports of the machine in status.
func (r *InstanceReconciler) recordMachine(p *pass, m *provider.Machine) {
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

// wantedLifecycle is the lifecycle status that spec.powerState asks for.
func wantedLifecycle(ps computev1alpha1.PowerState) computev1alpha1.LifecycleStatus {
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

// maxActionsPerPass is how many provider actions (power changes, Delete) one
// pass may take, each followed by an observation; with instant steps a pass
// can chain start and suspend, or stop and delete. Past it, the pass ends and
// the requeue carries on, so a provider that never settles cannot hold a worker.
const maxActionsPerPass = 3

// drivePower moves the machine towards spec.powerState, observing it again
// after each action so that status tells the truth.
func (r *InstanceReconciler) drivePower(ctx context.Context, p *pass) error {
	for actions := 0; p.machine != nil && actions < maxActionsPerPass; actions++ {
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

// setPower asks the provider for a power action and observes the machine after it.
func (r *InstanceReconciler) setPower(ctx context.Context, p *pass, action provider.PowerAction) error {
	err := r.callProvider(ctx, string(action), func(ctx context.Context) error {
		return r.Provider.SetPower(ctx, p.inst, action)
	})
	if err != nil {
		return fmt.Errorf("failed to %s the machine: %w", actionVerb(action), err)
	}
	m, err := r.observe(ctx, p)
	if err != nil {
		return err
	}
	r.recordMachine(p, m)
	return nil
}

// actionVerb is the verb of an error message about action a.
func actionVerb(a provider.PowerAction) string {
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
