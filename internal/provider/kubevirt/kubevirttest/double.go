// Package kubevirttest is a test double of KubeVirt's and CDI's controllers
// for envtest, where they cannot run: it moves VirtualMachine,
// VirtualMachineInstance and DataVolume status the way virt-controller,
// virt-handler, the scheduler and CDI's import controller do, with their wire
// names and the VM's printable statuses (Provisioning, Starting, Running,
// Stopping, Stopped, Paused, ErrorUnschedulable, DataVolumeError,
// Terminating). Knobs hold a machine at a step, or fail it, so tests can
// observe every state. It also stands in for the pause and unpause
// subresources of virt-api, which envtest cannot serve.
package kubevirttest

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// Finalizers KubeVirt puts on the objects, by their real names.
const (
	VMFinalizer  = "kubevirt.io/virtualMachineControllerFinalize"
	VMIFinalizer = "foregroundDeleteVirtualMachine"
	// pauseRequestAnnotation carries a pause (or unpause) from Pause to the
	// VMI's reconcile, as virt-api hands it to virt-handler.
	pauseRequestAnnotation = "kubevirttest.k0rdent.ai/pause-request"
	// NodeName is the node every VMI of the double runs on.
	NodeName = "node-1"
	poll     = 20 * time.Millisecond
)

// Double runs the controllers. Its zero value is not usable; use New.
type Double struct {
	client client.Client

	mu            sync.Mutex
	holdImports   bool
	failImports   map[types.NamespacedName]string
	unschedulable map[types.NamespacedName]string
	holdBoot      bool
	holdShutdown  bool
	holdPause     bool
	holdRepair    bool
	pauses        int
	unpauses      int
}

// New returns a double with nothing held.
func New() *Double {
	return &Double{failImports: map[types.NamespacedName]string{}, unschedulable: map[types.NamespacedName]string{}}
}

// SetupWithManager registers the VM, VMI and DataVolume controllers.
func (d *Double) SetupWithManager(mgr ctrl.Manager) error {
	d.client = mgr.GetClient()
	if err := ctrl.NewControllerManagedBy(mgr).Named("kubevirttest-vm").
		For(&kubevirtv1.VirtualMachine{}).
		Owns(&kubevirtv1.VirtualMachineInstance{}).
		Owns(&cdiv1beta1.DataVolume{}).
		Complete(reconcilerFunc(d.reconcileVM)); err != nil {
		return err
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("kubevirttest-vmi").
		For(&kubevirtv1.VirtualMachineInstance{}).
		Complete(reconcilerFunc(d.reconcileVMI)); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("kubevirttest-dv").
		For(&cdiv1beta1.DataVolume{}).
		Complete(reconcilerFunc(d.reconcileDV))
}

type reconcilerFunc func(context.Context, ctrl.Request) (ctrl.Result, error)

func (f reconcilerFunc) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return f(ctx, req)
}

// HoldImports keeps DataVolumes in ImportInProgress while true.
func (d *Double) HoldImports(hold bool) { d.set(func() { d.holdImports = hold }) }

// FailImport makes CDI give up on the DataVolume: phase Failed, with message.
func (d *Double) FailImport(key types.NamespacedName, message string) {
	d.set(func() { d.failImports[key] = message })
}

// SetUnschedulable keeps the VM's VMI unscheduled with the scheduler's
// message; an empty message lets it schedule.
func (d *Double) SetUnschedulable(vm types.NamespacedName, message string) {
	d.set(func() {
		if message == "" {
			delete(d.unschedulable, vm)
		} else {
			d.unschedulable[vm] = message
		}
	})
}

// HoldBoot keeps scheduled VMIs from reaching Running while true.
func (d *Double) HoldBoot(hold bool) { d.set(func() { d.holdBoot = hold }) }

// HoldShutdown keeps deleted VMIs shutting down (VM Stopping) while true.
func (d *Double) HoldShutdown(hold bool) { d.set(func() { d.holdShutdown = hold }) }

// HoldPause keeps pause and unpause requests pending while true.
func (d *Double) HoldPause(hold bool) { d.set(func() { d.holdPause = hold }) }

// HoldRepair keeps a failed VMI in place, instead of restarting it, while true.
func (d *Double) HoldRepair(hold bool) { d.set(func() { d.holdRepair = hold }) }

// PauseCalls returns how many pause and unpause calls were accepted.
func (d *Double) PauseCalls() (pauses, unpauses int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pauses, d.unpauses
}

func (d *Double) set(f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f()
}

