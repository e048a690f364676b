package controllers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// Shorthands for expected conditions.
const (
	t_ = "True/"
	f_ = "False/"
)

var (
	running = map[string]string{
		computev1alpha1.ConditionReady:       t_ + computev1alpha1.ReasonRunning,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonReconciled,
		computev1alpha1.ConditionStalled:     f_ + computev1alpha1.ReasonNotStalled,
		computev1alpha1.ConditionPaused:      f_ + computev1alpha1.ReasonNotPaused,
	}
)

func progressing(readyReason string) map[string]string {
	return map[string]string{
		computev1alpha1.ConditionReady:       f_ + readyReason,
		computev1alpha1.ConditionReconciling: t_ + computev1alpha1.ReasonProgressing,
		computev1alpha1.ConditionStalled:     f_ + computev1alpha1.ReasonNotStalled,
	}
}

// machineOf is the simulated cloud's machine of the instance; the test fails
// unless the cloud holds exactly one machine for it.
func (h *harness) machineOf(name string) simulated.MachineInfo {
	h.t.Helper()
	var found []simulated.MachineInfo
	for _, m := range h.cloud().Machines() {
		if m.Namespace == h.ns && m.Name == name {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		h.t.Fatalf("the cloud holds %d machines for %s, want 1: %+v", len(found), name, found)
	}
	return found[0]
}

func TestCreateToRunning(t *testing.T) {
	h := newHarness(t, nil)
	h.create(h.newInstance("web"))

	inst := h.waitLifecycle("web", computev1alpha1.LifecycleProvisioning)
	h.expect(inst, computev1alpha1.LifecycleProvisioning, progressing(computev1alpha1.ReasonProvisioning), status.InProgressStatus)
	if !slices.Contains(inst.Finalizers, computev1alpha1.Finalizer) {
		t.Errorf("no finalizer on %v", inst.Finalizers)
	}
	if inst.Status.Machine.CreateToken != provider.CreateToken(inst) || inst.Status.Machine.Provider != simulated.Name {
		t.Errorf("machine ref %+v", inst.Status.Machine)
	}

	h.clock.Step(step)
	inst = h.waitLifecycle("web", computev1alpha1.LifecycleStaging)
	h.expect(inst, computev1alpha1.LifecycleStaging, progressing(computev1alpha1.ReasonStaging), status.InProgressStatus)

	h.clock.Step(step)
	inst = h.waitLifecycle("web", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)

	m := h.machineOf("web")
	st := inst.Status
	if st.Machine.ID != m.ID || st.Hostname != "web" || len(st.NICs) != 1 || st.NICs[0].IPv4Address == "" ||
		st.NICs[0].IPv6Address == "" || st.InstanceTypeName != "g1-xlarge" || st.Zone != "us1-a" || st.UpdatedAt == nil {
		t.Errorf("status does not describe the machine %+v: %+v", m, st)
	}
	var seen []computev1alpha1.LifecycleStatus
	for _, tr := range st.History {
		seen = append(seen, tr.Status)
	}
	if want := []computev1alpha1.LifecycleStatus{"PROVISIONING", "STAGING", "RUNNING"}; !slices.Equal(seen, want) {
		t.Errorf("history %v, want %v", seen, want)
	}

	h.waitEvents("web", "MachineCreated", computev1alpha1.ReasonRunning)
	if n := metricValue(t, "instance_operator_instances", "RUNNING"); n < 1 {
		t.Errorf("instance_operator_instances{status=RUNNING} = %v, want at least 1", n)
	}
	if n := metricValue(t, "instance_operator_provider_call_duration_seconds", "Create"); n < 1 {
		t.Errorf("no Create call latency recorded (%v samples)", n)
	}
	if n := metricValue(t, "instance_operator_time_to_running_seconds", ""); n < 1 {
		t.Errorf("no time to RUNNING recorded (%v samples)", n)
	}

	// What a user types waits for the same truth.
	if out, errOut, err := env.Kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=10s", "-n", h.ns, "instance/web"); err != nil {
		t.Errorf("kubectl wait: %v: %s %s", err, out, errOut)
	}

	// A metadata change reaches the machine, and observedGeneration follows.
	h.update("web", func(i *computev1alpha1.Instance) {
		i.Spec.InstanceMetadata = append(i.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "startup-script", Value: "echo hi"})
	})
	inst = h.waitFor("web", "observed the metadata change", func(i *computev1alpha1.Instance) bool {
		return i.Generation == 2 && i.Status.ObservedGeneration == 2
	})
	if md := h.machineOf("web").Metadata; len(md) != 2 || md[1].Key != "startup-script" {
		t.Errorf("machine metadata %+v", md)
	}
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
}

