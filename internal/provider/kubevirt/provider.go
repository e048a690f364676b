package kubevirt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	instancetypev1beta1 "kubevirt.io/api/instancetype/v1beta1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// Name is the provider's name, recorded in status.machine.provider.
const Name = "kubevirt"

// AddToScheme registers the KubeVirt, instancetype and CDI types the provider reads and writes.
func AddToScheme(s *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{kubevirtv1.AddToScheme, instancetypev1beta1.AddToScheme, cdiv1beta1.AddToScheme} {
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}

// Options configure a Provider.
type Options struct {
	// Catalog maps types, images, GPU types and networks; nil uses DefaultCatalog.
	Catalog *Catalog
	// Pauser suspends and resumes VMIs; nil refuses Suspend and Resume.
	Pauser Pauser
	// APIReader reads past the client's cache, to tell a VM the cache has not
	// seen yet from a lost one; nil when the client reads uncached.
	APIReader client.Reader
}

// Provider runs Instances as KubeVirt VirtualMachines.
type Provider struct {
	client client.Client
	// reader reads past client's cache; confirmNotFound is set when it does.
	reader          client.Reader
	confirmNotFound bool
	catalog         *Catalog
	pauser          Pauser
}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Releaser = (*Provider)(nil)
)

// New returns a provider that works through c, whose scheme must include
// AddToScheme's types.
func New(c client.Client, opts Options) *Provider {
	p := &Provider{client: c, reader: opts.APIReader, confirmNotFound: opts.APIReader != nil, catalog: opts.Catalog, pauser: opts.Pauser}
	if p.catalog == nil {
		p.catalog = DefaultCatalog()
	}
	return p
}

// NewForManager is the provider of --provider=kubevirt: it loads the catalog
// file (empty for the built-in defaults), reads through the manager's cache
// and pauses VMIs through the subresource API. The manager's scheme must
// include AddToScheme's types.
func NewForManager(mgr ctrl.Manager, catalogFile string) (*Provider, error) {
	cat, err := LoadCatalog(catalogFile)
	if err != nil {
		return nil, err
	}
	pauser, err := NewSubresourcePauser(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	return New(mgr.GetClient(), Options{Catalog: cat, Pauser: pauser, APIReader: mgr.GetAPIReader()}), nil
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return Name }

func token(inst *computev1alpha1.Instance) string {
	if inst.Status.Machine.CreateToken != "" {
		return inst.Status.Machine.CreateToken
	}
	return provider.CreateToken(inst)
}

// ours reports whether the VM was made for this instance: by its create
// token, or by a controller reference to the instance.
func ours(vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) bool {
	if vm.Annotations[CreateTokenAnnotation] == token(inst) {
		return true
	}
	ref := metav1.GetControllerOf(vm)
	return ref != nil && ref.UID == inst.UID && inst.UID != ""
}

// getVM returns the instance's VM, or an error wrapping provider.ErrNotFound
// when there is none or the VM of that name belongs to something else.
func (p *Provider) getVM(ctx context.Context, inst *computev1alpha1.Instance) (*kubevirtv1.VirtualMachine, error) {
	vm := &kubevirtv1.VirtualMachine{}
	err := p.client.Get(ctx, client.ObjectKeyFromObject(inst), vm)
	if apierrors.IsNotFound(err) && p.confirmNotFound {
		// A cache that has not seen a VM made a moment ago must not make the
		// machine look lost: confirm with the API server.
		err = p.reader.Get(ctx, client.ObjectKeyFromObject(inst), vm)
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("VirtualMachine %s/%s: %w", inst.Namespace, inst.Name, provider.ErrNotFound)
		}
		return nil, kubevirtError("get the VirtualMachine", err)
	}
	if !ours(vm, inst) {
		return vm, fmt.Errorf("VirtualMachine %s/%s belongs to another instance: %w", inst.Namespace, inst.Name, provider.ErrNotFound)
	}
	return vm, nil
}

// kubevirtError wraps err, explaining a missing KubeVirt or CDI API.
func kubevirtError(what string, err error) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("failed to %s: is KubeVirt (and CDI) installed? %w", what, err)
	}
	return fmt.Errorf("failed to %s: %w", what, err)
}

// Observe implements provider.Provider.
func (p *Provider) Observe(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	vm, err := p.getVM(ctx, inst)
	if err != nil {
		return nil, err
	}
	return p.observe(ctx, inst, vm)
}

