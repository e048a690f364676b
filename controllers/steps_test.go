package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

func TestPowerAction(t *testing.T) {
	const (
		run  = computev1alpha1.PowerStateRunning
		stop = computev1alpha1.PowerStateStopped
		susp = computev1alpha1.PowerStateSuspended
	)
	cases := []struct {
		want  computev1alpha1.PowerState
		phase provider.Phase
		do    provider.PowerAction
	}{
		{run, provider.PhaseProvisioning, ""},
		{run, provider.PhaseStaging, ""},
		{run, provider.PhaseRunning, ""},
		{run, provider.PhaseStopping, ""},
		{run, provider.PhaseStopped, provider.PowerStart},
		{run, provider.PhaseSuspending, ""},
		{run, provider.PhaseSuspended, provider.PowerResume},
		{run, provider.PhaseRepairing, ""},
		{stop, provider.PhaseProvisioning, ""},
		{stop, provider.PhaseStaging, provider.PowerStop},
		{stop, provider.PhaseRunning, provider.PowerStop},
		{stop, provider.PhaseStopping, ""},
		{stop, provider.PhaseStopped, ""},
		{stop, provider.PhaseSuspended, provider.PowerStop},
		{stop, provider.PhaseRepairing, ""},
		{susp, provider.PhaseRunning, provider.PowerSuspend},
		{susp, provider.PhaseStopped, provider.PowerStart},
		{susp, provider.PhaseSuspending, ""},
		{susp, provider.PhaseSuspended, ""},
		{susp, provider.PhaseStaging, ""},
	}
	for _, c := range cases {
		if got := powerAction(c.want, c.phase); got != c.do {
			t.Errorf("powerState %s, machine %s: action %q, want %q", c.want, c.phase, got, c.do)
		}
	}
}

func TestLifecycleOf(t *testing.T) {
	cases := []struct {
		phase    provider.Phase
		deleting bool
		want     computev1alpha1.LifecycleStatus
	}{
		{provider.PhaseProvisioning, false, computev1alpha1.LifecycleProvisioning},
		{provider.PhaseStaging, false, computev1alpha1.LifecycleStaging},
		{provider.PhaseRunning, false, computev1alpha1.LifecycleRunning},
		{provider.PhaseStopping, false, computev1alpha1.LifecycleStopping},
		{provider.PhaseStopped, false, computev1alpha1.LifecycleTerminated},
		{provider.PhaseSuspending, false, computev1alpha1.LifecycleSuspending},
		{provider.PhaseSuspended, false, computev1alpha1.LifecycleSuspended},
		{provider.PhaseRepairing, false, computev1alpha1.LifecycleRepairing},
		{provider.PhaseDeleting, false, computev1alpha1.LifecycleStopping},
		{provider.PhaseDeleting, true, computev1alpha1.LifecycleTerminated},
	}
	for _, c := range cases {
		if got := lifecycleOf(c.phase, c.deleting); got != c.want {
			t.Errorf("phase %s (deleting %v): %s, want %s", c.phase, c.deleting, got, c.want)
		}
	}
}

// fakeProvider is a scripted provider: one machine per instance, a phase
// set by the test, and errors to return per operation.
type fakeProvider struct {
	machines map[string]*provider.Machine // by create token
	fail     map[string]error             // by operation
	calls    []string
	// beforeCreate runs first in Create, to check what was stored before the call.
	beforeCreate func(*computev1alpha1.Instance)
	released     bool
	// stuck makes SetPower and Delete succeed without moving the machine.
	stuck bool
}

func newFakeProvider() *fakeProvider {
	return &fakeProvider{machines: map[string]*provider.Machine{}, fail: map[string]error{}}
}

func (f *fakeProvider) Name() string { return "fake" }

func (f *fakeProvider) call(op string) error {
	f.calls = append(f.calls, op)
	return f.fail[op]
}

func (f *fakeProvider) Observe(_ context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	if err := f.call("Observe"); err != nil {
		return nil, err
	}
	m := f.machines[inst.Status.Machine.CreateToken]
	if m == nil || (inst.Status.Machine.ID != "" && m.ID != inst.Status.Machine.ID) {
		return nil, fmt.Errorf("fake: %w", provider.ErrNotFound)
	}
	c := *m
	return &c, nil
}

