package kubevirt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	cdiv1beta1 "kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1"
	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// Labels and annotations the provider puts on the objects it makes.
const (
	// InstanceLabel on the VM and its template names the Instance.
	InstanceLabel = "compute.k0rdent.ai/instance"
	// CreateTokenAnnotation on the VM holds the create token of the Instance
	// that made it: Create and Observe recognise their VM by it.
	CreateTokenAnnotation = "compute.k0rdent.ai/create-token"
	// MetadataHashAnnotation on the VM template (and so on each VMI KubeVirt
	// starts from it) is the hash of the cloud-init data in the Secret, to
	// tell a running VMI that predates an instanceMetadata change.
	MetadataHashAnnotation = "compute.k0rdent.ai/metadata-hash"
	// PowerRequestAnnotation on the VM records a pending Suspend or Resume,
	// so that Observe reports SUSPENDING (or resuming) until the VMI's Paused
	// condition follows.
	PowerRequestAnnotation = "compute.k0rdent.ai/power-request"
)

// Names of the template's devices.
const (
	cloudInitVolume = "cloudinit"
	podNetwork      = "default"
)

// PermanentError reasons of this provider; docs/kubevirt.md says when each occurs.
const (
	ReasonUnknownInstanceType = "UnknownInstanceType"
	ReasonUnknownImage        = "UnknownImage"
	ReasonUnknownGPUType      = "UnknownGPUType"
	ReasonUnsupportedDisk     = "UnsupportedDisk"
	ReasonUnsupportedNetwork  = "UnsupportedNetwork"
	ReasonInvalidMetadata     = "InvalidInstanceMetadata"
	ReasonMachineNameTaken    = "MachineNameTaken"
	ReasonImageImportFailed   = "ImageImportFailed"
	ReasonRejectedByKubeVirt  = "RejectedByKubeVirt"
	// ReasonSuspendNotSupported: the provider was built without a Pauser.
	ReasonSuspendNotSupported = "SuspendNotSupported"
	// ReasonCloudInitSecretTaken: a Secret named <instance>-cloudinit exists
	// without the instance's label; the provider will not overwrite it.
	ReasonCloudInitSecretTaken = "CloudInitSecretTaken"
)

// diskName is the name of the spec.disks entry i in the VM's devices and volumes.
func diskName(i int) string { return fmt.Sprintf("disk-%d", i) }

// dataVolumeName is the DataVolume of the instance's disk i.
func dataVolumeName(inst *computev1alpha1.Instance, i int) string {
	return fmt.Sprintf("%s-disk-%d", inst.Name, i)
}

// nicName is the name of the spec.nics entry i in the VM's interfaces and networks.
func nicName(i int) string { return fmt.Sprintf("nic%d", i) }

// RunStrategy is the runStrategy for the instance's powerState. A suspended
// instance keeps a running VMI, paused through the pause subresource.
func RunStrategy(ps computev1alpha1.PowerState) kubevirtv1.VirtualMachineRunStrategy {
	if ps == computev1alpha1.PowerStateStopped {
		return kubevirtv1.RunStrategyHalted
	}
	return kubevirtv1.RunStrategyAlways
}