func (p *Provider) observe(ctx context.Context, inst *computev1alpha1.Instance, vm *kubevirtv1.VirtualMachine) (*provider.Machine, error) {
	o := observation{vm: vm}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	switch err := p.client.Get(ctx, client.ObjectKeyFromObject(vm), vmi); {
	case err == nil:
		o.vmi = vmi
	case !apierrors.IsNotFound(err):
		return nil, kubevirtError("get the VirtualMachineInstance", err)
	}
	if o.vmi != nil && !powerRequestFor(vm, o.vmi) {
		vm = vm.DeepCopy()
		delete(vm.Annotations, PowerRequestAnnotation)
		o.vm = vm
	}
	switch vm.Status.PrintableStatus {
	case kubevirtv1.VirtualMachineStatusProvisioning, kubevirtv1.VirtualMachineStatusWaitingForVolumeBinding, kubevirtv1.VirtualMachineStatusDataVolumeError:
		for _, t := range vm.Spec.DataVolumeTemplates {
			dv := cdiv1beta1.DataVolume{}
			err := p.client.Get(ctx, types.NamespacedName{Namespace: vm.Namespace, Name: t.Name}, &dv)
			switch {
			case err == nil:
				o.dvs = append(o.dvs, dv)
			case !apierrors.IsNotFound(err):
				return nil, kubevirtError("get DataVolume "+t.Name, err)
			}
		}
	}
	return machineFrom(inst, o)
}

// Create implements provider.Provider. The VM is named like the instance and
// carries its create token, so a second call finds the first call's VM.
func (p *Provider) Create(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	vm, err := p.getVM(ctx, inst)
	switch {
	case err == nil:
		return p.observe(ctx, inst, vm)
	case vm != nil:
		return nil, provider.Permanent(ReasonMachineNameTaken, "a VirtualMachine named %s/%s already exists and was not made for this instance", inst.Namespace, inst.Name)
	case !errors.Is(err, provider.ErrNotFound):
		return nil, err
	}
	want := inst.DeepCopy()
	want.Status.Machine.CreateToken = token(inst)
	vm, err = BuildVirtualMachine(want, p.catalog)
	if err != nil {
		return nil, err
	}
	if err := p.checkInstancetype(ctx, inst, vm.Spec.Instancetype); err != nil {
		return nil, err
	}
	data, err := CloudInit(want, p.catalog)
	if err != nil {
		return nil, err
	}
	// The Secret first: a VM never waits for cloud-init data that a crash kept from being written.
	if err := p.applySecret(ctx, inst, data, instanceOwner(inst)); err != nil {
		return nil, err
	}
	if err := p.client.Create(ctx, vm); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			// KubeVirt's admission webhooks (or the CRD's schema) refuse the VM.
			return nil, provider.Permanent(ReasonRejectedByKubeVirt, "KubeVirt refused the VirtualMachine: %v", err)
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, kubevirtError("create the VirtualMachine", err)
		}
		existing, getErr := p.getVM(ctx, inst)
		if getErr != nil {
			if existing != nil {
				return nil, provider.Permanent(ReasonMachineNameTaken, "a VirtualMachine named %s/%s already exists and was not made for this instance", inst.Namespace, inst.Name)
			}
			return nil, getErr
		}
		vm = existing
	}
	if err := p.applySecret(ctx, inst, data, instanceOwner(inst), vmOwner(vm)); err != nil {
		return nil, err
	}
	ctrl.LoggerFrom(ctx).V(1).Info("created the VirtualMachine", "virtualMachine", inst.Namespace+"/"+inst.Name)
	return machineFrom(inst, observation{vm: vm})
}

