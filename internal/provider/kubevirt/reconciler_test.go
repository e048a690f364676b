package kubevirt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// operatorOnKubeVirt runs the Instance reconciler of controllers/ on this
// provider, as --provider=kubevirt does (the manager's cached client, its API
// reader for create conflicts), with the double standing in for virt-api's
// pause subresource. It watches one namespace. tune may change the
// reconciler's options and wrap the provider's client; the returned func
// stops the operator (also done at the end of the test).
func operatorOnKubeVirt(t *testing.T, ns string) func() {
	return operatorWith(t, ns, nil)
}

func operatorWith(t *testing.T, ns string, tune func(*controllers.Options, *client.Client)) func() {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := controllers.Options{
		PollInterval:   20 * time.Millisecond,
		ResyncPeriod:   100 * time.Millisecond,
		CallTimeout:    5 * time.Second,
		RetryBaseDelay: 10 * time.Millisecond,
		RetryMaxDelay:  200 * time.Millisecond,
	}
	c := mgr.GetClient()
	if tune != nil {
		tune(&opts, &c)
	}
	p := New(c, Options{Pauser: double, APIReader: mgr.GetAPIReader()})
	r := &controllers.InstanceReconciler{Provider: p, Options: opts}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(t, mgr)
	return stop
}

// kstatusOf is kstatus' verdict on the instance, as Flux computes it.
func kstatusOf(t *testing.T, inst *computev1alpha1.Instance) status.Status {
	t.Helper()
	verdict, err := testenv.KStatus(inst)
	if err != nil {
		t.Fatal(err)
	}
	return verdict
}

func summary(inst *computev1alpha1.Instance) string {
	var conds []string
	for _, c := range inst.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	return fmt.Sprintf("%s %q gen=%d observed=%d %v", inst.Status.Lifecycle.Status, inst.Status.Lifecycle.StatusMessage,
		inst.Generation, inst.Status.ObservedGeneration, conds)
}

// waitInstance polls the stored instance until cond holds.
func waitInstance(t *testing.T, k types.NamespacedName, what string, cond func(*computev1alpha1.Instance) bool) *computev1alpha1.Instance {
	t.Helper()
	var inst *computev1alpha1.Instance
	eventually(t, what, func() (bool, string) {
		inst = &computev1alpha1.Instance{}
		if err := k8sClient.Get(context.Background(), k, inst); err != nil {
			return false, err.Error()
		}
		return cond(inst), summary(inst)
	})
	return inst
}

// settled is the instance at the lifecycle its powerState asks for, with the
// conditions and observedGeneration of a finished pass and kstatus Current.
func settled(t *testing.T, k types.NamespacedName, s computev1alpha1.LifecycleStatus, readyReason string) *computev1alpha1.Instance {
	t.Helper()
	return waitInstance(t, k, "settled in "+string(s), func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == s && i.Status.ObservedGeneration == i.Generation &&
			meta.IsStatusConditionTrue(i.Status.Conditions, computev1alpha1.ConditionReady) &&
			meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionReady).Reason == readyReason &&
			meta.IsStatusConditionFalse(i.Status.Conditions, computev1alpha1.ConditionReconciling) &&
			meta.IsStatusConditionFalse(i.Status.Conditions, computev1alpha1.ConditionStalled) &&
			kstatusOf(t, i) == status.CurrentStatus
	})
}

// inTransit checks an instance on its way: Ready False with reason,
// Reconciling True, kstatus InProgress.
func inTransit(t *testing.T, k types.NamespacedName, s computev1alpha1.LifecycleStatus, readyReason string) *computev1alpha1.Instance {
	t.Helper()
	return waitInstance(t, k, "in transit in "+string(s), func(i *computev1alpha1.Instance) bool {
		ready := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionReady)
		return i.Status.Lifecycle.Status == s && ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == readyReason &&
			meta.IsStatusConditionTrue(i.Status.Conditions, computev1alpha1.ConditionReconciling) &&
			kstatusOf(t, i) == status.InProgressStatus
	})
}