// BuildVirtualMachine makes the VirtualMachine for an Instance. It reads no
// API: an instancetype reference is checked by the provider before creating.
// A spec the catalog or KubeVirt cannot serve is a provider.PermanentError.
func BuildVirtualMachine(inst *computev1alpha1.Instance, cat *Catalog) (*kubevirtv1.VirtualMachine, error) {
	vmiSpec := kubevirtv1.VirtualMachineInstanceSpec{}
	vm := &kubevirtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{APIVersion: kubevirtv1.SchemeGroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        inst.Name,
			Namespace:   inst.Namespace,
			Labels:      map[string]string{InstanceLabel: inst.Name},
			Annotations: map[string]string{CreateTokenAnnotation: inst.Status.Machine.CreateToken},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         computev1alpha1.GroupVersion.String(),
				Kind:               "Instance",
				Name:               inst.Name,
				UID:                inst.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: ptr.To(RunStrategy(inst.Spec.PowerState)),
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{InstanceLabel: inst.Name}},
			},
		},
	}

	itype, ok := lookup(cat.InstanceTypes, inst.Spec.Type)
	switch {
	case !ok:
		vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Kind: KindClusterInstancetype, Name: computev1alpha1.TypeName(inst.Spec.Type)}
	case itype.Instancetype != "":
		kind := itype.Kind
		if kind == "" {
			kind = KindClusterInstancetype
		}
		vm.Spec.Instancetype = &kubevirtv1.InstancetypeMatcher{Kind: kind, Name: itype.Instancetype}
	default:
		mem, err := resource.ParseQuantity(itype.Memory)
		if err != nil {
			return nil, provider.Permanent(ReasonUnknownInstanceType, "instance type %s has invalid memory %q in the KubeVirt catalog", inst.Spec.Type, itype.Memory)
		}
		vmiSpec.Domain.CPU = &kubevirtv1.CPU{Cores: itype.CPU, Sockets: 1, Threads: 1}
		vmiSpec.Domain.Memory = &kubevirtv1.Memory{Guest: &mem}
	}

	if err := addDisks(vm, &vmiSpec, inst, cat); err != nil {
		return nil, err
	}
	if err := addNICs(&vmiSpec, inst, cat); err != nil {
		return nil, err
	}
	if err := addGPUs(&vmiSpec, inst, cat); err != nil {
		return nil, err
	}
	hostname := inst.EffectiveHostname()
	vmiSpec.Hostname = strings.SplitN(hostname, ".", 2)[0]

	cloudInit, err := CloudInit(inst, cat)
	if err != nil {
		return nil, err
	}
	source := &kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: &corev1.LocalObjectReference{Name: CloudInitSecretName(inst)}}
	if cloudInit.NetworkData != "" {
		source.NetworkDataSecretRef = &corev1.LocalObjectReference{Name: CloudInitSecretName(inst)}
	}
	vmiSpec.Domain.Devices.Disks = append(vmiSpec.Domain.Devices.Disks, kubevirtv1.Disk{
		Name:       cloudInitVolume,
		DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
	})
	vmiSpec.Volumes = append(vmiSpec.Volumes, kubevirtv1.Volume{
		Name:         cloudInitVolume,
		VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: source},
	})
	vm.Spec.Template.ObjectMeta.Annotations = map[string]string{MetadataHashAnnotation: cloudInit.Hash()}
	vm.Spec.Template.Spec = vmiSpec
	return vm, nil
}

// Keys of the cloud-init Secret, as KubeVirt reads a NoCloud secretRef.
const (
	UserDataKey    = "userdata"
	NetworkDataKey = "networkdata"
)

// CloudInitSecretName is the Secret that carries the instance's cloud-init
// data. KubeVirt refuses inline userData and networkData over 2 KiB, which
// instanceMetadata (up to 256 KiB a value) easily passes, so the data always
// goes in a Secret the VM's cloudInitNoCloud volume references.
func CloudInitSecretName(inst *computev1alpha1.Instance) string {
	return inst.Name + "-cloudinit"
}

// instanceOwner is the Instance as a (non-controller) owner of the Secret.
func instanceOwner(inst *computev1alpha1.Instance) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: computev1alpha1.GroupVersion.String(), Kind: "Instance", Name: inst.Name, UID: inst.UID}
}

// vmOwner is the VM as a (non-controller) owner of the Secret, which keeps
// the Secret while an orphaned VM lives.
func vmOwner(vm *kubevirtv1.VirtualMachine) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: kubevirtv1.SchemeGroupVersion.String(), Kind: "VirtualMachine", Name: vm.Name, UID: vm.UID}
}

