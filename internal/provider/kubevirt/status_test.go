package kubevirt

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// TestMachineFrom is the status table of docs/kubevirt.md, row by row,
// including the statuses the controller double does not produce.
func TestMachineFrom(t *testing.T) {
	inst := &computev1alpha1.Instance{ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "ns"}}
	vmWith := func(rs kubevirtv1.VirtualMachineRunStrategy, status kubevirtv1.VirtualMachinePrintableStatus) *kubevirtv1.VirtualMachine {
		return &kubevirtv1.VirtualMachine{
			ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "ns", Annotations: map[string]string{}},
			Spec: kubevirtv1.VirtualMachineSpec{
				RunStrategy: ptr.To(rs),
				Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{MetadataHashAnnotation: "h1"}},
				},
			},
			Status: kubevirtv1.VirtualMachineStatus{PrintableStatus: status},
		}
	}
	vmiIn := func(phase kubevirtv1.VirtualMachineInstancePhase, conds ...kubevirtv1.VirtualMachineInstanceCondition) *kubevirtv1.VirtualMachineInstance {
		return &kubevirtv1.VirtualMachineInstance{
			ObjectMeta: metav1.ObjectMeta{Name: "i", Namespace: "ns", UID: "vmi-1", Annotations: map[string]string{MetadataHashAnnotation: "h1"}},
			Status:     kubevirtv1.VirtualMachineInstanceStatus{Phase: phase, Conditions: conds},
		}
	}
	paused := kubevirtv1.VirtualMachineInstanceCondition{Type: kubevirtv1.VirtualMachineInstancePaused, Status: corev1.ConditionTrue}
	always, halted := kubevirtv1.RunStrategyAlways, kubevirtv1.RunStrategyHalted

	tests := []struct {
		name     string
		vm       *kubevirtv1.VirtualMachine
		vmi      *kubevirtv1.VirtualMachineInstance
		dvs      []cdiv1beta1.DataVolume
		phase    provider.Phase
		message  string // a substring
		capacity bool
		reason   string // a PermanentError reason instead of a machine
	}{
		{name: "not yet seen by KubeVirt", vm: vmWith(always, ""), phase: provider.PhaseProvisioning, message: "waiting for KubeVirt"},
		{name: "Stopped under Always, before KubeVirt starts it", vm: vmWith(always, kubevirtv1.VirtualMachineStatusStopped), phase: provider.PhaseStaging},
		{name: "Provisioning", vm: vmWith(always, kubevirtv1.VirtualMachineStatusProvisioning), phase: provider.PhaseProvisioning, message: "preparing the disks"},
		{name: "WaitingForVolumeBinding", vm: vmWith(always, kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding), phase: provider.PhaseProvisioning},
		{
			name: "DataVolumeError while CDI retries", vm: vmWith(always, kubevirtv1.VirtualMachineStatusDataVolumeError),
			dvs: []cdiv1beta1.DataVolume{{
				ObjectMeta: metav1.ObjectMeta{Name: "i-disk-0"},
				Status: cdiv1beta1.DataVolumeStatus{Phase: cdiv1beta1.ImportInProgress, RestartCount: 2, Conditions: []cdiv1beta1.DataVolumeCondition{
					{Type: cdiv1beta1.DataVolumeRunning, Status: corev1.ConditionFalse, Reason: "Error", Message: "connection refused"},
				}},
			}},
			phase: provider.PhaseProvisioning, message: "i-disk-0 ImportInProgress (2 restarts: connection refused)",
		},
		{
			name: "DataVolumeError with a Failed DataVolume", vm: vmWith(always, kubevirtv1.VirtualMachineStatusDataVolumeError),
			dvs:    []cdiv1beta1.DataVolume{{ObjectMeta: metav1.ObjectMeta{Name: "i-disk-0"}, Status: cdiv1beta1.DataVolumeStatus{Phase: cdiv1beta1.Failed}}},
			reason: ReasonImageImportFailed,
		},
		{name: "ErrImagePull", vm: vmWith(always, kubevirtv1.VirtualMachineStatusErrImagePull), vmi: vmiIn(kubevirtv1.Scheduling), phase: provider.PhaseProvisioning, message: "ErrImagePull"},
		{name: "ImagePullBackOff", vm: vmWith(always, kubevirtv1.VirtualMachineStatusImagePullBackOff), vmi: vmiIn(kubevirtv1.Scheduling), phase: provider.PhaseProvisioning, message: "ImagePullBackOff"},
		{name: "ErrorPvcNotFound", vm: vmWith(always, kubevirtv1.VirtualMachineStatusPvcNotFound), phase: provider.PhaseProvisioning, message: "PersistentVolumeClaim"},
		{
			name: "ErrorUnschedulable", vm: vmWith(always, kubevirtv1.VirtualMachineStatusUnschedulable),
			vmi: vmiIn(kubevirtv1.Scheduling, kubevirtv1.VirtualMachineInstanceCondition{
				Type: kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), Status: corev1.ConditionFalse, Message: "0/2 nodes are available",
			}),
			phase: provider.PhaseProvisioning, capacity: true, message: "0/2 nodes are available",
		},
		{name: "Starting", vm: vmWith(always, kubevirtv1.VirtualMachineStatusStarting), vmi: vmiIn(kubevirtv1.Scheduled), phase: provider.PhaseStaging},
		{name: "Running", vm: vmWith(always, kubevirtv1.VirtualMachineStatusRunning), vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseRunning},
		{name: "Migrating", vm: vmWith(always, kubevirtv1.VirtualMachineStatusMigrating), vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseRunning, message: "live-migrating"},
		{name: "Paused", vm: vmWith(always, kubevirtv1.VirtualMachineStatusPaused), vmi: vmiIn(kubevirtv1.Running, paused), phase: provider.PhaseSuspended},
		{name: "the VMI's Paused condition before the VM's status", vm: vmWith(always, kubevirtv1.VirtualMachineStatusRunning), vmi: vmiIn(kubevirtv1.Running, paused), phase: provider.PhaseSuspended},
		{
			name: "a Suspend request for this VMI", vm: func() *kubevirtv1.VirtualMachine {
				vm := vmWith(always, kubevirtv1.VirtualMachineStatusRunning)
				vm.Annotations[PowerRequestAnnotation] = "Suspend/vmi-1"
				return vm
			}(),
			vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseSuspending,
		},
		{
			name: "a Resume request for this VMI", vm: func() *kubevirtv1.VirtualMachine {
				vm := vmWith(always, kubevirtv1.VirtualMachineStatusPaused)
				vm.Annotations[PowerRequestAnnotation] = "Resume/vmi-1"
				return vm
			}(),
			vmi: vmiIn(kubevirtv1.Running, paused), phase: provider.PhaseStaging, message: "resuming",
		},
		{name: "Stopping", vm: vmWith(halted, kubevirtv1.VirtualMachineStatusRunning), vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseStopping},
		{name: "Stopped", vm: vmWith(halted, kubevirtv1.VirtualMachineStatusStopped), phase: provider.PhaseStopped},
		{name: "Stopped with a finished VMI", vm: vmWith(halted, kubevirtv1.VirtualMachineStatusStopped), vmi: vmiIn(kubevirtv1.Succeeded), phase: provider.PhaseStopped},
		{name: "the guest shut itself down under Always", vm: vmWith(always, kubevirtv1.VirtualMachineStatusStopping), vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseStopping},
		{name: "a failed VMI", vm: vmWith(always, kubevirtv1.VirtualMachineStatusStopped), vmi: vmiIn(kubevirtv1.Failed), phase: provider.PhaseRepairing},
		{name: "CrashLoopBackOff", vm: vmWith(always, kubevirtv1.VirtualMachineStatusCrashLoopBackOff), phase: provider.PhaseRepairing, message: "backoff"},
		{name: "Unknown", vm: vmWith(always, kubevirtv1.VirtualMachineStatusUnknown), vmi: vmiIn(kubevirtv1.Unknown), phase: provider.PhaseRepairing, message: "unreachable"},
		{
			name: "Terminating", vm: func() *kubevirtv1.VirtualMachine {
				vm := vmWith(always, kubevirtv1.VirtualMachineStatusTerminating)
				vm.DeletionTimestamp = ptr.To(metav1.Now())
				return vm
			}(),
			vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseDeleting,
		},
		{
			name: "RestartRequired", vm: func() *kubevirtv1.VirtualMachine {
				vm := vmWith(always, kubevirtv1.VirtualMachineStatusRunning)
				vm.Status.Conditions = []kubevirtv1.VirtualMachineCondition{{Type: kubevirtv1.VirtualMachineRestartRequired, Status: corev1.ConditionTrue}}
				return vm
			}(),
			vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseRunning, message: "apply at the next restart",
		},
		{
			name: "a VMI older than the template's cloud-init", vm: func() *kubevirtv1.VirtualMachine {
				vm := vmWith(always, kubevirtv1.VirtualMachineStatusRunning)
				vm.Spec.Template.ObjectMeta.Annotations[MetadataHashAnnotation] = "h2"
				return vm
			}(),
			vmi: vmiIn(kubevirtv1.Running), phase: provider.PhaseRunning, message: "apply at the next restart",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := observation{vm: tt.vm, vmi: tt.vmi, dvs: tt.dvs}
			// As Observe does: a power request made for another VMI is dropped.
			if tt.vmi != nil && !powerRequestFor(tt.vm, tt.vmi) {
				delete(tt.vm.Annotations, PowerRequestAnnotation)
			}
			m, err := machineFrom(inst, o)
			if tt.reason != "" {
				if p, ok := provider.AsPermanent(err); !ok || p.Reason != tt.reason {
					t.Fatalf("err = %v, want %s", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Phase != tt.phase || m.WaitingForCapacity != tt.capacity || !strings.Contains(m.Message, tt.message) {
				t.Errorf("machine = {%s %q capacity=%v}, want {%s ~%q capacity=%v}", m.Phase, m.Message, m.WaitingForCapacity, tt.phase, tt.message, tt.capacity)
			}
			if tt.message == "" && m.Message == "" {
				t.Error("no message")
			}
		})
	}
}