func (d *Double) snapshot() Double {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Double{holdImports: d.holdImports, holdBoot: d.holdBoot, holdShutdown: d.holdShutdown, holdPause: d.holdPause, holdRepair: d.holdRepair}
}

// FailHost fails the node of the VM's VMI: the VMI goes to phase Failed, as
// virt-controller marks it when its node is lost.
func (d *Double) FailHost(ctx context.Context, vm types.NamespacedName) error {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := d.client.Get(ctx, vm, vmi); err != nil {
		return err
	}
	vmi.Status.Phase = kubevirtv1.Failed
	vmi.Status.Reason = "NodeUnresponsive"
	setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, "NodeUnresponsive", "the node is not responding")
	return d.client.Update(ctx, vmi)
}

var vmiResource = schema.GroupResource{Group: "kubevirt.io", Resource: "virtualmachineinstances"}

// Pause implements the provider's Pauser as virt-api's pause subresource
// does: 404 without a VMI, 409 when it is not running or already paused; the
// Paused condition follows asynchronously.
func (d *Double) Pause(ctx context.Context, namespace, name string) error {
	return d.request(ctx, types.NamespacedName{Namespace: namespace, Name: name}, true)
}

// Unpause implements the provider's Pauser as virt-api's unpause subresource does.
func (d *Double) Unpause(ctx context.Context, namespace, name string) error {
	return d.request(ctx, types.NamespacedName{Namespace: namespace, Name: name}, false)
}

func (d *Double) request(ctx context.Context, key types.NamespacedName, pause bool) error {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := d.client.Get(ctx, key, vmi); err != nil {
		return err
	}
	paused := vmiCondition(vmi, kubevirtv1.VirtualMachineInstancePaused) == corev1.ConditionTrue
	switch {
	case vmi.Status.Phase != kubevirtv1.Running:
		return apierrors.NewConflict(vmiResource, key.Name, fmt.Errorf("VMI is not running"))
	case pause && paused:
		return apierrors.NewConflict(vmiResource, key.Name, fmt.Errorf("VMI is already paused"))
	case !pause && !paused:
		return apierrors.NewConflict(vmiResource, key.Name, fmt.Errorf("VMI is not paused"))
	}
	patch := client.MergeFrom(vmi.DeepCopy())
	if vmi.Annotations == nil {
		vmi.Annotations = map[string]string{}
	}
	vmi.Annotations[pauseRequestAnnotation] = fmt.Sprint(pause)
	if err := d.client.Patch(ctx, vmi, patch); err != nil {
		return err
	}
	d.set(func() {
		if pause {
			d.pauses++
		} else {
			d.unpauses++
		}
	})
	return nil
}