func (f *fakeProvider) Create(_ context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	if f.beforeCreate != nil {
		f.beforeCreate(inst)
	}
	if err := f.call("Create"); err != nil {
		return nil, err
	}
	token := inst.Status.Machine.CreateToken
	if f.machines[token] == nil {
		f.machines[token] = &provider.Machine{ID: fmt.Sprintf("m%d", len(f.machines)+1), Phase: provider.PhaseRunning,
			Message: "running", Hostname: inst.Name}
	}
	c := *f.machines[token]
	return &c, nil
}

func (f *fakeProvider) Update(context.Context, *computev1alpha1.Instance) error {
	return f.call("Update")
}

func (f *fakeProvider) SetPower(_ context.Context, inst *computev1alpha1.Instance, a provider.PowerAction) error {
	if err := f.call(string(a)); err != nil {
		return err
	}
	if f.stuck {
		return nil
	}
	m := f.machines[inst.Status.Machine.CreateToken]
	m.Phase = map[provider.PowerAction]provider.Phase{
		provider.PowerStart: provider.PhaseRunning, provider.PowerStop: provider.PhaseStopped,
		provider.PowerSuspend: provider.PhaseSuspended, provider.PowerResume: provider.PhaseRunning,
	}[a]
	m.Message = string(m.Phase)
	return nil
}

func (f *fakeProvider) Delete(_ context.Context, inst *computev1alpha1.Instance) error {
	if err := f.call("Delete"); err != nil || f.stuck {
		return err
	}
	delete(f.machines, inst.Status.Machine.CreateToken)
	return nil
}

func (f *fakeProvider) Release(context.Context, *computev1alpha1.Instance) error {
	f.released = true
	return f.call("Release")
}

func (f *fakeProvider) called(op string) int {
	n := 0
	for _, c := range f.calls {
		if c == op {
			n++
		}
	}
	return n
}

// fixture is a reconciler over the fake client and a fake provider.
type fixture struct {
	t     *testing.T
	r     *InstanceReconciler
	c     client.Client
	prov  *fakeProvider
	clock *clocktesting.FakeClock
	// writes counts status patches, patches those of the resource itself.
	writes, patches int
}

func newFixture(t *testing.T, inst *computev1alpha1.Instance) *fixture {
	s := runtime.NewScheme()
	if err := computev1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, prov: newFakeProvider(), clock: clocktesting.NewFakeClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))}
	f.c = fake.NewClientBuilder().WithScheme(s).WithObjects(inst, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: inst.Namespace}}).WithStatusSubresource(inst).
		WithInterceptorFuncs(interceptor.Funcs{
			// A reconcile does no work proportional to the number of instances.
			List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
				t.Error("a reconcile listed objects")
				return errors.New("no lists in a reconcile")
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, o ...client.SubResourcePatchOption) error {
				f.writes++
				return c.SubResource(sub).Patch(ctx, obj, p, o...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, o ...client.PatchOption) error {
				f.patches++
				return c.Patch(ctx, obj, p, o...)
			},
		}).Build()
	f.r = &InstanceReconciler{Client: f.c, Provider: f.prov, Clock: f.clock, Recorder: events.NewFakeRecorder(100),
		Options: Options{PollInterval: time.Second, ResyncPeriod: time.Minute, ProvisioningDeadline: time.Hour}}
	f.r.applyDefaults()
	return f
}

func testInstance() *computev1alpha1.Instance {
	return &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "ns", UID: "uid-1", Generation: 1},
		Spec: computev1alpha1.InstanceSpec{Type: "/v1/regions/r/zones/z/instance-types/t",
			PowerState: computev1alpha1.PowerStateRunning, DeletionPolicy: computev1alpha1.DeletionPolicyDelete},
	}
}

func (f *fixture) reconcile() (ctrl.Result, error) {
	return f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "ns", Name: "i"}})
}

func (f *fixture) get() *computev1alpha1.Instance {
	inst := &computev1alpha1.Instance{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "i"}, inst); err != nil {
		f.t.Fatal(err)
	}
	return inst
}

func condition(inst *computev1alpha1.Instance, t string) string {
	c := meta.FindStatusCondition(inst.Status.Conditions, t)
	if c == nil {
		return "absent"
	}
	return string(c.Status) + "/" + c.Reason
}