// applyInstance creates the seed's sample in a fresh namespace watched by a fresh operator.
func applyInstance(t *testing.T, mutate func(*computev1alpha1.Instance)) types.NamespacedName {
	t.Helper()
	return applyInstanceWith(t, mutate, nil)
}

// applyInstanceWith is applyInstance with the operator tuned as operatorWith does.
func applyInstanceWith(t *testing.T, mutate func(*computev1alpha1.Instance), tune func(*controllers.Options, *client.Client)) types.NamespacedName {
	t.Helper()
	inst := freshSample(t, mutate)
	operatorWith(t, inst.Namespace, tune)
	if err := k8sClient.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	return key(inst)
}

func changeInstance(t *testing.T, k types.NamespacedName, change func(*computev1alpha1.Instance)) {
	t.Helper()
	for range 10 {
		inst := &computev1alpha1.Instance{}
		if err := k8sClient.Get(context.Background(), k, inst); err != nil {
			t.Fatal(err)
		}
		change(inst)
		err := k8sClient.Update(context.Background(), inst)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("failed to update %s", k)
}

func TestReconcilerCreateToRunning(t *testing.T) {
	hold(t, double.HoldImports)
	hold(t, double.HoldBoot)
	k := applyInstance(t, nil)

	inst := inTransit(t, k, computev1alpha1.LifecycleProvisioning, computev1alpha1.ReasonProvisioning)
	waitInstance(t, k, "the import progress in statusMessage", func(i *computev1alpha1.Instance) bool {
		return strings.Contains(i.Status.Lifecycle.StatusMessage, "ImportInProgress 45.00%")
	})
	if inst.Status.Machine.Provider != Name || inst.Status.Machine.CreateToken == "" {
		t.Errorf("status.machine = %+v", inst.Status.Machine)
	}
	vm := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(context.Background(), k, vm); err != nil {
		t.Fatal(err)
	}
	if vm.Annotations[CreateTokenAnnotation] != inst.Status.Machine.CreateToken || !metav1.IsControlledBy(vm, inst) {
		t.Errorf("the VM is not the instance's: %+v", vm.ObjectMeta)
	}

	double.HoldImports(false)
	inTransit(t, k, computev1alpha1.LifecycleStaging, computev1alpha1.ReasonStaging)
	double.HoldBoot(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	// The address can follow RUNNING by a pass: the VM's change may reach the
	// operator before its VMI's (two informers), and the VMI's then wakes it.
	inst = waitInstance(t, k, "the pod network's address", func(i *computev1alpha1.Instance) bool {
		return len(i.Status.NICs) == 1 && strings.HasPrefix(i.Status.NICs[0].IPv4Address, "10.244.0.")
	})
	if inst.Status.Machine.ID != k.Namespace+"/"+k.Name || inst.Status.Hostname != k.Name {
		t.Errorf("status = %+v", inst.Status)
	}
	var seen []computev1alpha1.LifecycleStatus
	for _, h := range inst.Status.History {
		seen = append(seen, h.Status)
	}
	if got := fmt.Sprint(seen); got != "[PROVISIONING STAGING RUNNING]" {
		t.Errorf("history = %s", got)
	}

	// kubectl shows it as users see it.
	out, stderr, err := env.Kubectl(t, "", "get", "instances", "-n", k.Namespace, "--no-headers")
	if err != nil {
		t.Fatalf("kubectl get instances: %v: %s", err, stderr)
	}
	if f := strings.Fields(out); len(f) < 6 || f[1] != "RUNNING" || f[2] != "g1-xlarge" || !strings.HasPrefix(f[4], "10.244.0.") || f[5] != "True" {
		t.Errorf("kubectl get instances = %q", out)
	}
}

// TestReconcilerFollowsKubeVirtByWatch: with polling turned off (an hour),
// the instance still follows its VM through import, boot and a stop, woken by
// the watches on VMs, VMIs and DataVolumes alone.
func TestReconcilerFollowsKubeVirtByWatch(t *testing.T) {
	hold(t, double.HoldImports)
	hold(t, double.HoldBoot)
	k := applyInstanceWith(t, nil, func(o *controllers.Options, _ *client.Client) {
		o.PollInterval, o.ResyncPeriod = time.Hour, time.Hour
	})
	inTransit(t, k, computev1alpha1.LifecycleProvisioning, computev1alpha1.ReasonProvisioning)
	waitInstance(t, k, "the import progress (a DataVolume change) in statusMessage", func(i *computev1alpha1.Instance) bool {
		return strings.Contains(i.Status.Lifecycle.StatusMessage, "ImportInProgress 45.00%")
	})
	double.HoldImports(false)
	inTransit(t, k, computev1alpha1.LifecycleStaging, computev1alpha1.ReasonStaging)
	double.HoldBoot(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	settled(t, k, computev1alpha1.LifecycleTerminated, computev1alpha1.ReasonStopped)
}

func TestReconcilerStopAndStart(t *testing.T) {
	k := applyInstance(t, nil)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)

	hold(t, double.HoldShutdown)
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	inTransit(t, k, computev1alpha1.LifecycleStopping, computev1alpha1.ReasonStopping)
	double.HoldShutdown(false)
	settled(t, k, computev1alpha1.LifecycleTerminated, computev1alpha1.ReasonStopped)
	// The instance is TERMINATED once its VMI is gone; the VM's printable
	// status follows at KubeVirt's next sync of the VM, so it is waited for.
	eventually(t, "the VM halted and Stopped", func() (bool, string) {
		vm := &kubevirtv1.VirtualMachine{}
		if err := k8sClient.Get(context.Background(), k, vm); err != nil {
			return false, err.Error()
		}
		state := fmt.Sprintf("runStrategy %s, printableStatus %s", ptr.Deref(vm.Spec.RunStrategy, ""), vm.Status.PrintableStatus)
		return ptr.Deref(vm.Spec.RunStrategy, "") == kubevirtv1.RunStrategyHalted && vm.Status.PrintableStatus == kubevirtv1.VirtualMachineStatusStopped, state
	})

	hold(t, double.HoldBoot)
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	inTransit(t, k, computev1alpha1.LifecycleStaging, computev1alpha1.ReasonStaging)
	double.HoldBoot(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerSuspendAndResume(t *testing.T) {
	k := applyInstance(t, nil)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)

	hold(t, double.HoldPause)
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateSuspended })
	inTransit(t, k, computev1alpha1.LifecycleSuspending, computev1alpha1.ReasonSuspending)
	double.HoldPause(false)
	settled(t, k, computev1alpha1.LifecycleSuspended, computev1alpha1.ReasonSuspended)

	double.HoldPause(true)
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	inTransit(t, k, computev1alpha1.LifecycleStaging, computev1alpha1.ReasonStaging)
	double.HoldPause(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerRepair(t *testing.T) {
	k := applyInstance(t, nil)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	hold(t, double.HoldRepair)
	if err := double.FailHost(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	inst := inTransit(t, k, computev1alpha1.LifecycleRepairing, computev1alpha1.ReasonRepairing)
	if !strings.Contains(inst.Status.Lifecycle.StatusMessage, "NodeUnresponsive") {
		t.Errorf("statusMessage = %q", inst.Status.Lifecycle.StatusMessage)
	}
	double.HoldRepair(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerWaitsForCapacity(t *testing.T) {
	const why = "0/3 nodes are available: 3 Insufficient nvidia.com/GH100_H100_SXM5_80GB."
	inst := freshSample(t, nil)
	k := key(inst)
	double.SetUnschedulable(k, why)
	t.Cleanup(func() { double.SetUnschedulable(k, "") })
	operatorOnKubeVirt(t, inst.Namespace)
	if err := k8sClient.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	waitInstance(t, k, "waiting for capacity", func(i *computev1alpha1.Instance) bool {
		rec := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionReconciling)
		return i.Status.Lifecycle.Status == computev1alpha1.LifecycleProvisioning && rec != nil &&
			rec.Status == metav1.ConditionTrue && rec.Reason == computev1alpha1.ReasonWaitingForCapacity &&
			strings.Contains(i.Status.Lifecycle.StatusMessage, why) && kstatusOf(t, i) == status.InProgressStatus
	})
	double.SetUnschedulable(k, "")
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerStallsOnRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*computev1alpha1.Instance)
		fail   bool // fail the boot disk's import
		reason string
	}{
		{name: "unknown image", mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Disks[0].Source = "/v1/regions/us-texas-1/compute/images/windows-95"
		}, reason: ReasonUnknownImage},
		{name: "unknown instance type", mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/z9-nothing"
		}, reason: ReasonUnknownInstanceType},
		{name: "failed import", fail: true, reason: ReasonImageImportFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := sampleInstance(t)
			ns := newNamespace(t)
			if tc.fail {
				double.FailImport(types.NamespacedName{Namespace: ns, Name: inst.Name + "-disk-0"}, "Unable to connect to http data source: 404")
			}
			inst.UID, inst.Status, inst.Namespace = "", computev1alpha1.InstanceStatus{}, ns
			if tc.mutate != nil {
				tc.mutate(inst)
			}
			operatorOnKubeVirt(t, ns)
			if err := k8sClient.Create(context.Background(), inst); err != nil {
				t.Fatal(err)
			}
			got := waitInstance(t, key(inst), "Stalled", func(i *computev1alpha1.Instance) bool {
				stalled := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionStalled)
				return stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == computev1alpha1.ReasonProviderRejected &&
					strings.Contains(stalled.Message, tc.reason) && i.Status.ObservedGeneration == i.Generation &&
					kstatusOf(t, i) == status.FailedStatus
			})
			if got.Status.Lifecycle.Status != computev1alpha1.LifecycleProvisioning || !strings.Contains(got.Status.Lifecycle.StatusMessage, "refused") {
				t.Errorf("lifecycle = %+v", got.Status.Lifecycle)
			}
		})
	}
}