func TestStopAndStart(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	h.create(h.newInstance("db"))
	h.waitLifecycle("db", computev1alpha1.LifecycleRunning)

	h.update("db", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	inst := h.waitLifecycle("db", computev1alpha1.LifecycleStopping)
	h.expect(inst, computev1alpha1.LifecycleStopping, progressing(computev1alpha1.ReasonStopping), status.InProgressStatus)

	h.clock.Step(step)
	inst = h.waitLifecycle("db", computev1alpha1.LifecycleTerminated)
	h.expect(inst, computev1alpha1.LifecycleTerminated, map[string]string{
		computev1alpha1.ConditionReady:       t_ + computev1alpha1.ReasonStopped,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonReconciled,
		computev1alpha1.ConditionStalled:     f_ + computev1alpha1.ReasonNotStalled,
	}, status.CurrentStatus)
	if p := h.machineOf("db").Phase; p != provider.PhaseStopped {
		t.Errorf("machine is %s, want Stopped", p)
	}

	h.update("db", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	// The boot is instant here; a slow one is walked through in TestCreateToRunning.
	inst = h.waitLifecycle("db", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
}

func TestSuspendAndResume(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	h.create(h.newInstance("gpu"))
	h.waitLifecycle("gpu", computev1alpha1.LifecycleRunning)

	h.update("gpu", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateSuspended })
	inst := h.waitLifecycle("gpu", computev1alpha1.LifecycleSuspending)
	h.expect(inst, computev1alpha1.LifecycleSuspending, progressing(computev1alpha1.ReasonSuspending), status.InProgressStatus)
	h.clock.Step(step)
	inst = h.waitLifecycle("gpu", computev1alpha1.LifecycleSuspended)
	h.expect(inst, computev1alpha1.LifecycleSuspended, map[string]string{
		computev1alpha1.ConditionReady:       t_ + computev1alpha1.ReasonSuspended,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonReconciled,
	}, status.CurrentStatus)

	h.update("gpu", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	inst = h.waitLifecycle("gpu", computev1alpha1.LifecycleStaging)
	h.expect(inst, computev1alpha1.LifecycleStaging, progressing(computev1alpha1.ReasonStaging), status.InProgressStatus)
	h.clock.Step(step)
	inst = h.waitLifecycle("gpu", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
}

func TestHostFailureRepairs(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	h.create(h.newInstance("train"))
	inst := h.waitLifecycle("train", computev1alpha1.LifecycleRunning)

	if err := h.cloud().FailHost(inst.Status.Machine.ID); err != nil {
		t.Fatal(err)
	}
	// Only periodic re-observation notices what the cloud did on its own.
	inst = h.waitLifecycle("train", computev1alpha1.LifecycleRepairing)
	h.expect(inst, computev1alpha1.LifecycleRepairing, progressing(computev1alpha1.ReasonRepairing), status.InProgressStatus)
	h.clock.Step(step)
	inst = h.waitLifecycle("train", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
}

func TestDeleteStopsThenDeletesTheMachine(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	h.create(h.newInstance("tmp"))
	inst := h.waitLifecycle("tmp", computev1alpha1.LifecycleRunning)
	id := inst.Status.Machine.ID

	if err := h.c.Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	inst = h.waitFor("tmp", "STOPPING for deletion", func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == computev1alpha1.LifecycleStopping
	})
	h.expect(inst, computev1alpha1.LifecycleStopping, map[string]string{
		computev1alpha1.ConditionReady: f_ + computev1alpha1.ReasonDeleting,
	}, status.TerminatingStatus)
	h.clock.Step(step)
	h.waitFor("tmp", "TERMINATED while the machine is deleted", func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == computev1alpha1.LifecycleTerminated
	})
	if p := h.machineOf("tmp").Phase; p != provider.PhaseDeleting {
		t.Errorf("machine is %s, want Deleting", p)
	}
	h.clock.Step(step)
	h.waitGone("tmp")
	for _, m := range h.cloud().Machines() {
		if m.ID == id {
			t.Errorf("machine %s outlived its instance: %+v", id, m)
		}
	}
}

func TestDeleteWithOrphanPolicyKeepsTheMachine(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	inst := h.newInstance("keep")
	inst.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan
	h.create(inst)
	inst = h.waitLifecycle("keep", computev1alpha1.LifecycleRunning)
	if err := h.c.Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	h.waitGone("keep")
	if m := h.machineOf("keep"); m.ID != inst.Status.Machine.ID || m.Phase != provider.PhaseRunning {
		t.Errorf("the orphaned machine is %+v, want %s running", m, inst.Status.Machine.ID)
	}
}

func TestPausedMakesNoProviderCalls(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies.Allocate, c.Latencies.Boot = 0, 0 })
	h.create(h.newInstance("frozen"))
	h.waitLifecycle("frozen", computev1alpha1.LifecycleRunning)

	h.update("frozen", func(i *computev1alpha1.Instance) {
		i.Annotations = map[string]string{computev1alpha1.PausedAnnotation: "true"}
	})
	h.waitFor("frozen", "Paused", func(i *computev1alpha1.Instance) bool {
		c := computev1alpha1.ConditionPaused
		for _, cond := range i.Status.Conditions {
			if cond.Type == c {
				return cond.Status == "True" && cond.Reason == computev1alpha1.ReasonPausedByAnnotation
			}
		}
		return false
	})
	// Every provider call now fails; a paused instance must not notice.
	if err := h.cloud().SetFaults(simulated.Faults{TransientErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	h.update("frozen", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	h.waitFor("frozen", "generation 3 seen while paused", func(i *computev1alpha1.Instance) bool {
		return i.Generation == 2
	})
	// The operator saw the change (it is watched) but acted on nothing.
	h.waitFor("frozen", "reconciled while paused", func(i *computev1alpha1.Instance) bool {
		return len(i.Status.Lifecycle.StatusMessage) > 0 && i.Status.ObservedGeneration == 1
	})
	if p := h.machineOf("frozen").Phase; p != provider.PhaseRunning {
		t.Errorf("a paused instance's machine went %s", p)
	}
	inst, _ := h.get("frozen")
	if got := kstatus(t, inst); got != status.InProgressStatus {
		t.Errorf("kstatus of a paused, changed instance: %s, want InProgress", got)
	}
	for _, c := range inst.Status.Conditions {
		if c.Type == computev1alpha1.ConditionReconciling && c.Reason == computev1alpha1.ReasonRetryingAfterError {
			t.Errorf("a paused instance made a provider call: %+v", c)
		}
	}

	if err := h.cloud().SetFaults(simulated.Faults{}); err != nil {
		t.Fatal(err)
	}
	h.update("frozen", func(i *computev1alpha1.Instance) { delete(i.Annotations, computev1alpha1.PausedAnnotation) })
	h.waitLifecycle("frozen", computev1alpha1.LifecycleStopping)
	h.clock.Step(step)
	inst = h.waitLifecycle("frozen", computev1alpha1.LifecycleTerminated)
	h.expect(inst, computev1alpha1.LifecycleTerminated, map[string]string{
		computev1alpha1.ConditionReady:  t_ + computev1alpha1.ReasonStopped,
		computev1alpha1.ConditionPaused: f_ + computev1alpha1.ReasonNotPaused,
	}, status.CurrentStatus)
}

func TestTransientErrorsRetryWithoutStalling(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		c.Faults.TransientErrorRate = 1
	})
	h.create(h.newInstance("flaky"))
	inst := h.waitFor("flaky", "retrying", func(i *computev1alpha1.Instance) bool {
		for _, c := range i.Status.Conditions {
			if c.Type == computev1alpha1.ConditionReconciling && c.Reason == computev1alpha1.ReasonRetryingAfterError {
				return true
			}
		}
		return false
	})
	h.expect(inst, computev1alpha1.LifecycleProvisioning, map[string]string{
		computev1alpha1.ConditionReady:       f_ + computev1alpha1.ReasonProvisioning,
		computev1alpha1.ConditionReconciling: t_ + computev1alpha1.ReasonRetryingAfterError,
		computev1alpha1.ConditionStalled:     f_ + computev1alpha1.ReasonNotStalled,
	}, status.InProgressStatus)
	if inst.Status.ObservedGeneration == inst.Generation {
		t.Errorf("observedGeneration %d set by a pass that failed", inst.Status.ObservedGeneration)
	}
	// Half the calls fail from now on: the instance still gets there.
	if err := h.cloud().SetFaults(simulated.Faults{TransientErrorRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	inst = h.waitFor("flaky", "RUNNING and settled", func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == computev1alpha1.LifecycleRunning && kstatus(t, i) == status.CurrentStatus
	})
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
	h.machineOf("flaky")
}

func TestSlowCallsNeverDuplicateAMachine(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, o *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		c.Faults = simulated.Faults{SlowCallRate: 1, SlowCallDelay: time.Hour}
		o.CallTimeout = 50 * time.Millisecond
	})
	h.create(h.newInstance("slow"))
	// Every call acts, then times out: the create happens at the cloud but
	// the operator never hears back.
	h.waitFor("slow", "retrying after timeouts", func(i *computev1alpha1.Instance) bool {
		for _, c := range i.Status.Conditions {
			if c.Type == computev1alpha1.ConditionReconciling && c.Reason == computev1alpha1.ReasonRetryingAfterError {
				return true
			}
		}
		return false
	})
	h.machineOf("slow")
	if err := h.cloud().SetFaults(simulated.Faults{}); err != nil {
		t.Fatal(err)
	}
	inst := h.waitLifecycle("slow", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
	if m := h.machineOf("slow"); m.ID != inst.Status.Machine.ID {
		t.Errorf("status names machine %s, the cloud holds %s", inst.Status.Machine.ID, m.ID)
	}
}

func TestPermanentErrorStalls(t *testing.T) {
	h := newHarness(t, nil)
	inst := h.newInstance("bad")
	inst.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/no-such-type"
	h.create(inst)
	inst = h.waitFor("bad", "Stalled", func(i *computev1alpha1.Instance) bool { return kstatus(t, i) == status.FailedStatus })
	h.expect(inst, computev1alpha1.LifecycleProvisioning, map[string]string{
		computev1alpha1.ConditionReady:       f_ + computev1alpha1.ReasonProvisioning,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonProviderRejected,
		computev1alpha1.ConditionStalled:     t_ + computev1alpha1.ReasonProviderRejected,
	}, status.FailedStatus)
	if inst.Status.ObservedGeneration != inst.Generation {
		t.Errorf("observedGeneration %d, want %d: a terminal verdict is a finished pass", inst.Status.ObservedGeneration, inst.Generation)
	}
	if msg := inst.Status.Lifecycle.StatusMessage; !containsAll(msg, "UnknownInstanceType", "no-such-type") {
		t.Errorf("statusMessage %q does not say what was refused", msg)
	}
	// Deleting a refused instance needs nothing from the cloud.
	if err := h.c.Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	h.waitGone("bad")
}

func TestProvisioningDeadlineStalls(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, o *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		c.InstanceTypes = map[string]int{"g1-xlarge": 0}
	})
	h.create(h.newInstance("waiting"))
	inst := h.waitFor("waiting", "waiting for capacity", func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.StatusMessage == "waiting for capacity: all 0 g1-xlarge machines of the cloud are in use"
	})
	h.expect(inst, computev1alpha1.LifecycleProvisioning, map[string]string{
		computev1alpha1.ConditionReady:       f_ + computev1alpha1.ReasonProvisioning,
		computev1alpha1.ConditionReconciling: t_ + computev1alpha1.ReasonWaitingForCapacity,
		computev1alpha1.ConditionStalled:     f_ + computev1alpha1.ReasonNotStalled,
	}, status.InProgressStatus)

	h.clock.Step(11 * step)
	inst = h.waitFor("waiting", "past the deadline", func(i *computev1alpha1.Instance) bool { return kstatus(t, i) == status.FailedStatus })
	h.expect(inst, computev1alpha1.LifecycleProvisioning, map[string]string{
		computev1alpha1.ConditionStalled:     t_ + computev1alpha1.ReasonProvisioningDeadlineExceeded,
		computev1alpha1.ConditionReconciling: f_ + computev1alpha1.ReasonProvisioningDeadlineExceeded,
		computev1alpha1.ConditionReady:       f_ + computev1alpha1.ReasonProvisioning,
	}, status.FailedStatus)

	// A stalled instance is still watched: room in the cloud lets it go on.
	h.cloud().SetCapacity("g1-xlarge", 1)
	inst = h.waitLifecycle("waiting", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
}