// TestFirstPassCreatesWithAStoredToken: the first create's token is derived
// from what is already stored (the UID), so a crash after the call leaves a
// token the next pass derives again; and the finalizer is stored first.
func TestFirstPassCreatesWithAStoredToken(t *testing.T) {
	f := newFixture(t, testInstance())
	f.prov.beforeCreate = func(sent *computev1alpha1.Instance) {
		stored := f.get()
		if sent.Status.Machine.CreateToken == "" || sent.Status.Machine.CreateToken != provider.CreateToken(stored) {
			t.Errorf("create called with token %q, not the one derived from the stored instance", sent.Status.Machine.CreateToken)
		}
		if len(stored.Finalizers) == 0 {
			t.Error("create called before the finalizer was stored")
		}
	}
	res, err := f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	inst := f.get()
	if inst.Status.Lifecycle.Status != computev1alpha1.LifecycleRunning || condition(inst, computev1alpha1.ConditionReady) != "True/Running" ||
		inst.Status.ObservedGeneration != 1 || inst.Status.Machine.ID != "m1" {
		t.Errorf("after one pass: %+v", inst.Status)
	}
	if res.RequeueAfter < time.Minute || res.RequeueAfter > 72*time.Second {
		t.Errorf("a settled instance requeues after %s, want the resync period with jitter", res.RequeueAfter)
	}

	// A second pass that finds nothing new writes nothing.
	f.writes = 0
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.writes != 0 {
		t.Errorf("a no-op pass wrote status %d times", f.writes)
	}
	if n := f.prov.called("Create"); n != 1 {
		t.Errorf("%d creates, want 1", n)
	}
}

func TestErrorClasses(t *testing.T) {
	cases := []struct {
		name            string
		err             error
		terminal        bool
		stalled, recon  string
		observedAdvance bool
	}{
		{"transient", errors.New("boom"), false, "False/NotStalled", "True/RetryingAfterError", false},
		{"timeout", context.DeadlineExceeded, false, "False/NotStalled", "True/RetryingAfterError", false},
		{"permanent", provider.Permanent("UnknownImage", "no such image"), true, "True/ProviderRejected", "False/ProviderRejected", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, testInstance())
			f.prov.fail["Create"] = c.err
			_, err := f.reconcile()
			if err == nil {
				t.Fatal("no error returned")
			}
			if got := errors.Is(err, reconcile.TerminalError(nil)); got != c.terminal {
				t.Errorf("terminal = %v, want %v (%v)", got, c.terminal, err)
			}
			inst := f.get()
			if got := condition(inst, computev1alpha1.ConditionStalled); got != c.stalled {
				t.Errorf("Stalled %s, want %s", got, c.stalled)
			}
			if got := condition(inst, computev1alpha1.ConditionReconciling); got != c.recon {
				t.Errorf("Reconciling %s, want %s", got, c.recon)
			}
			if got := inst.Status.ObservedGeneration == 1; got != c.observedAdvance {
				t.Errorf("observedGeneration %d", inst.Status.ObservedGeneration)
			}
			if inst.Status.Lifecycle.Status != computev1alpha1.LifecycleProvisioning || inst.Status.Lifecycle.StatusMessage == "" {
				t.Errorf("lifecycle %+v", inst.Status.Lifecycle)
			}
		})
	}
}

func TestPausedCallsNothing(t *testing.T) {
	inst := testInstance()
	inst.Annotations = map[string]string{computev1alpha1.PausedAnnotation: "true"}
	f := newFixture(t, inst)
	res, err := f.reconcile()
	if err != nil || res.RequeueAfter != 0 {
		t.Fatalf("paused pass: %v %v", res, err)
	}
	if len(f.prov.calls) != 0 {
		t.Errorf("provider calls while paused: %v", f.prov.calls)
	}
	got := f.get()
	if condition(got, computev1alpha1.ConditionPaused) != "True/PausedByAnnotation" || got.Status.ObservedGeneration != 0 ||
		got.Status.Lifecycle.StatusMessage == "" {
		t.Errorf("paused status: %+v", got.Status)
	}
}