// reconcileVM is virt-controller's VM controller, plus the garbage
// collection of the DataVolumes that envtest lacks.
func (d *Double) reconcileVM(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	vm := &kubevirtv1.VirtualMachine{}
	if err := d.client.Get(ctx, req.NamespacedName, vm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := d.client.Get(ctx, req.NamespacedName, vmi); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		vmi = nil
	}
	knobs := d.snapshot()

	if vm.DeletionTimestamp != nil {
		if vmi != nil {
			if vmi.DeletionTimestamp == nil {
				if err := d.client.Delete(ctx, vmi); client.IgnoreNotFound(err) != nil {
					return ctrl.Result{}, err
				}
			}
			return ctrl.Result{}, d.setVMStatus(ctx, vm, kubevirtv1.VirtualMachineStatusTerminating, vmi)
		}
		if err := d.deleteOwnedDataVolumes(ctx, vm); err != nil {
			return ctrl.Result{}, err
		}
		if controllerutil.RemoveFinalizer(vm, VMFinalizer) {
			return ctrl.Result{}, client.IgnoreNotFound(d.client.Update(ctx, vm))
		}
		return ctrl.Result{}, nil
	}
	if controllerutil.AddFinalizer(vm, VMFinalizer) {
		if err := d.client.Update(ctx, vm); err != nil {
			return ctrl.Result{}, err
		}
	}

	dvsReady, dvFailed := true, false
	for _, t := range vm.Spec.DataVolumeTemplates {
		dv := &cdiv1beta1.DataVolume{}
		err := d.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: t.Name}, dv)
		switch {
		case apierrors.IsNotFound(err):
			dv = &cdiv1beta1.DataVolume{
				ObjectMeta: metav1.ObjectMeta{Name: t.Name, Namespace: vm.Namespace, Labels: t.Labels, Annotations: t.Annotations},
				Spec:       t.Spec,
			}
			if err := controllerutil.SetControllerReference(vm, dv, d.client.Scheme()); err != nil {
				return ctrl.Result{}, err
			}
			if err := d.client.Create(ctx, dv); err != nil && !apierrors.IsAlreadyExists(err) {
				return ctrl.Result{}, err
			}
			dvsReady = false
		case err != nil:
			return ctrl.Result{}, err
		default:
			dvsReady = dvsReady && dv.Status.Phase == cdiv1beta1.Succeeded
			dvFailed = dvFailed || dv.Status.Phase == cdiv1beta1.Failed
		}
	}

	wantRunning := ptr.Deref(vm.Spec.RunStrategy, "") == kubevirtv1.RunStrategyAlways ||
		(vm.Spec.RunStrategy == nil && ptr.Deref(vm.Spec.Running, false))
	final := vmi != nil && (vmi.Status.Phase == kubevirtv1.Failed || vmi.Status.Phase == kubevirtv1.Succeeded)
	switch {
	case wantRunning && vmi == nil && dvsReady:
		vmi = newVMI(vm)
		if err := controllerutil.SetControllerReference(vm, vmi, d.client.Scheme()); err != nil {
			return ctrl.Result{}, err
		}
		if err := d.client.Create(ctx, vmi); err != nil {
			return ctrl.Result{}, err
		}
	case vmi != nil && vmi.DeletionTimestamp == nil && (!wantRunning || (final && !knobs.holdRepair)):
		if err := d.client.Delete(ctx, vmi); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		vmi.DeletionTimestamp = ptr.To(metav1.Now())
	}

	var status kubevirtv1.VirtualMachinePrintableStatus
	switch {
	case vmi != nil && vmi.DeletionTimestamp != nil:
		status = kubevirtv1.VirtualMachineStatusStopping
	case vmi == nil && !wantRunning:
		status = kubevirtv1.VirtualMachineStatusStopped
	case vmi == nil && dvFailed:
		status = kubevirtv1.VirtualMachineStatusDataVolumeError
	case vmi == nil && !dvsReady:
		status = kubevirtv1.VirtualMachineStatusProvisioning
	case vmi == nil || final:
		status = kubevirtv1.VirtualMachineStatusStopped
	case vmi.Status.Phase == kubevirtv1.Running && vmiCondition(vmi, kubevirtv1.VirtualMachineInstancePaused) == corev1.ConditionTrue:
		status = kubevirtv1.VirtualMachineStatusPaused
	case vmi.Status.Phase == kubevirtv1.Running:
		status = kubevirtv1.VirtualMachineStatusRunning
	case vmiCondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled)) == corev1.ConditionFalse:
		status = kubevirtv1.VirtualMachineStatusUnschedulable
	default:
		status = kubevirtv1.VirtualMachineStatusStarting
	}
	if err := d.setVMStatus(ctx, vm, status, vmi); err != nil {
		return ctrl.Result{}, err
	}
	if final && knobs.holdRepair {
		return ctrl.Result{RequeueAfter: poll}, nil
	}
	return ctrl.Result{}, nil
}

// setVMStatus writes the VM's status as virt-controller does: the printable
// status, ready and created, and the VMI's Ready, Paused and PodScheduled conditions.
func (d *Double) setVMStatus(ctx context.Context, vm *kubevirtv1.VirtualMachine, status kubevirtv1.VirtualMachinePrintableStatus, vmi *kubevirtv1.VirtualMachineInstance) error {
	want := vm.Status.DeepCopy()
	want.PrintableStatus = status
	want.Created = vmi != nil
	want.Ready = status == kubevirtv1.VirtualMachineStatusRunning
	want.RunStrategy = ptr.Deref(vm.Spec.RunStrategy, "")
	want.Conditions = nil
	ready := corev1.ConditionFalse
	if want.Ready {
		ready = corev1.ConditionTrue
	}
	want.Conditions = append(want.Conditions, kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachineReady, Status: ready})
	if vmi != nil {
		for _, c := range vmi.Status.Conditions {
			switch c.Type {
			case kubevirtv1.VirtualMachineInstancePaused:
				want.Conditions = append(want.Conditions, kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachinePaused, Status: c.Status, Reason: c.Reason, Message: c.Message})
			case kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled):
				if c.Status == corev1.ConditionFalse {
					want.Conditions = append(want.Conditions, kubevirtv1.VirtualMachineCondition{Type: kubevirtv1.VirtualMachineConditionType(c.Type), Status: c.Status, Reason: c.Reason, Message: c.Message})
				}
			}
		}
	}
	if equalStatus(&vm.Status, want) {
		return nil
	}
	vm.Status = *want
	return client.IgnoreNotFound(d.client.Status().Update(ctx, vm))
}