// BuildCloudInitSecret is the Secret of the instance's cloud-init data,
// owned by the Instance (and, once it exists, by the VM: see Provider.Create).
func BuildCloudInitSecret(inst *computev1alpha1.Instance, data *CloudInitData) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            CloudInitSecretName(inst),
			Namespace:       inst.Namespace,
			Labels:          map[string]string{InstanceLabel: inst.Name},
			OwnerReferences: []metav1.OwnerReference{instanceOwner(inst)},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{UserDataKey: []byte(data.UserData)},
	}
	if data.NetworkData != "" {
		s.Data[NetworkDataKey] = []byte(data.NetworkData)
	}
	return s
}

// imageOrVolume splits a disk source URI into its kind (images, volumes,
// snapshots) and name.
func imageOrVolume(source string) (kind, name string) {
	parts := strings.Split(source, "/")
	if len(parts) < 2 {
		return "", ""
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

func bus(iface computev1alpha1.DiskInterface) kubevirtv1.DiskBus {
	if iface == computev1alpha1.DiskInterfaceSCSI {
		return kubevirtv1.DiskBusSCSI
	}
	// KubeVirt has no NVMe bus: NVME disks (and those with no interface) are virtio-blk.
	return kubevirtv1.DiskBusVirtio
}

func gib(n int32) resource.Quantity {
	return resource.MustParse(fmt.Sprintf("%dGi", n))
}

// addDisks adds each disk, the boot disk first with boot order 1.
func addDisks(vm *kubevirtv1.VirtualMachine, spec *kubevirtv1.VirtualMachineInstanceSpec, inst *computev1alpha1.Instance, cat *Catalog) error {
	order := make([]int, len(inst.Spec.Disks))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return inst.Spec.Disks[order[a]].Boot && !inst.Spec.Disks[order[b]].Boot
	})
	for _, i := range order {
		d := inst.Spec.Disks[i]
		disk := kubevirtv1.Disk{
			Name: diskName(i),
			DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{
				Bus:      bus(d.Interface),
				ReadOnly: d.Mode == computev1alpha1.DiskModeReadOnly,
			}},
		}
		if d.Boot {
			disk.BootOrder = ptr.To[uint](1)
		}
		volume := kubevirtv1.Volume{Name: diskName(i)}
		kind, name := imageOrVolume(d.Source)
		var image Image
		if kind == "images" {
			var ok bool
			if image, ok = lookup(cat.Images, d.Source); !ok {
				return provider.Permanent(ReasonUnknownImage, "image %s of disks[%d] is not in the KubeVirt image catalog", d.Source, i)
			}
		}
		size := d.SizeGb
		if size == 0 {
			size = image.SizeGb
		}

		if d.Type == computev1alpha1.DiskTypeTemporary {
			switch {
			case d.Source == "":
				volume.EmptyDisk = &kubevirtv1.EmptyDiskSource{Capacity: gib(size)}
			case kind == "images" && image.Registry != "":
				volume.ContainerDisk = &kubevirtv1.ContainerDiskSource{Image: strings.TrimPrefix(image.Registry, "docker://")}
			default:
				return provider.Permanent(ReasonUnsupportedDisk, "disks[%d] is TEMPORARY: KubeVirt makes temporary disks only empty or from a registry image, not from %s", i, d.Source)
			}
		} else {
			dvSpec := cdiv1beta1.DataVolumeSpec{Storage: &cdiv1beta1.StorageSpec{}}
			if cat.StorageClassName != "" {
				dvSpec.Storage.StorageClassName = ptr.To(cat.StorageClassName)
			}
			switch kind {
			case "images":
				if image.Registry != "" {
					dvSpec.Source = &cdiv1beta1.DataVolumeSource{Registry: &cdiv1beta1.DataVolumeSourceRegistry{URL: ptr.To(image.Registry)}}
				} else {
					dvSpec.Source = &cdiv1beta1.DataVolumeSource{HTTP: &cdiv1beta1.DataVolumeSourceHTTP{URL: image.HTTP}}
				}
			case "volumes":
				dvSpec.Source = &cdiv1beta1.DataVolumeSource{PVC: &cdiv1beta1.DataVolumeSourcePVC{Namespace: inst.Namespace, Name: name}}
			case "snapshots":
				dvSpec.Source = &cdiv1beta1.DataVolumeSource{Snapshot: &cdiv1beta1.DataVolumeSourceSnapshot{Namespace: inst.Namespace, Name: name}}
			default:
				dvSpec.Source = &cdiv1beta1.DataVolumeSource{Blank: &cdiv1beta1.DataVolumeBlankImage{}}
			}
			if size > 0 {
				dvSpec.Storage.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: gib(size)}
			} else if kind != "volumes" && kind != "snapshots" {
				// CDI sizes clones from their source, but an import or a blank disk needs a size.
				return provider.Permanent(ReasonUnsupportedDisk, "disks[%d] needs sizeGb: neither the disk nor the image catalog gives a size", i)
			}
			vm.Spec.DataVolumeTemplates = append(vm.Spec.DataVolumeTemplates, kubevirtv1.DataVolumeTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Name: dataVolumeName(inst, i), Labels: map[string]string{InstanceLabel: inst.Name}},
				Spec:       dvSpec,
			})
			volume.DataVolume = &kubevirtv1.DataVolumeSource{Name: dataVolumeName(inst, i)}
		}
		spec.Domain.Devices.Disks = append(spec.Domain.Devices.Disks, disk)
		spec.Volumes = append(spec.Volumes, volume)
	}
	return nil
}

