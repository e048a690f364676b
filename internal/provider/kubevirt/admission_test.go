package kubevirt

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// sampleVM is the VirtualMachine the provider builds for the seed's sample
// with a second, blank data disk, for an Instance stored in a fresh
// namespace; the VM itself is never stored.
func sampleVM(t *testing.T) *kubevirtv1.VirtualMachine {
	t.Helper()
	inst := newInstance(t, func(inst *computev1alpha1.Instance) {
		inst.Spec.Disks = append(inst.Spec.Disks, computev1alpha1.Disk{SizeGb: 10, Type: computev1alpha1.DiskTypePersistent})
	})
	vm, err := BuildVirtualMachine(inst, DefaultCatalog())
	if err != nil {
		t.Fatalf("BuildVirtualMachine: %v", err)
	}
	disks := vm.Spec.Template.Spec.Domain.Devices.Disks
	if len(disks) < 2 || disks[0].BootOrder == nil || *disks[0].BootOrder != 1 || disks[1].Name != diskName(1) || disks[1].BootOrder != nil {
		t.Fatalf("disks = %+v; want the boot disk (bootOrder 1) first, then %s without a boot order", disks, diskName(1))
	}
	// The control: KubeVirt's schema and admission take the provider's VM as
	// it is, so a refusal below is the change's doing.
	if err := k8sClient.Create(context.Background(), vm.DeepCopy(), client.DryRunAll); err != nil {
		t.Fatalf("KubeVirt refused the provider's VirtualMachine: %v", err)
	}
	return vm
}

// refused fails the test unless err is the API server's Invalid answer
// whose message holds want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the VirtualMachine was accepted; want it refused with %q", want)
	}
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("refused with %v; want Invalid with %q", err, want)
	}
}

// virt-api's VM admitter refuses two devices with one boot order; only
// KubeVirt's webhook knows that rule (the schema allows it), so this fails
// if the webhook is not registered or not served.
func TestKubeVirtAdmissionRefusesTwoDisksWithOneBootOrder(t *testing.T) {
	vm := sampleVM(t)
	vm.Spec.Template.Spec.Domain.Devices.Disks[1].BootOrder = ptr.To[uint](1)
	err := k8sClient.Create(context.Background(), vm, client.DryRunAll)
	refused(t, err, `admission webhook "virtualmachine-validator.kubevirt.io" denied the request: `+
		"Boot order for spec.template.spec.domain.devices.disks[1].bootOrder already set for a different device.")
}

// virt-api's VM admitter refuses an interface with both a binding plugin
// and a binding method, which the schema lets through.
func TestKubeVirtAdmissionRefusesAnInterfaceWithTwoBindings(t *testing.T) {
	vm := sampleVM(t)
	iface := &vm.Spec.Template.Spec.Domain.Devices.Interfaces[0]
	if iface.Masquerade == nil {
		t.Fatalf("nic0 binds with %+v; want masquerade", iface.InterfaceBindingMethod)
	}
	iface.Binding = &kubevirtv1.PluginBinding{Name: "passt"}
	err := k8sClient.Create(context.Background(), vm, client.DryRunAll)
	refused(t, err, `admission webhook "virtualmachine-validator.kubevirt.io" denied the request: `+
		"logical nic0 interface cannot have both binding plugin and interface binding method")
}

// KubeVirt's CRD schema types fields the provider never writes, such as
// autoattachSerialConsole, and refuses a string there before any webhook
// sees it: the message is the API server's own, so this fails on a CRD
// without KubeVirt's schema, or with one that covers only the provider's
// fields (the webhook's refusal reads differently).
func TestKubeVirtSchemaRefusesAStringWhereItWantsABoolean(t *testing.T) {
	vm := sampleVM(t)
	u := unstructuredVM(t, vm)
	if err := unstructured.SetNestedField(u.Object, "yes", "spec", "template", "spec", "domain", "devices", "autoattachSerialConsole"); err != nil {
		t.Fatal(err)
	}
	err := k8sClient.Create(context.Background(), u, client.DryRunAll)
	refused(t, err, `spec.template.spec.domain.devices.autoattachSerialConsole: Invalid value: "string": spec.template.spec.domain.devices.autoattachSerialConsole in body must be of type boolean: "string"`)
	if strings.Contains(err.Error(), "admission webhook") {
		t.Fatalf("refused by a webhook, not by the schema: %v", err)
	}
}