func equalStatus(a, b *kubevirtv1.VirtualMachineStatus) bool {
	if a.PrintableStatus != b.PrintableStatus || a.Ready != b.Ready || a.Created != b.Created ||
		a.RunStrategy != b.RunStrategy || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return false
		}
	}
	return true
}

func (d *Double) deleteOwnedDataVolumes(ctx context.Context, vm *kubevirtv1.VirtualMachine) error {
	for _, t := range vm.Spec.DataVolumeTemplates {
		dv := &cdiv1beta1.DataVolume{}
		if err := d.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: t.Name}, dv); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		if !metav1.IsControlledBy(dv, vm) {
			continue
		}
		if err := d.client.Delete(ctx, dv); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// newVMI is the VMI virt-controller makes from the VM's template.
func newVMI(vm *kubevirtv1.VirtualMachine) *kubevirtv1.VirtualMachineInstance {
	meta := vm.Spec.Template.ObjectMeta.DeepCopy()
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        vm.Name,
			Namespace:   vm.Namespace,
			Labels:      meta.Labels,
			Annotations: meta.Annotations,
			Finalizers:  []string{VMIFinalizer},
		},
		Spec: *vm.Spec.Template.Spec.DeepCopy(),
	}
	if vmi.Labels == nil {
		vmi.Labels = map[string]string{}
	}
	vmi.Labels["kubevirt.io/created-by"] = string(vm.UID)
	return vmi
}

// reconcileVMI is the scheduler and virt-handler: Pending, Scheduling,
// Scheduled, Running; pause and unpause; shutdown on deletion.
func (d *Double) reconcileVMI(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := d.client.Get(ctx, req.NamespacedName, vmi); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	knobs := d.snapshot()
	if vmi.DeletionTimestamp != nil {
		if knobs.holdShutdown {
			return ctrl.Result{RequeueAfter: poll}, nil
		}
		if controllerutil.RemoveFinalizer(vmi, VMIFinalizer) {
			return ctrl.Result{}, client.IgnoreNotFound(d.client.Update(ctx, vmi))
		}
		return ctrl.Result{}, nil
	}
	d.mu.Lock()
	unschedulable := d.unschedulable[types.NamespacedName{Namespace: vmi.Namespace, Name: vmi.Name}]
	d.mu.Unlock()

	switch vmi.Status.Phase {
	case kubevirtv1.VmPhaseUnset:
		vmi.Status.Phase = kubevirtv1.Pending
	case kubevirtv1.Pending:
		vmi.Status.Phase = kubevirtv1.Scheduling
	case kubevirtv1.Scheduling:
		if unschedulable != "" {
			if setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionFalse, corev1.PodReasonUnschedulable, unschedulable) {
				break
			}
			return ctrl.Result{RequeueAfter: poll}, nil
		}
		setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), corev1.ConditionTrue, "", "")
		vmi.Status.Phase = kubevirtv1.Scheduled
		vmi.Status.NodeName = NodeName
	case kubevirtv1.Scheduled:
		if knobs.holdBoot {
			return ctrl.Result{RequeueAfter: poll}, nil
		}
		vmi.Status.Phase = kubevirtv1.Running
		vmi.Status.Interfaces = interfaces(vmi)
		setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
	case kubevirtv1.Running:
		request, ok := vmi.Annotations[pauseRequestAnnotation]
		if !ok {
			return ctrl.Result{}, nil
		}
		if knobs.holdPause {
			return ctrl.Result{RequeueAfter: poll}, nil
		}
		delete(vmi.Annotations, pauseRequestAnnotation)
		if request == "true" {
			setVMICondition(vmi, kubevirtv1.VirtualMachineInstancePaused, corev1.ConditionTrue, "PausedByUser", "VMI was paused by user")
			setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionFalse, "PausedByUser", "VMI was paused by user")
		} else {
			removeVMICondition(vmi, kubevirtv1.VirtualMachineInstancePaused)
			setVMICondition(vmi, kubevirtv1.VirtualMachineInstanceReady, corev1.ConditionTrue, "", "")
		}
	default:
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(d.client.Update(ctx, vmi))
}