// macAddress is a stable, locally administered unicast MAC for NIC i, so
// that cloud-init's network config can match the interface.
func macAddress(inst *computev1alpha1.Instance, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("mac/%s/%s/%s/%d", inst.Namespace, inst.Name, inst.UID, i)))
	sum[0] = sum[0]&0xfc | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4], sum[5])
}

// nics is spec.nics, or one NIC on the default network when it is empty.
func nics(inst *computev1alpha1.Instance) []computev1alpha1.NIC {
	if len(inst.Spec.NICs) == 0 {
		return []computev1alpha1.NIC{{}}
	}
	return inst.Spec.NICs
}

// addNICs puts the first NIC on the pod network (masquerade) and the others
// on bridged Multus networks.
func addNICs(spec *kubevirtv1.VirtualMachineInstanceSpec, inst *computev1alpha1.Instance, cat *Catalog) error {
	for i, n := range nics(inst) {
		iface := kubevirtv1.Interface{Name: nicName(i), MacAddress: macAddress(inst, i)}
		network := kubevirtv1.Network{Name: nicName(i)}
		if i == 0 {
			if n.IPv4Address != "" || n.IPv6Address != "" || n.VLAN != 0 {
				return provider.Permanent(ReasonUnsupportedNetwork, "nics[0] is on the cluster's pod network, whose addresses and VLAN the cluster assigns: leave its ipv4Address, ipv6Address and vlan empty")
			}
			iface.Masquerade = &kubevirtv1.InterfaceMasquerade{}
			network.Pod = &kubevirtv1.PodNetwork{}
		} else {
			if n.Network == "" {
				return provider.Permanent(ReasonUnsupportedNetwork, "nics[%d] names no network: only nics[0] may use the default (pod) network", i)
			}
			netEntry, _ := lookup(cat.Networks, n.Network)
			if n.VLAN != 0 && !netEntry.GuestVLANs {
				return provider.Permanent(ReasonUnsupportedNetwork, "nics[%d] asks for VLAN %d, but network %s does not carry guest VLANs (see the KubeVirt catalog's networks)", i, n.VLAN, n.Network)
			}
			nad := netEntry.NetworkName
			if nad == "" {
				nad = computev1alpha1.TypeName(n.Network)
			}
			iface.Bridge = &kubevirtv1.InterfaceBridge{}
			network.Multus = &kubevirtv1.MultusNetwork{NetworkName: nad}
		}
		spec.Domain.Devices.Interfaces = append(spec.Domain.Devices.Interfaces, iface)
		spec.Networks = append(spec.Networks, network)
	}
	return nil
}