func TestDeadlineStalls(t *testing.T) {
	f := newFixture(t, testInstance())
	f.prov.machines[provider.CreateToken(testInstance())] = &provider.Machine{ID: "m1", Phase: provider.PhaseProvisioning,
		WaitingForCapacity: true, Message: "waiting for capacity"}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := condition(f.get(), computev1alpha1.ConditionReconciling); got != "True/WaitingForCapacity" {
		t.Fatalf("Reconciling %s", got)
	}
	f.clock.Step(59 * time.Minute)
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := condition(f.get(), computev1alpha1.ConditionStalled); got != "False/NotStalled" {
		t.Fatalf("Stalled %s before the deadline", got)
	}
	f.clock.Step(2 * time.Minute)
	res, err := f.reconcile()
	if err != nil {
		t.Fatal(err)
	}
	inst := f.get()
	if condition(inst, computev1alpha1.ConditionStalled) != "True/ProvisioningDeadlineExceeded" ||
		condition(inst, computev1alpha1.ConditionReconciling) != "False/ProvisioningDeadlineExceeded" {
		t.Errorf("past the deadline: %v", inst.Status.Conditions)
	}
	if res.RequeueAfter == 0 || res.RequeueAfter > 2*time.Second {
		t.Errorf("a stalled instance waiting for capacity must still be polled, requeue %s", res.RequeueAfter)
	}
}

func TestLostMachinePolicies(t *testing.T) {
	for _, policy := range []LostMachinePolicy{LostMachineRecreate, LostMachineReport} {
		t.Run(string(policy), func(t *testing.T) {
			f := newFixture(t, testInstance())
			f.r.Options.LostMachinePolicy = policy
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			token := f.get().Status.Machine.CreateToken
			delete(f.prov.machines, token)
			f.prov.beforeCreate = func(*computev1alpha1.Instance) {
				// A replacement's token is not derivable from the UID: it must be on record first.
				if stored := f.get().Status.Machine.CreateToken; stored != provider.ReplacementToken(token) {
					t.Errorf("replacement created before its token was stored (stored %q)", stored)
				}
			}
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			inst := f.get()
			switch policy {
			case LostMachineRecreate:
				if inst.Status.Machine.CreateToken != provider.ReplacementToken(token) || inst.Status.Lifecycle.Status != computev1alpha1.LifecycleRunning {
					t.Errorf("after recreate: %+v", inst.Status)
				}
			case LostMachineReport:
				if f.prov.called("Create") != 1 || inst.Status.Lifecycle.Status != computev1alpha1.LifecycleTerminated ||
					condition(inst, computev1alpha1.ConditionStalled) != "True/MachineLostReported" {
					t.Errorf("after report: %+v", inst.Status)
				}
			}
		})
	}
}

func TestDeletion(t *testing.T) {
	for _, policy := range []computev1alpha1.DeletionPolicy{computev1alpha1.DeletionPolicyDelete, computev1alpha1.DeletionPolicyOrphan} {
		t.Run(string(policy), func(t *testing.T) {
			inst := testInstance()
			inst.Spec.DeletionPolicy = policy
			f := newFixture(t, inst)
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if err := f.c.Delete(context.Background(), f.get()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "i"}, &computev1alpha1.Instance{}); err == nil {
				t.Error("the instance outlived its finalizer")
			}
			switch policy {
			case computev1alpha1.DeletionPolicyDelete:
				if f.prov.called("Stop") != 1 || f.prov.called("Delete") != 1 || len(f.prov.machines) != 0 || f.prov.released {
					t.Errorf("calls %v, machines %v", f.prov.calls, f.prov.machines)
				}
			case computev1alpha1.DeletionPolicyOrphan:
				if f.prov.called("Stop") != 0 || f.prov.called("Delete") != 0 || len(f.prov.machines) != 1 || !f.prov.released {
					t.Errorf("calls %v, machines %v", f.prov.calls, f.prov.machines)
				}
			}
		})
	}
}

func TestPowerChangesChainInOnePass(t *testing.T) {
	f := newFixture(t, testInstance())
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	inst := f.get()
	inst.Spec.PowerState = computev1alpha1.PowerStateStopped
	inst.Generation = 2
	if err := f.c.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	inst = f.get()
	if inst.Status.Lifecycle.Status != computev1alpha1.LifecycleTerminated || condition(inst, computev1alpha1.ConditionReady) != "True/Stopped" {
		t.Fatalf("after stop: %+v", inst.Status)
	}
	// Suspending a stopped machine starts it first.
	inst.Spec.PowerState = computev1alpha1.PowerStateSuspended
	inst.Generation = 3
	if err := f.c.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	inst = f.get()
	if inst.Status.Lifecycle.Status != computev1alpha1.LifecycleSuspended || f.prov.called("Start") != 1 || f.prov.called("Suspend") != 1 {
		t.Fatalf("after suspend: %+v, calls %v", inst.Status, f.prov.calls)
	}
	if f.prov.called("Update") != 2 {
		t.Errorf("two spec changes after the first pass should push metadata twice, the create none: %v", f.prov.calls)
	}
}