func TestReconcilerDeleteWithEachPolicy(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []computev1alpha1.DeletionPolicy{computev1alpha1.DeletionPolicyDelete, computev1alpha1.DeletionPolicyOrphan} {
		t.Run(string(policy), func(t *testing.T) {
			k := applyInstance(t, func(i *computev1alpha1.Instance) { i.Spec.DeletionPolicy = policy })
			settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
			inst := &computev1alpha1.Instance{}
			if err := k8sClient.Get(ctx, k, inst); err != nil {
				t.Fatal(err)
			}
			if err := k8sClient.Delete(ctx, inst); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the instance to be gone", func() (bool, string) {
				err := k8sClient.Get(ctx, k, &computev1alpha1.Instance{})
				return apierrors.IsNotFound(err), fmt.Sprint(err)
			})
			vm := &kubevirtv1.VirtualMachine{}
			err := k8sClient.Get(ctx, k, vm)
			switch policy {
			case computev1alpha1.DeletionPolicyDelete:
				if !apierrors.IsNotFound(err) {
					t.Errorf("the VM after deleting the instance: err = %v, want NotFound", err)
				}
			case computev1alpha1.DeletionPolicyOrphan:
				if err != nil {
					t.Fatalf("the orphaned VM: %v", err)
				}
				if len(vm.OwnerReferences) != 0 || vm.DeletionTimestamp != nil || *vm.Spec.RunStrategy != kubevirtv1.RunStrategyAlways ||
					vm.Status.PrintableStatus != kubevirtv1.VirtualMachineStatusRunning {
					t.Errorf("the orphaned VM = owners %v, deleting %v, runStrategy %s, status %s",
						vm.OwnerReferences, vm.DeletionTimestamp, *vm.Spec.RunStrategy, vm.Status.PrintableStatus)
				}
			}
		})
	}
}