func TestLostMachineIsRecreated(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, _ *controllers.Options) { c.Latencies = simulated.Latencies{} })
	h.create(h.newInstance("lost"))
	inst := h.waitLifecycle("lost", computev1alpha1.LifecycleRunning)
	old := inst.Status.Machine
	if err := h.cloud().Lose(old.ID); err != nil {
		t.Fatal(err)
	}
	inst = h.waitFor("lost", "running on a new machine", func(i *computev1alpha1.Instance) bool {
		return i.Status.Machine.ID != "" && i.Status.Machine.ID != old.ID && i.Status.Lifecycle.Status == computev1alpha1.LifecycleRunning
	})
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
	if inst.Status.Machine.CreateToken != provider.ReplacementToken(old.CreateToken) {
		t.Errorf("replacement token %s, want one derived from %s", inst.Status.Machine.CreateToken, old.CreateToken)
	}
	if m := h.machineOf("lost"); m.ID != inst.Status.Machine.ID {
		t.Errorf("the cloud holds %s, status names %s", m.ID, inst.Status.Machine.ID)
	}
}

func TestLostMachineIsReported(t *testing.T) {
	h := newHarness(t, func(c *simulated.Config, o *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		o.LostMachinePolicy = controllers.LostMachineReport
	})
	h.create(h.newInstance("lost"))
	inst := h.waitLifecycle("lost", computev1alpha1.LifecycleRunning)
	if err := h.cloud().Lose(inst.Status.Machine.ID); err != nil {
		t.Fatal(err)
	}
	inst = h.waitFor("lost", "reported lost", func(i *computev1alpha1.Instance) bool { return kstatus(t, i) == status.FailedStatus })
	h.expect(inst, computev1alpha1.LifecycleTerminated, map[string]string{
		computev1alpha1.ConditionReady:   f_ + computev1alpha1.ReasonMachineLost,
		computev1alpha1.ConditionStalled: t_ + computev1alpha1.ReasonMachineLostReported,
	}, status.FailedStatus)
	if n := len(h.cloud().Machines()); n != 0 {
		t.Errorf("policy Report made %d machines", n)
	}
	if err := h.c.Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	h.waitGone("lost")
}

