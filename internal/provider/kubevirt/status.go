package kubevirt

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// observation is what Observe read: the VM, its VMI (nil when none) and the
// DataVolumes of its templates that exist.
type observation struct {
	vm  *kubevirtv1.VirtualMachine
	vmi *kubevirtv1.VirtualMachineInstance
	dvs []cdiv1beta1.DataVolume
}

// machineFrom maps what KubeVirt reports onto a provider machine: the VM's
// printableStatus first, refined by the VMI's phase and conditions and by a
// pending power request (the table is in docs/kubevirt.md). A DataVolume
// that CDI gave up on is a PermanentError.
func machineFrom(inst *computev1alpha1.Instance, o observation) (*provider.Machine, error) {
	vm, vmi := o.vm, o.vmi
	m := &provider.Machine{
		ID:       vm.Namespace + "/" + vm.Name,
		Hostname: inst.EffectiveHostname(),
		NICs:     nicStatuses(inst, vmi),
	}
	halted := vm.Spec.RunStrategy != nil && *vm.Spec.RunStrategy == kubevirtv1.RunStrategyHalted
	// A VMI being deleted is a guest shutting down, until it is gone.
	vmiAlive := vmi != nil && vmi.Status.Phase != kubevirtv1.Succeeded && vmi.Status.Phase != kubevirtv1.Failed
	vmiActive := vmiAlive && vmi.DeletionTimestamp == nil
	paused := vmi != nil && vmiCondition(vmi, kubevirtv1.VirtualMachineInstancePaused) == corev1.ConditionTrue
	request, _, _ := strings.Cut(vm.Annotations[PowerRequestAnnotation], "/")

	status := vm.Status.PrintableStatus
	switch {
	case vm.DeletionTimestamp != nil || status == kubevirtv1.VirtualMachineStatusTerminating:
		m.Phase, m.Message = provider.PhaseDeleting, "the VirtualMachine is being deleted"
	case halted && vmiAlive:
		m.Phase, m.Message = provider.PhaseStopping, "the guest is shutting down"
	case halted:
		m.Phase, m.Message = provider.PhaseStopped, "the VirtualMachine is stopped"
	case vmi != nil && vmi.Status.Phase == kubevirtv1.Failed:
		m.Phase, m.Message = provider.PhaseRepairing, "the guest failed"
		if vmi.Status.Reason != "" {
			m.Message += " (" + vmi.Status.Reason + ")"
		}
		m.Message += " and KubeVirt restarts it"
	case status == kubevirtv1.VirtualMachineStatusPaused || paused:
		if request == string(provider.PowerResume) {
			m.Phase, m.Message = provider.PhaseStaging, "resuming the paused guest"
		} else {
			m.Phase, m.Message = provider.PhaseSuspended, "the guest is paused"
		}
	case request == string(provider.PowerSuspend) && vmiActive:
		m.Phase, m.Message = provider.PhaseSuspending, "pausing the guest"
	case status == kubevirtv1.VirtualMachineStatusRunning:
		m.Phase, m.Message = provider.PhaseRunning, "the guest is running"
		if vmi != nil && vmi.Status.NodeName != "" {
			m.Message += " on node " + vmi.Status.NodeName
		}
	case status == kubevirtv1.VirtualMachineStatusMigrating:
		m.Phase, m.Message = provider.PhaseRunning, "the guest is live-migrating to another node"
	case status == kubevirtv1.VirtualMachineStatusStarting:
		m.Phase, m.Message = provider.PhaseStaging, "the guest is booting"
	case status == kubevirtv1.VirtualMachineStatusStopping:
		m.Phase, m.Message = provider.PhaseStopping, "the guest is shutting down"
	case status == kubevirtv1.VirtualMachineStatusUnschedulable:
		m.Phase, m.WaitingForCapacity = provider.PhaseProvisioning, true
		m.Message = "waiting for a node with room for the instance"
		if msg := unschedulableMessage(vm, vmi); msg != "" {
			m.Message += ": " + msg
		}
	case status == kubevirtv1.VirtualMachineStatusDataVolumeError:
		if dv := failedDataVolume(o.dvs); dv != nil {
			return nil, provider.Permanent(ReasonImageImportFailed, "importing disk %s failed: %s", dv.Name, dataVolumeMessage(dv))
		}
		m.Phase, m.Message = provider.PhaseProvisioning, "importing the disk images failed and is retried"
		if msg := importMessage(o.dvs); msg != "" {
			m.Message += ": " + msg
		}
	case status == kubevirtv1.VirtualMachineStatusProvisioning, status == kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding:
		m.Phase, m.Message = provider.PhaseProvisioning, "preparing the disks"
		if msg := importMessage(o.dvs); msg != "" {
			m.Message += ": " + msg
		}
	case status == kubevirtv1.VirtualMachineStatusErrImagePull, status == kubevirtv1.VirtualMachineStatusImagePullBackOff:
		m.Phase, m.Message = provider.PhaseProvisioning, "pulling the disk image failed and is retried ("+string(status)+")"
	case status == kubevirtv1.VirtualMachineStatusPvcNotFound:
		m.Phase, m.Message = provider.PhaseProvisioning, "waiting for a disk's PersistentVolumeClaim"
	case status == kubevirtv1.VirtualMachineStatusCrashLoopBackOff:
		m.Phase, m.Message = provider.PhaseRepairing, "the guest failed to start and is restarted with backoff"
	case status == kubevirtv1.VirtualMachineStatusUnknown || (vmi != nil && vmi.Status.Phase == kubevirtv1.Unknown):
		m.Phase, m.Message = provider.PhaseRepairing, "the guest's node is unreachable"
	default:
		// No printable status yet (KubeVirt has not seen the VM), or Stopped
		// under runStrategy Always, before KubeVirt starts it.
		m.Phase, m.Message = provider.PhaseProvisioning, "waiting for KubeVirt to start the VirtualMachine"
		if status == kubevirtv1.VirtualMachineStatusStopped {
			m.Phase = provider.PhaseStaging
		}
	}
	if msg := restartNote(vm, vmi); msg != "" && m.Phase != provider.PhaseDeleting {
		m.Message += "; " + msg
	}
	return m, nil
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) corev1.ConditionStatus {
	for _, c := range vmi.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// unschedulableMessage is the scheduler's word, from the VMI's PodScheduled
// condition or the VM's Failure condition.
func unschedulableMessage(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi != nil {
		for _, c := range vmi.Status.Conditions {
			if c.Type == kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled) && c.Status == corev1.ConditionFalse && c.Message != "" {
				return c.Message
			}
		}
	}
	for _, c := range vm.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineFailure && c.Status == corev1.ConditionTrue && c.Message != "" {
			return c.Message
		}
	}
	return ""
}