func TestPowerRequestOfAnEarlierVMIIsIgnored(t *testing.T) {
	vm := &kubevirtv1.VirtualMachine{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{PowerRequestAnnotation: "Suspend/old-vmi"}}}
	if powerRequestFor(vm, &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{UID: "new-vmi"}}) {
		t.Error("a Suspend made for a VMI that is gone applies to its successor")
	}
	if !powerRequestFor(vm, &kubevirtv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{UID: "old-vmi"}}) {
		t.Error("a Suspend for this VMI is ignored")
	}
}

func TestNICStatuses(t *testing.T) {
	inst := &computev1alpha1.Instance{Spec: computev1alpha1.InstanceSpec{NICs: []computev1alpha1.NIC{
		{Network: "/n/a"}, {Network: "/n/b", Subnet: "/s/b", VLAN: 5},
	}}}
	vmi := &kubevirtv1.VirtualMachineInstance{Status: kubevirtv1.VirtualMachineInstanceStatus{Interfaces: []kubevirtv1.VirtualMachineInstanceNetworkInterface{
		{Name: "nic1", IPs: []string{"fe80::5", "2001:db8::5", "192.168.7.5"}},
		{Name: "nic0", IP: "10.244.1.9", IPs: []string{"10.244.1.9"}},
	}}}
	got := nicStatuses(inst, vmi)
	want := []computev1alpha1.NICStatus{
		{Network: "/n/a", IPv4Address: "10.244.1.9"},
		{Network: "/n/b", Subnet: "/s/b", VLAN: 5, IPv4Address: "192.168.7.5", IPv6Address: "2001:db8::5"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("nicStatuses = %+v, want %+v", got, want)
	}
	if n := nicStatuses(&computev1alpha1.Instance{}, nil); len(n) != 1 || n[0] != (computev1alpha1.NICStatus{}) {
		t.Errorf("no spec.nics: %+v, want one empty entry for the default network", n)
	}
}