// addGPUs adds count devices of each GPU type.
func addGPUs(spec *kubevirtv1.VirtualMachineInstanceSpec, inst *computev1alpha1.Instance, cat *Catalog) error {
	n := 0
	for i, g := range inst.Spec.GPUs {
		t, ok := lookup(cat.GPUTypes, g.Type)
		if !ok {
			return provider.Permanent(ReasonUnknownGPUType, "GPU type %s of gpus[%d] is not in the KubeVirt GPU catalog", g.Type, i)
		}
		for range g.Count {
			spec.Domain.Devices.GPUs = append(spec.Domain.Devices.GPUs, kubevirtv1.GPU{Name: fmt.Sprintf("gpu%d", n), DeviceName: t.DeviceName})
			n++
		}
	}
	return nil
}

// cloudConfig is the part of cloud-init's #cloud-config the provider writes.
type cloudConfig struct {
	Hostname         string          `json:"hostname"`
	FQDN             string          `json:"fqdn,omitempty"`
	PreserveHostname bool            `json:"preserve_hostname"`
	Users            []cloudUser     `json:"users,omitempty"`
	WriteFiles       []cloudInitFile `json:"write_files,omitempty"`
}

type cloudUser struct {
	Name              string   `json:"name"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	Sudo              string   `json:"sudo"`
	Shell             string   `json:"shell"`
}

type cloudInitFile struct {
	Path        string `json:"path"`
	Content     string `json:"content"`
	Permissions string `json:"permissions"`
}

// MetadataDir is where the guest finds each instanceMetadata key but
// ssh-keys, as a file named like the key.
const MetadataDir = "/run/k0rdent/metadata"

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// sshUsers parses ssh-keys lines ("user:ssh-ed25519 AAAA... comment") into
// users in first-seen order.
func sshUsers(value string) ([]cloudUser, error) {
	var users []cloudUser
	index := map[string]int{}
	for n, line := range strings.Split(value, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		user, key, ok := strings.Cut(line, ":")
		if !ok || !userRE.MatchString(user) || len(strings.Fields(key)) < 2 {
			return nil, provider.Permanent(ReasonInvalidMetadata, "ssh-keys line %d is not \"user:ssh-<type> <key> [comment]\"", n+1)
		}
		i, seen := index[user]
		if !seen {
			i = len(users)
			index[user] = i
			users = append(users, cloudUser{Name: user, Sudo: "ALL=(ALL) NOPASSWD:ALL", Shell: "/bin/bash"})
		}
		users[i].SSHAuthorizedKeys = append(users[i].SSHAuthorizedKeys, strings.TrimSpace(key))
	}
	return users, nil
}

// netplan is cloud-init's network config version 2, the fields the provider writes.
type netplan struct {
	Version   int                        `json:"version"`
	Ethernets map[string]netplanEthernet `json:"ethernets"`
	VLANs     map[string]netplanVLAN     `json:"vlans,omitempty"`
}

type netplanMatch struct {
	MACAddress string `json:"macaddress"`
}

type netplanEthernet struct {
	Match     netplanMatch `json:"match"`
	SetName   string       `json:"set-name"`
	DHCP4     bool         `json:"dhcp4"`
	DHCP6     bool         `json:"dhcp6,omitempty"`
	Addresses []string     `json:"addresses,omitempty"`
	Gateway4  string       `json:"gateway4,omitempty"`
	Gateway6  string       `json:"gateway6,omitempty"`
}

type netplanVLAN struct {
	ID        int32    `json:"id"`
	Link      string   `json:"link"`
	DHCP4     bool     `json:"dhcp4"`
	Addresses []string `json:"addresses,omitempty"`
	Gateway4  string   `json:"gateway4,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
}

