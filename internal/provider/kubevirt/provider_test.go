package kubevirt

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

func newProvider() *Provider {
	return New(k8sClient, Options{Pauser: double})
}

// hold sets a knob of the double for the rest of the test.
func hold(t *testing.T, set func(bool)) {
	set(true)
	t.Cleanup(func() { set(false) })
}

func getSecret(t *testing.T, inst *computev1alpha1.Instance) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: inst.Namespace, Name: CloudInitSecretName(inst)}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func ownerUIDs(refs []metav1.OwnerReference) string {
	var uids []string
	for _, r := range refs {
		uids = append(uids, string(r.UID))
	}
	return strings.Join(uids, ",")
}

func getVM(t *testing.T, inst *computev1alpha1.Instance) *kubevirtv1.VirtualMachine {
	t.Helper()
	vm := &kubevirtv1.VirtualMachine{}
	if err := k8sClient.Get(context.Background(), key(inst), vm); err != nil {
		t.Fatal(err)
	}
	return vm
}

// running creates the sample's machine and waits until it runs.
func running(t *testing.T, mutate func(*computev1alpha1.Instance)) (*Provider, *computev1alpha1.Instance) {
	t.Helper()
	p := newProvider()
	inst := newInstance(t, mutate)
	if _, err := p.Create(context.Background(), inst); err != nil {
		t.Fatalf("Create: %v", err)
	}
	observeUntil(t, p, inst, provider.PhaseRunning)
	return p, inst
}