func TestReconcilerReplacesAVMDeletedOutOfBand(t *testing.T) {
	ctx := context.Background()
	k := applyInstance(t, nil)
	before := settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	vm := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(ctx, k, vm); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(ctx, vm); err != nil {
		t.Fatal(err)
	}
	after := waitInstance(t, k, "a replacement machine", func(i *computev1alpha1.Instance) bool {
		return i.Status.Machine.CreateToken != before.Status.Machine.CreateToken &&
			i.Status.Lifecycle.Status == computev1alpha1.LifecycleRunning
	})
	replacement := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(ctx, k, replacement); err != nil {
		t.Fatal(err)
	}
	if replacement.UID == vm.UID || replacement.Annotations[CreateTokenAnnotation] != after.Status.Machine.CreateToken {
		t.Errorf("replacement VM %s with token %s; instance token %s", replacement.UID, replacement.Annotations[CreateTokenAnnotation], after.Status.Machine.CreateToken)
	}
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerPushesMetadata(t *testing.T) {
	k := applyInstance(t, nil)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	changeInstance(t, k, func(i *computev1alpha1.Instance) {
		i.Spec.InstanceMetadata = append(i.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "role", Value: "trainer"})
	})
	inst := settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	waitInstance(t, k, "the restart note", func(i *computev1alpha1.Instance) bool {
		return strings.Contains(i.Status.Lifecycle.StatusMessage, "instanceMetadata changes apply at the next restart")
	})
	if ud := string(getSecret(t, inst).Data[UserDataKey]); !strings.Contains(ud, MetadataDir+"/role") {
		t.Errorf("the cloud-init Secret lacks the new key (generation %d):\n%s", inst.Generation, ud)
	}
}