// applySecret writes the cloud-init Secret with these owners: a guarded
// patch, or a create when there is none. It never reads Secrets, so the
// manager needs no get, list or watch on them.
func (p *Provider) applySecret(ctx context.Context, inst *computev1alpha1.Instance, data *CloudInitData, owners ...metav1.OwnerReference) error {
	want := BuildCloudInitSecret(inst, data)
	want.OwnerReferences = owners
	var err error
	for range 2 {
		err = p.patchOwnSecret(ctx, inst,
			jsonPatchOp{Op: "add", Path: "/metadata/ownerReferences", Value: owners},
			jsonPatchOp{Op: "add", Path: "/data", Value: want.Data})
		if !apierrors.IsNotFound(err) {
			break
		}
		if err = p.client.Create(ctx, want.DeepCopy()); !apierrors.IsAlreadyExists(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("failed to write the cloud-init Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patchOwnSecret applies a JSON patch to the instance's cloud-init Secret
// only if the Secret carries the instance's label: the patch's first
// operation tests it on the server, so a Secret of that name that is not
// the provider's is never overwritten, and never read. Such a Secret is a
// PermanentError.
func (p *Provider) patchOwnSecret(ctx context.Context, inst *computev1alpha1.Instance, ops ...jsonPatchOp) error {
	guard := jsonPatchOp{Op: "test", Path: "/metadata/labels/" + strings.ReplaceAll(strings.ReplaceAll(InstanceLabel, "~", "~0"), "/", "~1"), Value: inst.Name}
	body, err := json.Marshal(append([]jsonPatchOp{guard}, ops...))
	if err != nil {
		return fmt.Errorf("failed to encode a patch of the cloud-init Secret: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: CloudInitSecretName(inst), Namespace: inst.Namespace}}
	err = p.client.Patch(ctx, secret, client.RawPatch(types.JSONPatchType, body))
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return provider.Permanent(ReasonCloudInitSecretTaken, "a Secret named %s/%s exists and was not made for this instance (it lacks the label %s=%s): %v",
			inst.Namespace, secret.Name, InstanceLabel, inst.Name, err)
	}
	return err
}

// checkInstancetype refuses an instance type whose KubeVirt instancetype does
// not exist; KubeVirt's admission webhook would refuse the VM anyway, with a
// less helpful message.
func (p *Provider) checkInstancetype(ctx context.Context, inst *computev1alpha1.Instance, m *kubevirtv1.InstancetypeMatcher) error {
	if m == nil {
		return nil
	}
	var obj client.Object
	key := types.NamespacedName{Name: m.Name}
	if m.Kind == KindInstancetype {
		obj, key.Namespace = &instancetypev1beta1.VirtualMachineInstancetype{}, inst.Namespace
	} else {
		obj = &instancetypev1beta1.VirtualMachineClusterInstancetype{}
	}
	if err := p.client.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return provider.Permanent(ReasonUnknownInstanceType, "instance type %s: there is no %s %q and the KubeVirt catalog has no entry for it", inst.Spec.Type, m.Kind, m.Name)
		}
		return kubevirtError("get "+m.Kind+" "+m.Name, err)
	}
	return nil
}

// Update implements provider.Provider: it writes the cloud-init data made
// from instanceMetadata into the Secret and its hash into the VM's template.
// KubeVirt applies it at the guest's next boot; until then Observe's message
// says so.
func (p *Provider) Update(ctx context.Context, inst *computev1alpha1.Instance) error {
	vm, err := p.getVM(ctx, inst)
	if err != nil {
		return err
	}
	data, err := CloudInit(inst, p.catalog)
	if err != nil {
		return err
	}
	hash := data.Hash()
	if vm.Spec.Template == nil || vm.Spec.Template.ObjectMeta.Annotations[MetadataHashAnnotation] == hash {
		return nil
	}
	owners := []metav1.OwnerReference{vmOwner(vm)}
	if ref := metav1.GetControllerOf(vm); ref != nil && ref.UID == inst.UID {
		owners = append([]metav1.OwnerReference{instanceOwner(inst)}, owners...)
	}
	if err := p.applySecret(ctx, inst, data, owners...); err != nil {
		return err
	}
	patch := client.MergeFromWithOptions(vm.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if vm.Spec.Template.ObjectMeta.Annotations == nil {
		vm.Spec.Template.ObjectMeta.Annotations = map[string]string{}
	}
	vm.Spec.Template.ObjectMeta.Annotations[MetadataHashAnnotation] = hash
	if err := p.client.Patch(ctx, vm, patch); err != nil {
		return kubevirtError("record the cloud-init data's hash on the VirtualMachine", err)
	}
	return nil
}

// powerRequest is the value of PowerRequestAnnotation: the action and the
// UID of the VMI it was made for, so that a request outlives neither.
func powerRequest(action provider.PowerAction, vmi *kubevirtv1.VirtualMachineInstance) string {
	return string(action) + "/" + string(vmi.UID)
}

// powerRequestFor reports whether the VM's pending power request was made
// for this VMI; Observe ignores one made for an earlier VMI.
func powerRequestFor(vm *kubevirtv1.VirtualMachine, vmi *kubevirtv1.VirtualMachineInstance) bool {
	_, uid, ok := strings.Cut(vm.Annotations[PowerRequestAnnotation], "/")
	return ok && uid == string(vmi.UID)
}

// SetPower implements provider.Provider: Start and Stop set the runStrategy
// (Always, Halted); Suspend and Resume pause and unpause the VMI.
func (p *Provider) SetPower(ctx context.Context, inst *computev1alpha1.Instance, action provider.PowerAction) error {
	vm, err := p.getVM(ctx, inst)
	if err != nil {
		return err
	}
	switch action {
	case provider.PowerStart:
		return p.patchVM(ctx, vm, kubevirtv1.RunStrategyAlways, "")
	case provider.PowerStop:
		return p.patchVM(ctx, vm, kubevirtv1.RunStrategyHalted, "")
	case provider.PowerSuspend, provider.PowerResume:
	default:
		return fmt.Errorf("unknown power action %q", action)
	}
	if p.pauser == nil {
		return provider.Permanent(ReasonSuspendNotSupported, "this operator was started without access to KubeVirt's pause subresource")
	}
	vmi := &kubevirtv1.VirtualMachineInstance{}
	if err := p.client.Get(ctx, client.ObjectKeyFromObject(vm), vmi); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to %s: VirtualMachine %s/%s has no running guest", strings.ToLower(string(action)), vm.Namespace, vm.Name)
		}
		return kubevirtError("get the VirtualMachineInstance", err)
	}
	paused := vmiCondition(vmi, kubevirtv1.VirtualMachineInstancePaused) == corev1.ConditionTrue
	runStrategy := ptr.Deref(vm.Spec.RunStrategy, kubevirtv1.RunStrategyAlways)
	if action == provider.PowerSuspend {
		if paused {
			return nil
		}
		if vmi.Status.Phase != kubevirtv1.Running {
			return fmt.Errorf("failed to suspend: the guest is %s, not Running", vmi.Status.Phase)
		}
		if err := p.patchVM(ctx, vm, runStrategy, powerRequest(provider.PowerSuspend, vmi)); err != nil {
			return err
		}
		if err := p.pauser.Pause(ctx, vmi.Namespace, vmi.Name); err != nil {
			return fmt.Errorf("failed to pause VirtualMachineInstance %s/%s: %w", vmi.Namespace, vmi.Name, err)
		}
		return nil
	}
	if !paused {
		return p.patchVM(ctx, vm, runStrategy, "")
	}
	if err := p.patchVM(ctx, vm, runStrategy, powerRequest(provider.PowerResume, vmi)); err != nil {
		return err
	}
	if err := p.pauser.Unpause(ctx, vmi.Namespace, vmi.Name); err != nil {
		return fmt.Errorf("failed to unpause VirtualMachineInstance %s/%s: %w", vmi.Namespace, vmi.Name, err)
	}
	return nil
}

// patchVM sets the VM's runStrategy and power request ("" removes it),
// writing nothing when both already hold.
func (p *Provider) patchVM(ctx context.Context, vm *kubevirtv1.VirtualMachine, rs kubevirtv1.VirtualMachineRunStrategy, request string) error {
	if ptr.Deref(vm.Spec.RunStrategy, "") == rs && vm.Annotations[PowerRequestAnnotation] == request {
		return nil
	}
	patch := client.MergeFrom(vm.DeepCopy())
	vm.Spec.RunStrategy = ptr.To(rs)
	vm.Spec.Running = nil
	if request == "" {
		delete(vm.Annotations, PowerRequestAnnotation)
	} else {
		if vm.Annotations == nil {
			vm.Annotations = map[string]string{}
		}
		vm.Annotations[PowerRequestAnnotation] = request
	}
	if err := p.client.Patch(ctx, vm, patch); err != nil {
		return kubevirtError("patch the VirtualMachine", err)
	}
	return nil
}

// Delete implements provider.Provider. KubeVirt stops the guest and removes
// the VMI, and garbage collection removes the DataVolumes the VM owns.
func (p *Provider) Delete(ctx context.Context, inst *computev1alpha1.Instance) error {
	vm, err := p.getVM(ctx, inst)
	if err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			return nil
		}
		return err
	}
	if vm.DeletionTimestamp != nil {
		return nil
	}
	err = p.client.Delete(ctx, vm,
		client.Preconditions{UID: &vm.UID},
		client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return kubevirtError("delete the VirtualMachine", err)
	}
	return nil
}