func TestCreateToRunning(t *testing.T) {
	ctx := context.Background()
	p := newProvider()
	inst := newInstance(t, nil)

	if _, err := p.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Observe before Create: err = %v, want ErrNotFound", err)
	}

	hold(t, double.HoldImports)
	hold(t, double.HoldBoot)
	m, err := p.Create(ctx, inst)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if m.Phase != provider.PhaseProvisioning || m.ID != inst.Namespace+"/"+inst.Name {
		t.Errorf("Create returned %+v", m)
	}
	first := getVM(t, inst)

	// A retried Create (or one after a crash) finds the VM of the first.
	if _, err := p.Create(ctx, inst); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	vms := &kubevirtv1.VirtualMachineList{}
	if err := k8sClient.List(ctx, vms, client.InNamespace(inst.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(vms.Items) != 1 || vms.Items[0].UID != first.UID {
		t.Fatalf("after two Creates: %d VMs, want the first one only", len(vms.Items))
	}

	// The stored VM keeps what the provider wrote: the CRD's schema prunes
	// any field under a name KubeVirt does not have.
	if *first.Spec.RunStrategy != kubevirtv1.RunStrategyAlways ||
		*first.Spec.DataVolumeTemplates[0].Spec.Source.Registry.URL != "docker://quay.io/containerdisks/ubuntu:24.04" ||
		first.Spec.Template.Spec.Domain.Devices.GPUs[0].DeviceName != "nvidia.com/GH100_H100_SXM5_80GB" ||
		first.Spec.Template.Spec.Domain.Devices.Disks[0].Disk.Bus != kubevirtv1.DiskBusSCSI ||
		*first.Spec.Template.Spec.Domain.Devices.Disks[0].BootOrder != 1 ||
		first.Spec.Template.Spec.Domain.CPU.Cores != 8 ||
		first.Spec.Template.Spec.Hostname != inst.Name ||
		first.Spec.Template.Spec.Volumes[1].CloudInitNoCloud.UserDataSecretRef.Name != CloudInitSecretName(inst) ||
		first.Spec.Template.ObjectMeta.Annotations[MetadataHashAnnotation] == "" ||
		!metav1.IsControlledBy(first, inst) {
		t.Errorf("the stored VM lost fields: %+v", first.Spec)
	}

	// The cloud-init Secret, written before the VM, owned by both.
	secret := getSecret(t, inst)
	if !strings.Contains(string(secret.Data[UserDataKey]), "ssh_authorized_keys") {
		t.Errorf("the Secret's userdata lacks the ssh keys:\n%s", secret.Data[UserDataKey])
	}
	if owners := ownerUIDs(secret.OwnerReferences); owners != string(inst.UID)+","+string(first.UID) {
		t.Errorf("the Secret's owners = %s, want the Instance and the VM", owners)
	}

	m = observeUntil(t, p, inst, provider.PhaseProvisioning)
	eventually(t, "the import progress in the message", func() (bool, string) {
		m, err = p.Observe(ctx, inst)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(m.Message, inst.Name+"-disk-0 ImportInProgress 45.00%"), m.Message
	})
	if getVM(t, inst).Status.PrintableStatus != kubevirtv1.VirtualMachineStatusProvisioning {
		t.Errorf("printableStatus = %s, want Provisioning", getVM(t, inst).Status.PrintableStatus)
	}
	dv := &cdiv1beta1.DataVolume{}
	if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name + "-disk-0"}, dv); err != nil {
		t.Fatalf("the boot disk's DataVolume: %v", err)
	}
	if want := resource.MustParse("100Gi"); dv.Spec.Storage.Resources.Requests.Storage().Cmp(want) != 0 {
		t.Errorf("DataVolume size = %v", dv.Spec.Storage.Resources.Requests.Storage())
	}

	double.HoldImports(false)
	m = observeUntil(t, p, inst, provider.PhaseStaging)
	if m.Message != "the guest is booting" {
		t.Errorf("Staging message = %q", m.Message)
	}
	if getVM(t, inst).Status.PrintableStatus != kubevirtv1.VirtualMachineStatusStarting {
		t.Errorf("printableStatus = %s, want Starting", getVM(t, inst).Status.PrintableStatus)
	}

	double.HoldBoot(false)
	m = observeUntil(t, p, inst, provider.PhaseRunning)
	if !strings.Contains(m.Message, "running on node") || m.Hostname != inst.Name || m.WaitingForCapacity {
		t.Errorf("Running machine = %+v", m)
	}
	if len(m.NICs) != 1 {
		t.Fatalf("NICs = %+v, want one", m.NICs)
	}
	nic := m.NICs[0]
	if nic.Network != inst.Spec.NICs[0].Network || nic.Subnet != inst.Spec.NICs[0].Subnet ||
		!strings.HasPrefix(nic.IPv4Address, "10.244.0.") || !strings.HasPrefix(nic.IPv6Address, "fd10:244::") {
		t.Errorf("NIC = %+v: want the spec's network and subnet, the pod IPv4 and a global IPv6 (not fe80::)", nic)
	}

	// What a user sees with kubectl get vm.
	out, stderr, err := env.Kubectl(t, "", "get", "vm", "-n", inst.Namespace, inst.Name, "--no-headers")
	if err != nil {
		t.Fatalf("kubectl get vm: %v: %s", err, stderr)
	}
	if f := strings.Fields(out); len(f) < 4 || f[2] != "Running" || f[3] != "True" {
		t.Errorf("kubectl get vm = %q, want STATUS Running and READY True", out)
	}
}

func TestStopAndStart(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)

	hold(t, double.HoldShutdown)
	if err := p.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if rs := *getVM(t, inst).Spec.RunStrategy; rs != kubevirtv1.RunStrategyHalted {
		t.Errorf("runStrategy = %s, want Halted", rs)
	}
	observeUntil(t, p, inst, provider.PhaseStopping)
	eventually(t, "printableStatus Stopping", func() (bool, string) {
		s := getVM(t, inst).Status.PrintableStatus
		return s == kubevirtv1.VirtualMachineStatusStopping, string(s)
	})
	double.HoldShutdown(false)
	observeUntil(t, p, inst, provider.PhaseStopped)
	eventually(t, "printableStatus Stopped", func() (bool, string) {
		s := getVM(t, inst).Status.PrintableStatus
		return s == kubevirtv1.VirtualMachineStatusStopped, string(s)
	})
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := k8sClient.Get(ctx, key(inst), vmi); !apierrors.IsNotFound(err) {
		t.Errorf("the VMI of a stopped VM: err = %v, want NotFound", err)
	}

	// Stop again writes nothing.
	before := getVM(t, inst).ResourceVersion
	if err := p.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if after := getVM(t, inst).ResourceVersion; after != before {
		t.Errorf("a repeated Stop wrote the VM (%s -> %s)", before, after)
	}

	hold(t, double.HoldBoot)
	if err := p.SetPower(ctx, inst, provider.PowerStart); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if rs := *getVM(t, inst).Spec.RunStrategy; rs != kubevirtv1.RunStrategyAlways {
		t.Errorf("runStrategy = %s, want Always", rs)
	}
	observeUntil(t, p, inst, provider.PhaseStaging)
	double.HoldBoot(false)
	observeUntil(t, p, inst, provider.PhaseRunning)
}