// TestAPassTakesAtMostMaxActionsPerPass: against a machine that accepts every
// action and never moves, a pass stops after maxActionsPerPass actions, each
// observed, both when driving the power state and when deleting.
func TestAPassTakesAtMostMaxActionsPerPass(t *testing.T) {
	f := newFixture(t, testInstance())
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	f.prov.stuck = true
	inst := f.get()
	inst.Spec.PowerState = computev1alpha1.PowerStateStopped
	inst.Generation = 2
	if err := f.c.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	f.prov.calls = nil
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.prov.called("Stop") != maxActionsPerPass || f.prov.called("Observe") != maxActionsPerPass+1 {
		t.Errorf("driving the power state: calls %v, want %d Stops each followed by an Observe", f.prov.calls, maxActionsPerPass)
	}

	inst = f.get()
	inst.Spec.PowerState = computev1alpha1.PowerStateRunning
	if err := f.c.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	f.prov.calls = nil
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	if f.prov.called("Stop") != maxActionsPerPass || f.prov.called("Observe") != maxActionsPerPass+1 {
		t.Errorf("deleting: calls %v, want %d Stops each followed by an Observe", f.prov.calls, maxActionsPerPass)
	}
}

// TestBackoffRestartsAfterProgress: a failing pass that still moved the
// instance on starts the retry backoff afresh; one that moved nothing keeps
// backing off, so a cloud that is down is not hammered.
func TestBackoffRestartsAfterProgress(t *testing.T) {
	f := newFixture(t, testInstance())
	f.r.backoff = newJitteredBackoff(100*time.Millisecond, 2*time.Minute)
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "ns", Name: "i"}}
	if _, err := f.reconcile(); err != nil {
		t.Fatal(err)
	}
	inst := f.get()
	inst.Spec.PowerState = computev1alpha1.PowerStateStopped
	if err := f.c.Update(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	f.prov.fail["Stop"] = errors.New("the service is unavailable")
	for range 3 {
		f.r.backoff.When(req) // three failed passes so far
	}

	if _, err := f.reconcile(); err == nil {
		t.Fatal("the failing stop returned no error")
	}
	if n := f.r.backoff.NumRequeues(req); n != 3 {
		t.Errorf("a pass that moved nothing reset the backoff: %d requeues, want 3", n)
	}

	// The machine moved on its own (RUNNING to SUSPENDED) before the stop failed again.
	f.prov.machines[f.get().Status.Machine.CreateToken].Phase = provider.PhaseSuspended
	if _, err := f.reconcile(); err == nil {
		t.Fatal("the failing stop returned no error")
	}
	if got := f.get().Status.Lifecycle.Status; got != computev1alpha1.LifecycleSuspended {
		t.Fatalf("lifecycle %s, want SUSPENDED", got)
	}
	if n := f.r.backoff.NumRequeues(req); n != 0 {
		t.Errorf("a pass that moved the instance on kept the backoff: %d requeues, want 0", n)
	}
}

// TestFirstPassWrites: the first pass of an instance costs one status
// write, plus one patch for the finalizer only when kube-apiserver's
// admission policy did not stamp it at create.
func TestFirstPassWrites(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stamped     bool
		wantPatches int
	}{
		{"finalizer stamped at create", true, 0},
		{"no admission policy", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := testInstance()
			if tc.stamped {
				inst.Finalizers = []string{computev1alpha1.Finalizer}
			}
			f := newFixture(t, inst)
			if _, err := f.reconcile(); err != nil {
				t.Fatal(err)
			}
			got := f.get()
			if f.patches != tc.wantPatches || f.writes != 1 || f.prov.called("Create") != 1 ||
				!controllerutil.ContainsFinalizer(got, computev1alpha1.Finalizer) {
				t.Errorf("patches %d (want %d), status writes %d (want 1), calls %v, finalizers %v",
					f.patches, tc.wantPatches, f.writes, f.prov.calls, got.Finalizers)
			}
		})
	}
}