func TestReconcilerPausedAnnotationStopsProviderCalls(t *testing.T) {
	ctx := context.Background()
	k := applyInstance(t, nil)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	changeInstance(t, k, func(i *computev1alpha1.Instance) {
		if i.Annotations == nil {
			i.Annotations = map[string]string{}
		}
		i.Annotations[computev1alpha1.PausedAnnotation] = "true"
	})
	waitInstance(t, k, "Paused", func(i *computev1alpha1.Instance) bool {
		return meta.IsStatusConditionTrue(i.Status.Conditions, computev1alpha1.ConditionPaused)
	})
	vm := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(ctx, k, vm); err != nil {
		t.Fatal(err)
	}
	changeInstance(t, k, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	// A pass over the new spec happened while paused (the Paused condition
	// carries its generation), yet observedGeneration stays behind and the
	// VM is untouched.
	waitInstance(t, k, "a paused pass over the new generation", func(i *computev1alpha1.Instance) bool {
		c := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionPaused)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == i.Generation &&
			i.Status.ObservedGeneration < i.Generation && kstatusOf(t, i) == status.InProgressStatus
	})
	now := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(ctx, k, now); err != nil {
		t.Fatal(err)
	}
	if now.Generation != vm.Generation || *now.Spec.RunStrategy != kubevirtv1.RunStrategyAlways {
		t.Fatalf("the VM changed while the instance was paused: generation %d -> %d, runStrategy %s", vm.Generation, now.Generation, *now.Spec.RunStrategy)
	}
	changeInstance(t, k, func(i *computev1alpha1.Instance) { delete(i.Annotations, computev1alpha1.PausedAnnotation) })
	settled(t, k, computev1alpha1.LifecycleTerminated, computev1alpha1.ReasonStopped)
}

// flakyClient fails the first creates of VirtualMachines as an overloaded
// API server would.
type flakyClient struct {
	client.Client
	failures atomic.Int32
}

func (f *flakyClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*kubevirtv1.VirtualMachine); ok && f.failures.Add(-1) >= 0 {
		return apierrors.NewServiceUnavailable("the server is currently unable to handle the request")
	}
	return f.Client.Create(ctx, obj, opts...)
}