func TestCreateStopped(t *testing.T) {
	p := newProvider()
	inst := newInstance(t, func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	if _, err := p.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	if rs := *getVM(t, inst).Spec.RunStrategy; rs != kubevirtv1.RunStrategyHalted {
		t.Errorf("runStrategy = %s, want Halted", rs)
	}
	observeUntil(t, p, inst, provider.PhaseStopped)
}

func TestSuspendAndResume(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)
	pauses0, unpauses0 := double.PauseCalls()

	hold(t, double.HoldPause)
	if err := p.SetPower(ctx, inst, provider.PowerSuspend); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	m := observeUntil(t, p, inst, provider.PhaseSuspending)
	if m.Message != "pausing the guest" {
		t.Errorf("Suspending message = %q", m.Message)
	}
	double.HoldPause(false)
	observeUntil(t, p, inst, provider.PhaseSuspended)
	eventually(t, "printableStatus Paused", func() (bool, string) {
		s := getVM(t, inst).Status.PrintableStatus
		return s == kubevirtv1.VirtualMachineStatusPaused, string(s)
	})
	// Suspend again: nothing more is asked of KubeVirt.
	if err := p.SetPower(ctx, inst, provider.PowerSuspend); err != nil {
		t.Fatalf("second Suspend: %v", err)
	}
	if pauses, _ := double.PauseCalls(); pauses != pauses0+1 {
		t.Errorf("pause calls = %d, want %d", pauses-pauses0, 1)
	}

	double.HoldPause(true)
	if err := p.SetPower(ctx, inst, provider.PowerResume); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	m = observeUntil(t, p, inst, provider.PhaseStaging)
	if m.Message != "resuming the paused guest" {
		t.Errorf("resuming message = %q", m.Message)
	}
	double.HoldPause(false)
	observeUntil(t, p, inst, provider.PhaseRunning)
	if err := p.SetPower(ctx, inst, provider.PowerResume); err != nil {
		t.Fatalf("second Resume: %v", err)
	}
	if _, unpauses := double.PauseCalls(); unpauses != unpauses0+1 {
		t.Errorf("unpause calls = %d, want 1", unpauses-unpauses0)
	}
	if _, ok := getVM(t, inst).Annotations[PowerRequestAnnotation]; ok {
		t.Error("the power request outlived the resume")
	}

	// A suspended machine can be stopped.
	if err := p.SetPower(ctx, inst, provider.PowerSuspend); err != nil {
		t.Fatal(err)
	}
	observeUntil(t, p, inst, provider.PhaseSuspended)
	if err := p.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatal(err)
	}
	observeUntil(t, p, inst, provider.PhaseStopped)

	// Suspending a stopped machine is refused, and retried by the caller.
	if err := p.SetPower(ctx, inst, provider.PowerSuspend); err == nil {
		t.Error("Suspend of a stopped machine succeeded")
	} else if _, permanent := provider.AsPermanent(err); permanent {
		t.Errorf("Suspend of a stopped machine is permanent: %v", err)
	}
}