func TestRestartMidProvisioningMakesNoSecondMachine(t *testing.T) {
	h := newHarness(t, nil)
	h.create(h.newInstance("survivor"))
	inst := h.waitFor("survivor", "PROVISIONING with a machine", func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == computev1alpha1.LifecycleProvisioning && i.Status.Machine.ID != ""
	})
	first := inst.Status.Machine

	h.stop()
	h.clock.Step(step)
	h.start()

	h.clock.Step(step)
	inst = h.waitLifecycle("survivor", computev1alpha1.LifecycleRunning)
	h.expect(inst, computev1alpha1.LifecycleRunning, running, status.CurrentStatus)
	if inst.Status.Machine != first {
		t.Errorf("machine %+v after the restart, want %+v", inst.Status.Machine, first)
	}
	if n := len(h.cloud().Machines()); n != 1 {
		t.Errorf("the cloud holds %d machines after the restart, want 1", n)
	}
}

func TestRestartAfterTokenRecordedBeforeCreate(t *testing.T) {
	// The operator recorded the token, then died before its create call.
	h := newHarness(t, nil)
	h.stop()
	inst := h.create(h.newInstance("early"))
	inst.Status.Machine = computev1alpha1.MachineRef{Provider: simulated.Name, CreateToken: provider.CreateToken(inst)}
	inst.Status.Lifecycle = computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleProvisioning, StatusMessage: "creating the machine"}
	if err := h.c.Status().Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitFor("early", "PROVISIONING with a machine", func(i *computev1alpha1.Instance) bool { return i.Status.Machine.ID != "" })
	h.clock.Step(step)
	h.waitLifecycle("early", computev1alpha1.LifecycleStaging)
	h.clock.Step(step)
	inst = h.waitLifecycle("early", computev1alpha1.LifecycleRunning)
	if m := h.machineOf("early"); m.Token != provider.CreateToken(inst) || m.ID != inst.Status.Machine.ID {
		t.Errorf("machine %+v, status %+v", m, inst.Status.Machine)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// waitEvents waits until the instance has events with each of the reasons.
func (h *harness) waitEvents(name string, reasons ...string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		list := &eventsv1.EventList{}
		if err := h.c.List(context.Background(), list, client.InNamespace(h.ns)); err != nil {
			h.t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Regarding.Kind == "Instance" {
				seen = append(seen, e.Reason)
			}
		}
		all := true
		for _, r := range reasons {
			all = all && slices.Contains(seen, r)
		}
		if all {
			return
		}
		<-time.After(20 * time.Millisecond)
	}
	h.t.Fatalf("%s: events %v, want %v among them", name, seen, reasons)
}

// metricValue is a gauge's value, or a histogram's sample count, of the
// series of the named metric that has label value label ("" for any series).
func metricValue(t testing.TB, name, label string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetValue() == label
			}
			if !match {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