// Release implements provider.Releaser: it drops the Instance's owner
// reference from the VM, so that garbage collection leaves the machine
// running when an Instance with deletionPolicy Orphan goes.
func (p *Provider) Release(ctx context.Context, inst *computev1alpha1.Instance) error {
	vm, err := p.getVM(ctx, inst)
	if err != nil {
		if errors.Is(err, provider.ErrNotFound) {
			return nil
		}
		return err
	}
	// The cloud-init Secret stays with the VM alone.
	err = p.patchOwnSecret(ctx, inst, jsonPatchOp{Op: "add", Path: "/metadata/ownerReferences", Value: []metav1.OwnerReference{vmOwner(vm)}})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to release the cloud-init Secret: %w", err)
	}
	kept := vm.OwnerReferences[:0:0]
	for _, ref := range vm.OwnerReferences {
		if ref.UID != inst.UID {
			kept = append(kept, ref)
		}
	}
	if len(kept) == len(vm.OwnerReferences) {
		return nil
	}
	patch := client.MergeFromWithOptions(vm.DeepCopy(), client.MergeFromWithOptimisticLock{})
	vm.OwnerReferences = kept
	if err := p.client.Patch(ctx, vm, patch); err != nil {
		return kubevirtError("release the VirtualMachine", err)
	}
	return nil
}