func TestWaitingForCapacity(t *testing.T) {
	p := newProvider()
	inst := newInstance(t, nil)
	const why = "0/3 nodes are available: 3 Insufficient nvidia.com/GH100_H100_SXM5_80GB."
	double.SetUnschedulable(key(inst), why)
	t.Cleanup(func() { double.SetUnschedulable(key(inst), "") })
	if _, err := p.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	var m *provider.Machine
	eventually(t, "waiting for capacity", func() (bool, string) {
		var err error
		m, err = p.Observe(context.Background(), inst)
		if err != nil {
			return false, err.Error()
		}
		return m.WaitingForCapacity, string(m.Phase) + ": " + m.Message
	})
	if m.Phase != provider.PhaseProvisioning || !strings.Contains(m.Message, why) {
		t.Errorf("machine = %+v, want Provisioning with the scheduler's message", m)
	}
	if s := getVM(t, inst).Status.PrintableStatus; s != kubevirtv1.VirtualMachineStatusUnschedulable {
		t.Errorf("printableStatus = %s, want ErrorUnschedulable", s)
	}
	double.SetUnschedulable(key(inst), "")
	m = observeUntil(t, p, inst, provider.PhaseRunning)
	if m.WaitingForCapacity {
		t.Error("still waiting for capacity while running")
	}
}

func TestImportFailureIsPermanent(t *testing.T) {
	p := newProvider()
	inst := newInstance(t, nil)
	const why = "Unable to connect to http data source: expected status code 200, got 404"
	double.FailImport(types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name + "-disk-0"}, why)
	if _, err := p.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a permanent import failure", func() (bool, string) {
		m, err := p.Observe(context.Background(), inst)
		if perm, ok := provider.AsPermanent(err); ok {
			return perm.Reason == ReasonImageImportFailed && strings.Contains(perm.Message, why), perm.Message
		}
		if err != nil {
			return false, err.Error()
		}
		return false, string(m.Phase) + ": " + m.Message
	})
	if s := getVM(t, inst).Status.PrintableStatus; s != kubevirtv1.VirtualMachineStatusDataVolumeError {
		t.Errorf("printableStatus = %s, want DataVolumeError", s)
	}
}

func TestHostFailureIsRepaired(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := k8sClient.Get(ctx, key(inst), vmi); err != nil {
		t.Fatal(err)
	}
	hold(t, double.HoldRepair)
	if err := double.FailHost(ctx, key(inst)); err != nil {
		t.Fatal(err)
	}
	m := observeUntil(t, p, inst, provider.PhaseRepairing)
	if !strings.Contains(m.Message, "NodeUnresponsive") {
		t.Errorf("Repairing message = %q", m.Message)
	}
	double.HoldRepair(false)
	observeUntil(t, p, inst, provider.PhaseRunning)
	again := &kubevirtv1.VirtualMachineInstance{}
	if err := k8sClient.Get(ctx, key(inst), again); err != nil {
		t.Fatal(err)
	}
	if again.UID == vmi.UID {
		t.Error("the failed VMI was not replaced")
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)
	hold(t, double.HoldShutdown)
	if err := p.Delete(ctx, inst); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	observeUntil(t, p, inst, provider.PhaseDeleting)
	eventually(t, "printableStatus Terminating", func() (bool, string) {
		s := getVM(t, inst).Status.PrintableStatus
		return s == kubevirtv1.VirtualMachineStatusTerminating, string(s)
	})
	if err := p.Delete(ctx, inst); err != nil {
		t.Fatalf("Delete while deleting: %v", err)
	}
	double.HoldShutdown(false)
	goneUntil(t, p, inst)
	eventually(t, "the DataVolume to be collected", func() (bool, string) {
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: inst.Namespace, Name: inst.Name + "-disk-0"}, &cdiv1beta1.DataVolume{})
		return apierrors.IsNotFound(err), ""
	})
	if err := p.Delete(ctx, inst); err != nil {
		t.Fatalf("Delete of a gone machine: %v", err)
	}
}