// networkData is the cloud-init network config for static addresses and
// guest VLANs, or "" when every NIC uses DHCP untagged.
func networkData(inst *computev1alpha1.Instance, cat *Catalog) (string, error) {
	needed := false
	for _, n := range inst.Spec.NICs {
		needed = needed || n.IPv4Address != "" || n.IPv6Address != "" || n.VLAN != 0
	}
	if !needed {
		return "", nil
	}
	np := netplan{Version: 2, Ethernets: map[string]netplanEthernet{}}
	for i, n := range nics(inst) {
		name := nicName(i)
		var addrs []string
		sub, _ := lookup(cat.Subnets, n.Subnet)
		if n.IPv4Address != "" {
			a, err := netip.ParseAddr(n.IPv4Address)
			if err != nil || !a.Is4() {
				return "", provider.Permanent(ReasonUnsupportedNetwork, "nics[%d].ipv4Address %q is not an IPv4 address", i, n.IPv4Address)
			}
			addrs = append(addrs, fmt.Sprintf("%s/%d", a, orDefault(sub.IPv4PrefixLength, 24)))
		}
		if n.IPv6Address != "" {
			a, err := netip.ParseAddr(n.IPv6Address)
			if err != nil || !a.Is6() {
				return "", provider.Permanent(ReasonUnsupportedNetwork, "nics[%d].ipv6Address %q is not an IPv6 address", i, n.IPv6Address)
			}
			addrs = append(addrs, fmt.Sprintf("%s/%d", a, orDefault(sub.IPv6PrefixLength, 64)))
		}
		eth := netplanEthernet{Match: netplanMatch{MACAddress: macAddress(inst, i)}, SetName: name}
		if n.VLAN != 0 {
			if np.VLANs == nil {
				np.VLANs = map[string]netplanVLAN{}
			}
			np.VLANs[fmt.Sprintf("%s.%d", name, n.VLAN)] = netplanVLAN{
				ID: n.VLAN, Link: name, DHCP4: n.IPv4Address == "", Addresses: addrs,
				Gateway4: gatewayIf(n.IPv4Address, sub.Gateway4), Gateway6: gatewayIf(n.IPv6Address, sub.Gateway6),
			}
		} else {
			eth.DHCP4 = n.IPv4Address == ""
			eth.Addresses = addrs
			eth.Gateway4 = gatewayIf(n.IPv4Address, sub.Gateway4)
			eth.Gateway6 = gatewayIf(n.IPv6Address, sub.Gateway6)
		}
		np.Ethernets[name] = eth
	}
	out, err := yaml.Marshal(np)
	if err != nil {
		return "", fmt.Errorf("failed to render the network config: %w", err)
	}
	return string(out), nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func gatewayIf(addr, gw string) string {
	if addr == "" {
		return ""
	}
	return gw
}

// CloudInitData is the NoCloud user data (#cloud-config) and network
// config (version 2, empty when DHCP on every NIC will do).
type CloudInitData struct {
	UserData    string
	NetworkData string
}

// Hash identifies the data; the VM template carries it so that a VMI booted
// from older data can be told.
func (d *CloudInitData) Hash() string {
	sum := sha256.Sum256([]byte(d.UserData + "\x00" + d.NetworkData))
	return hex.EncodeToString(sum[:8])
}

// CloudInit is the NoCloud data for the instance: host name, ssh-keys users,
// the other metadata keys as files under MetadataDir, and network config for
// static addresses and VLANs.
func CloudInit(inst *computev1alpha1.Instance, cat *Catalog) (*CloudInitData, error) {
	hostname := inst.EffectiveHostname()
	cc := cloudConfig{Hostname: strings.SplitN(hostname, ".", 2)[0]}
	if strings.Contains(hostname, ".") {
		cc.FQDN = hostname
	}
	for _, item := range inst.Spec.InstanceMetadata {
		if item.Key == "ssh-keys" {
			users, err := sshUsers(item.Value)
			if err != nil {
				return nil, err
			}
			cc.Users = users
			continue
		}
		cc.WriteFiles = append(cc.WriteFiles, cloudInitFile{Path: MetadataDir + "/" + item.Key, Content: item.Value, Permissions: "0640"})
	}
	body, err := yaml.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("failed to render the cloud-config: %w", err)
	}
	nd, err := networkData(inst, cat)
	if err != nil {
		return nil, err
	}
	return &CloudInitData{UserData: "#cloud-config\n" + string(body), NetworkData: nd}, nil
}