func TestReconcilerRetriesTransientErrors(t *testing.T) {
	inst := freshSample(t, nil)
	var flaky *flakyClient
	operatorWith(t, inst.Namespace, func(_ *controllers.Options, c *client.Client) {
		flaky = &flakyClient{Client: *c}
		flaky.failures.Store(3)
		*c = flaky
	})
	if err := k8sClient.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	k := key(inst)
	waitInstance(t, k, "retrying after an error", func(i *computev1alpha1.Instance) bool {
		rec := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionReconciling)
		return rec != nil && rec.Reason == computev1alpha1.ReasonRetryingAfterError &&
			meta.IsStatusConditionFalse(i.Status.Conditions, computev1alpha1.ConditionStalled) &&
			strings.Contains(i.Status.Lifecycle.StatusMessage, "unable to handle the request")
	})
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	if flaky.failures.Load() >= 0 {
		t.Errorf("only %d of 3 injected failures were hit", 3-flaky.failures.Load())
	}
	vms := &kubevirtv1.VirtualMachineList{}
	if err := k8sClient.List(context.Background(), vms, client.InNamespace(k.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) != 1 {
		t.Errorf("%d VMs after retried creates, want 1", len(vms.Items))
	}
}

func TestReconcilerProvisioningDeadline(t *testing.T) {
	hold(t, double.HoldImports)
	k := applyInstanceWith(t, nil, func(o *controllers.Options, _ *client.Client) { o.ProvisioningDeadline = 300 * time.Millisecond })
	got := waitInstance(t, k, "the deadline", func(i *computev1alpha1.Instance) bool {
		stalled := meta.FindStatusCondition(i.Status.Conditions, computev1alpha1.ConditionStalled)
		return stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == computev1alpha1.ReasonProvisioningDeadlineExceeded &&
			kstatusOf(t, i) == status.FailedStatus
	})
	if got.Status.Lifecycle.Status != computev1alpha1.LifecycleProvisioning {
		t.Errorf("lifecycle at the deadline = %+v", got.Status.Lifecycle)
	}
	// A stalled instance is still watched: its message follows the import
	// (how far the double got by the deadline depends on the machine's load).
	waitInstance(t, k, "the import progress while stalled", func(i *computev1alpha1.Instance) bool {
		return meta.IsStatusConditionTrue(i.Status.Conditions, computev1alpha1.ConditionStalled) &&
			strings.Contains(i.Status.Lifecycle.StatusMessage, "ImportInProgress")
	})
	double.HoldImports(false)
	settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
}

func TestReconcilerRestartMidProvisioningMakesNoSecondVM(t *testing.T) {
	ctx := context.Background()
	hold(t, double.HoldImports)
	inst := freshSample(t, nil)
	stop := operatorOnKubeVirt(t, inst.Namespace)
	if err := k8sClient.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	k := key(inst)
	before := inTransit(t, k, computev1alpha1.LifecycleProvisioning, computev1alpha1.ReasonProvisioning)
	vm := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(ctx, k, vm); err != nil {
		t.Fatal(err)
	}
	stop()
	operatorOnKubeVirt(t, inst.Namespace)
	double.HoldImports(false)
	after := settled(t, k, computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	vms := &kubevirtv1.VirtualMachineList{}
	if err := k8sClient.List(ctx, vms, client.InNamespace(k.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) != 1 || vms.Items[0].UID != vm.UID || after.Status.Machine.CreateToken != before.Status.Machine.CreateToken {
		t.Errorf("after the restart: %d VMs (first %s), token %s -> %s", len(vms.Items), vm.UID, before.Status.Machine.CreateToken, after.Status.Machine.CreateToken)
	}
}

// A crash after the provider's Create and before the machine's ID reached
// status: the next operator finds the VM by the recorded token.
func TestReconcilerCrashAfterCreateMakesNoSecondVM(t *testing.T) {
	ctx := context.Background()
	inst := newInstance(t, nil) // the token is recorded, as the reconciler does first
	if _, err := newProvider().Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	vm := getVM(t, inst)
	operatorOnKubeVirt(t, inst.Namespace)
	after := settled(t, key(inst), computev1alpha1.LifecycleRunning, computev1alpha1.ReasonRunning)
	vms := &kubevirtv1.VirtualMachineList{}
	if err := k8sClient.List(ctx, vms, client.InNamespace(inst.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) != 1 || vms.Items[0].UID != vm.UID || after.Status.Machine.CreateToken != inst.Status.Machine.CreateToken {
		t.Errorf("%d VMs; token %s, recorded %s", len(vms.Items), after.Status.Machine.CreateToken, inst.Status.Machine.CreateToken)
	}
}