func failedDataVolume(dvs []cdiv1beta1.DataVolume) *cdiv1beta1.DataVolume {
	for i := range dvs {
		if dvs[i].Status.Phase == cdiv1beta1.Failed {
			return &dvs[i]
		}
	}
	return nil
}

// dataVolumeMessage is the message of the DataVolume's Running (import pod)
// condition, else of its Ready condition.
func dataVolumeMessage(dv *cdiv1beta1.DataVolume) string {
	for _, t := range []cdiv1beta1.DataVolumeConditionType{cdiv1beta1.DataVolumeRunning, cdiv1beta1.DataVolumeReady} {
		for _, c := range dv.Status.Conditions {
			if c.Type == t && c.Message != "" {
				return c.Message
			}
		}
	}
	return string(dv.Status.Phase)
}

// importMessage sums up the DataVolumes still in progress, e.g.
// "instance-d4e5f6-disk-0 ImportInProgress 45.00%".
func importMessage(dvs []cdiv1beta1.DataVolume) string {
	var parts []string
	for i := range dvs {
		dv := &dvs[i]
		if dv.Status.Phase == cdiv1beta1.Succeeded {
			continue
		}
		part := dv.Name + " " + string(dv.Status.Phase)
		if dv.Status.Progress != "" && dv.Status.Progress != "N/A" {
			part += " " + string(dv.Status.Progress)
		}
		if dv.Status.RestartCount > 0 {
			part += fmt.Sprintf(" (%d restarts: %s)", dv.Status.RestartCount, dataVolumeMessage(dv))
		}
		parts = append(parts, part)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// restartNote tells that the running guest predates an instanceMetadata
// change, which KubeVirt applies at the next boot.
func restartNote(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) string {
	for _, c := range vm.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineRestartRequired && c.Status == corev1.ConditionTrue {
			return "instanceMetadata changes apply at the next restart"
		}
	}
	if vmi == nil || vmi.DeletionTimestamp != nil || vm.Spec.Template == nil {
		return ""
	}
	want := vm.Spec.Template.ObjectMeta.Annotations[MetadataHashAnnotation]
	if got, ok := vmi.Annotations[MetadataHashAnnotation]; ok && got != want {
		return "instanceMetadata changes apply at the next restart"
	}
	return ""
}

// nicStatuses reports, per NIC, the addresses of the VMI interface of the
// same name.
func nicStatuses(inst *computev1alpha1.Instance, vmi *kubevirtv1.VirtualMachineInstance) []computev1alpha1.NICStatus {
	var out []computev1alpha1.NICStatus
	for i, n := range nics(inst) {
		s := computev1alpha1.NICStatus{Network: n.Network, Subnet: n.Subnet, VLAN: n.VLAN}
		if vmi != nil {
			for _, iface := range vmi.Status.Interfaces {
				if iface.Name != nicName(i) {
					continue
				}
				for _, ip := range append([]string{iface.IP}, iface.IPs...) {
					a, err := netip.ParseAddr(ip)
					switch {
					case err != nil:
					case a.Is4() && s.IPv4Address == "":
						s.IPv4Address = a.String()
					case a.Is6() && !a.IsLinkLocalUnicast() && s.IPv6Address == "":
						s.IPv6Address = a.String()
					}
				}
			}
		}
		out = append(out, s)
	}
	return out
}