// interfaces are the addresses virt-handler reports: the pod address on the
// pod network, a bridge address on each Multus network.
func interfaces(vmi *kubevirtv1.VirtualMachineInstance) []kubevirtv1.VirtualMachineInstanceNetworkInterface {
	host := 10 + int(vmi.UID[len(vmi.UID)-1])%200
	var out []kubevirtv1.VirtualMachineInstanceNetworkInterface
	for i, n := range vmi.Spec.Networks {
		var v4, v6 string
		if n.Pod != nil {
			v4, v6 = fmt.Sprintf("10.244.0.%d", host), fmt.Sprintf("fd10:244::%x", host)
		} else {
			v4, v6 = fmt.Sprintf("192.168.%d.%d", i, host), fmt.Sprintf("fd00:%d::%x", i, host)
		}
		mac := ""
		if i < len(vmi.Spec.Domain.Devices.Interfaces) {
			mac = vmi.Spec.Domain.Devices.Interfaces[i].MacAddress
		}
		out = append(out, kubevirtv1.VirtualMachineInstanceNetworkInterface{
			Name: n.Name, IP: v4, IPs: []string{v4, v6, "fe80::1"}, MAC: mac,
			InterfaceName: fmt.Sprintf("eth%d", i), InfoSource: "domain, guest-agent",
		})
	}
	return out
}

// reconcileDV is CDI's import controller: ImportScheduled, ImportInProgress,
// Succeeded, or Failed when told to.
func (d *Double) reconcileDV(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dv := &cdiv1beta1.DataVolume{}
	if err := d.client.Get(ctx, req.NamespacedName, dv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	knobs := d.snapshot()
	d.mu.Lock()
	failure, fail := d.failImports[req.NamespacedName]
	d.mu.Unlock()
	switch dv.Status.Phase {
	case cdiv1beta1.PhaseUnset:
		dv.Status.Phase = cdiv1beta1.Pending
	case cdiv1beta1.Pending:
		dv.Status.Phase = cdiv1beta1.ImportScheduled
		dv.Status.ClaimName = dv.Name
	case cdiv1beta1.ImportScheduled:
		dv.Status.Phase = cdiv1beta1.ImportInProgress
		dv.Status.Progress = "45.00%"
		setDVCondition(dv, cdiv1beta1.DataVolumeRunning, corev1.ConditionTrue, "Pod is running", "")
	case cdiv1beta1.ImportInProgress:
		switch {
		case fail:
			dv.Status.Phase = cdiv1beta1.Failed
			dv.Status.RestartCount = 3
			setDVCondition(dv, cdiv1beta1.DataVolumeRunning, corev1.ConditionFalse, "Error", failure)
		case knobs.holdImports:
			return ctrl.Result{RequeueAfter: poll}, nil
		default:
			dv.Status.Phase = cdiv1beta1.Succeeded
			dv.Status.Progress = "100.0%"
			setDVCondition(dv, cdiv1beta1.DataVolumeRunning, corev1.ConditionFalse, "Completed", "Import Complete")
			setDVCondition(dv, cdiv1beta1.DataVolumeReady, corev1.ConditionTrue, "", "")
		}
	default:
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(d.client.Status().Update(ctx, dv))
}

func vmiCondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) corev1.ConditionStatus {
	for _, c := range vmi.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// setVMICondition sets a condition and reports whether it changed.
func setVMICondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType, status corev1.ConditionStatus, reason, message string) bool {
	for i := range vmi.Status.Conditions {
		c := &vmi.Status.Conditions[i]
		if c.Type == t {
			if c.Status == status && c.Reason == reason && c.Message == message {
				return false
			}
			c.Status, c.Reason, c.Message, c.LastTransitionTime = status, reason, message, metav1.Now()
			return true
		}
	}
	vmi.Status.Conditions = append(vmi.Status.Conditions, kubevirtv1.VirtualMachineInstanceCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now(),
	})
	return true
}

func removeVMICondition(vmi *kubevirtv1.VirtualMachineInstance, t kubevirtv1.VirtualMachineInstanceConditionType) {
	kept := vmi.Status.Conditions[:0]
	for _, c := range vmi.Status.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	vmi.Status.Conditions = kept
}

func setDVCondition(dv *cdiv1beta1.DataVolume, t cdiv1beta1.DataVolumeConditionType, status corev1.ConditionStatus, reason, message string) {
	for i := range dv.Status.Conditions {
		if c := &dv.Status.Conditions[i]; c.Type == t {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = status, reason, message, metav1.Now()
			return
		}
	}
	dv.Status.Conditions = append(dv.Status.Conditions, cdiv1beta1.DataVolumeCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now(), LastHeartbeatTime: metav1.Now(),
	})
}