func TestReleaseForOrphan(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, func(i *computev1alpha1.Instance) { i.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan })
	if err := p.Release(ctx, inst); err != nil {
		t.Fatalf("Release: %v", err)
	}
	vm := getVM(t, inst)
	if len(vm.OwnerReferences) != 0 {
		t.Errorf("ownerReferences after Release = %+v, want none (garbage collection would delete the VM)", vm.OwnerReferences)
	}
	if owners := ownerUIDs(getSecret(t, inst).OwnerReferences); owners != string(vm.UID) {
		t.Errorf("the Secret's owners after Release = %s, want the VM alone", owners)
	}
	if err := p.Release(ctx, inst); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	// The VM is still the instance's by its create token, and keeps running.
	if err := k8sClient.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	observeUntil(t, p, inst, provider.PhaseRunning)
}

func TestDeletedOutOfBand(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)
	if err := k8sClient.Delete(ctx, getVM(t, inst)); err != nil {
		t.Fatal(err)
	}
	goneUntil(t, p, inst)
	for _, f := range []func() error{
		func() error { return p.SetPower(ctx, inst, provider.PowerStop) },
		func() error { return p.Update(ctx, inst) },
	} {
		if err := f(); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("a call on the lost machine: err = %v, want ErrNotFound", err)
		}
	}

	// The reconciler replaces it under a new token.
	inst.Status.Machine.CreateToken = "replacement-of-" + inst.Status.Machine.CreateToken
	if _, err := p.Create(ctx, inst); err != nil {
		t.Fatalf("Create of the replacement: %v", err)
	}
	if got := getVM(t, inst).Annotations[CreateTokenAnnotation]; got != inst.Status.Machine.CreateToken {
		t.Errorf("replacement token = %s", got)
	}
	observeUntil(t, p, inst, provider.PhaseRunning)
}

func TestNameTakenByAnotherVM(t *testing.T) {
	ctx := context.Background()
	p := newProvider()
	inst := newInstance(t, nil)
	other := inst.DeepCopy()
	other.UID = "another"
	other.Status.Machine.CreateToken = "another-token"
	vm, err := BuildVirtualMachine(other, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	vm.OwnerReferences = nil
	if err := k8sClient.Create(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Observe: err = %v, want ErrNotFound", err)
	}
	_, err = p.Create(ctx, inst)
	if perm, ok := provider.AsPermanent(err); !ok || perm.Reason != ReasonMachineNameTaken {
		t.Fatalf("Create: err = %v, want %s", err, ReasonMachineNameTaken)
	}
	if err := p.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if getVM(t, inst).DeletionTimestamp != nil {
		t.Error("Delete deleted a VM that is not the instance's")
	}
}

func TestInstancetypeReference(t *testing.T) {
	ctx := context.Background()
	p := newProvider()
	inst := newInstance(t, func(i *computev1alpha1.Instance) {
		i.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/u1.test-" + strings.ToLower(i.Namespace)
	})
	name := computev1alpha1.TypeName(inst.Spec.Type)
	_, err := p.Create(ctx, inst)
	if perm, ok := provider.AsPermanent(err); !ok || perm.Reason != ReasonUnknownInstanceType || !strings.Contains(perm.Message, name) {
		t.Fatalf("Create without the instancetype: err = %v, want %s naming %s", err, ReasonUnknownInstanceType, name)
	}
	it := &instancetypev1beta1.VirtualMachineClusterInstancetype{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU:    instancetypev1beta1.CPUInstancetype{Guest: 4},
			Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("16Gi")},
		},
	}
	if err := k8sClient.Create(ctx, it); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), it) })
	if _, err := p.Create(ctx, inst); err != nil {
		t.Fatalf("Create with the instancetype: %v", err)
	}
	vm := getVM(t, inst)
	if vm.Spec.Instancetype == nil || vm.Spec.Instancetype.Name != name || vm.Spec.Instancetype.Kind != KindClusterInstancetype {
		t.Errorf("instancetype = %+v", vm.Spec.Instancetype)
	}
}