// KubeVirt's CRD schema knows every field of the VM: with strict field
// validation a misspelt one is refused, as kubectl apply --validate=strict
// would have it.
func TestKubeVirtSchemaRefusesAMisspeltField(t *testing.T) {
	vm := sampleVM(t)
	u := unstructuredVM(t, vm)
	disks, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "domain", "devices", "disks")
	if err != nil {
		t.Fatal(err)
	}
	disks[1].(map[string]any)["bootorder"] = int64(2)
	if err := unstructured.SetNestedSlice(u.Object, disks, "spec", "template", "spec", "domain", "devices", "disks"); err != nil {
		t.Fatal(err)
	}
	err = k8sClient.Create(context.Background(), u, client.DryRunAll, client.FieldValidation("Strict"))
	want := `strict decoding error: unknown field "spec.template.spec.domain.devices.disks[1].bootorder"`
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Create = %v; want BadRequest with %q", err, want)
	}
}

func unstructuredVM(t *testing.T, vm *kubevirtv1.VirtualMachine) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(vm)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("kubevirt.io/v1")
	u.SetKind("VirtualMachine")
	return u
}

// virt-api's VM admitter applies the VM's instancetype, which it reads from
// the API server through the KubeVirt client virt-api-webhook runs with, and
// refuses guest CPU set beside it: the instancetype owns the CPU.
func TestKubeVirtAdmissionRefusesCPUBesideAnInstancetype(t *testing.T) {
	ctx := context.Background()
	inst := newInstance(t, nil)
	it := &instancetypev1beta1.VirtualMachineClusterInstancetype{
		ObjectMeta: metav1.ObjectMeta{Name: "admission-" + inst.Namespace},
		Spec: instancetypev1beta1.VirtualMachineInstancetypeSpec{
			CPU:    instancetypev1beta1.CPUInstancetype{Guest: 4},
			Memory: instancetypev1beta1.MemoryInstancetype{Guest: resource.MustParse("16Gi")},
		},
	}
	if err := k8sClient.Create(ctx, it); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), it) })
	cat := DefaultCatalog()
	cat.InstanceTypes = map[string]InstanceType{"g1-xlarge": {Instancetype: it.Name}}
	vm, err := BuildVirtualMachine(inst, cat)
	if err != nil {
		t.Fatalf("BuildVirtualMachine: %v", err)
	}
	if err := k8sClient.Create(ctx, vm.DeepCopy(), client.DryRunAll); err != nil {
		t.Fatalf("KubeVirt refused the provider's VirtualMachine with an instancetype: %v", err)
	}
	vm.Spec.Template.Spec.Domain.CPU = &kubevirtv1.CPU{Cores: 8}
	err = k8sClient.Create(ctx, vm, client.DryRunAll)
	refused(t, err, `admission webhook "virtualmachine-validator.kubevirt.io" denied the request: `+
		"VM field(s) spec.template.spec.domain.cpu.cores conflicts with selected instance type")
}

// KubeVirt v1.7's admission accepts a VM whose instancetype does not exist
// (virt-controller reports it on the VM later), so the provider's own check
// before Create (UnknownInstanceType) is the only early refusal; this fails,
// and docs/kubevirt.md needs a word, if KubeVirt starts refusing it.
func TestKubeVirtAdmissionLetsAMissingInstancetypeThrough(t *testing.T) {
	inst := newInstance(t, nil)
	cat := DefaultCatalog()
	cat.InstanceTypes = map[string]InstanceType{"g1-xlarge": {Instancetype: "no-such-instancetype"}}
	vm, err := BuildVirtualMachine(inst, cat)
	if err != nil {
		t.Fatalf("BuildVirtualMachine: %v", err)
	}
	if vm.Spec.Instancetype == nil || vm.Spec.Instancetype.Name != "no-such-instancetype" {
		t.Fatalf("spec.instancetype = %+v; want a reference to no-such-instancetype", vm.Spec.Instancetype)
	}
	if err := k8sClient.Create(context.Background(), vm, client.DryRunAll); err != nil {
		t.Fatalf("KubeVirt refused a VM with a missing instancetype: %v", err)
	}
}