func TestUpdateMetadataAppliesAtRestart(t *testing.T) {
	ctx := context.Background()
	p, inst := running(t, nil)
	before := getVM(t, inst).ResourceVersion
	if err := p.Update(ctx, inst); err != nil {
		t.Fatalf("Update without a change: %v", err)
	}
	if after := getVM(t, inst).ResourceVersion; after != before {
		t.Errorf("an Update without a change wrote the VM (%s -> %s)", before, after)
	}

	inst.Spec.InstanceMetadata = append(inst.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "role", Value: "trainer"})
	if err := p.Update(ctx, inst); err != nil {
		t.Fatalf("Update: %v", err)
	}
	vm := getVM(t, inst)
	if ud := string(getSecret(t, inst).Data[UserDataKey]); !strings.Contains(ud, MetadataDir+"/role") || !strings.Contains(ud, "trainer") {
		t.Errorf("the Secret's userdata lacks the new key:\n%s", ud)
	}
	if owners := ownerUIDs(getSecret(t, inst).OwnerReferences); owners != string(inst.UID)+","+string(vm.UID) {
		t.Errorf("the Secret's owners after Update = %s", owners)
	}
	m, err := p.Observe(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if m.Phase != provider.PhaseRunning || !strings.Contains(m.Message, "instanceMetadata changes apply at the next restart") {
		t.Errorf("machine after Update = %+v", m)
	}
	rv := vm.ResourceVersion
	if err := p.Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if getVM(t, inst).ResourceVersion != rv {
		t.Error("a repeated Update wrote the VM")
	}

	// A restart boots a VMI from the new template.
	if err := p.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatal(err)
	}
	observeUntil(t, p, inst, provider.PhaseStopped)
	if err := p.SetPower(ctx, inst, provider.PowerStart); err != nil {
		t.Fatal(err)
	}
	m = observeUntil(t, p, inst, provider.PhaseRunning)
	if strings.Contains(m.Message, "restart") {
		t.Errorf("after the restart: %q", m.Message)
	}

	// A malformed ssh-keys value is refused for good.
	inst.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: "not a key"}}
	if perm, ok := provider.AsPermanent(p.Update(ctx, inst)); !ok || perm.Reason != ReasonInvalidMetadata {
		t.Errorf("Update with bad ssh-keys: %v", perm)
	}
}

func TestSuspendWithoutPauser(t *testing.T) {
	ctx := context.Background()
	_, inst := running(t, nil)
	p := New(k8sClient, Options{})
	err := p.SetPower(ctx, inst, provider.PowerSuspend)
	if perm, ok := provider.AsPermanent(err); !ok || perm.Reason != ReasonSuspendNotSupported {
		t.Errorf("Suspend without a Pauser: err = %v, want a PermanentError %s", err, ReasonSuspendNotSupported)
	}
}

// A Secret of the cloud-init Secret's name that the provider did not make is
// never overwritten (the provider cannot even read it): Create refuses.
func TestForeignSecretIsNotOverwritten(t *testing.T) {
	ctx := context.Background()
	inst := newInstance(t, nil)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CloudInitSecretName(inst), Namespace: inst.Namespace},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	if err := k8sClient.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	_, err := newProvider().Create(ctx, inst)
	if perm, ok := provider.AsPermanent(err); !ok || perm.Reason != ReasonCloudInitSecretTaken {
		t.Fatalf("Create: err = %v, want %s", err, ReasonCloudInitSecretTaken)
	}
	after := getSecret(t, inst)
	if string(after.Data["password"]) != "hunter2" || len(after.Data) != 1 || len(after.OwnerReferences) != 0 {
		t.Errorf("the foreign Secret was changed: %+v", after)
	}
	if err := k8sClient.Get(ctx, key(inst), &kubevirtv1.VirtualMachine{}); !apierrors.IsNotFound(err) {
		t.Errorf("a VM was made without its cloud-init data: err = %v", err)
	}
}
