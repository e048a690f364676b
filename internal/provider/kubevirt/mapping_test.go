package kubevirt

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// sampleInstance is config/samples/compute_v1alpha1_instance.yaml as the API
// server would hold it: UID set, the defaults applied, the token recorded.
func sampleInstance(t *testing.T) *computev1alpha1.Instance {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", "compute_v1alpha1_instance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inst := &computev1alpha1.Instance{}
	if err := yaml.UnmarshalStrict(data, inst); err != nil {
		t.Fatal(err)
	}
	inst.UID = types.UID("07cc67f4-45d6-494b-adac-09b5cbc7e2b5")
	inst.Spec.PowerState = computev1alpha1.PowerStateRunning
	inst.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyDelete
	inst.Status.Machine.CreateToken = provider.CreateToken(inst)
	return inst
}

func TestBuildVirtualMachineFromTheSample(t *testing.T) {
	inst := sampleInstance(t)
	vm, err := BuildVirtualMachine(inst, DefaultCatalog())
	if err != nil {
		t.Fatalf("BuildVirtualMachine: %v", err)
	}
	check := func(field string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}

	check("apiVersion", vm.APIVersion, "kubevirt.io/v1")
	check("kind", vm.Kind, "VirtualMachine")
	check("metadata.name", vm.Name, "instance-d4e5f6")
	check("metadata.namespace", vm.Namespace, "us-texas-1-project-x9y8z7")
	check("label "+InstanceLabel, vm.Labels[InstanceLabel], "instance-d4e5f6")
	check("annotation "+CreateTokenAnnotation, vm.Annotations[CreateTokenAnnotation], inst.Status.Machine.CreateToken)
	if len(vm.OwnerReferences) != 1 {
		t.Fatalf("ownerReferences = %v, want one", vm.OwnerReferences)
	}
	ref := vm.OwnerReferences[0]
	check("owner apiVersion", ref.APIVersion, "compute.k0rdent.ai/v1alpha1")
	check("owner kind", ref.Kind, "Instance")
	check("owner name", ref.Name, "instance-d4e5f6")
	check("owner uid", ref.UID, inst.UID)
	check("owner controller", *ref.Controller, true)
	check("owner blockOwnerDeletion", *ref.BlockOwnerDeletion, true)

	check("spec.runStrategy", *vm.Spec.RunStrategy, kubevirtv1.RunStrategyAlways)
	if vm.Spec.Running != nil {
		t.Errorf("spec.running = %v, want unset (runStrategy only)", *vm.Spec.Running)
	}
	if vm.Spec.Instancetype != nil {
		t.Errorf("spec.instancetype = %+v, want none: the default catalog gives g1-xlarge explicit CPU and memory", vm.Spec.Instancetype)
	}

	// The boot disk: one DataVolume importing the catalog's registry image.
	if len(vm.Spec.DataVolumeTemplates) != 1 {
		t.Fatalf("dataVolumeTemplates = %d, want 1", len(vm.Spec.DataVolumeTemplates))
	}
	dvt := vm.Spec.DataVolumeTemplates[0]
	check("dataVolumeTemplates[0].metadata.name", dvt.Name, "instance-d4e5f6-disk-0")
	check("dataVolumeTemplates[0].metadata.labels", dvt.Labels[InstanceLabel], "instance-d4e5f6")
	if dvt.Spec.Source == nil || dvt.Spec.Source.Registry == nil || dvt.Spec.Source.Registry.URL == nil {
		t.Fatalf("dataVolumeTemplates[0].spec.source = %+v, want a registry source", dvt.Spec.Source)
	}
	check("dataVolumeTemplates[0].spec.source.registry.url", *dvt.Spec.Source.Registry.URL, "docker://quay.io/containerdisks/ubuntu:24.04")
	check("dataVolumeTemplates[0].spec.source.http", dvt.Spec.Source.HTTP == nil, true)
	storage := dvt.Spec.Storage.Resources.Requests["storage"]
	check("dataVolumeTemplates[0].spec.storage.resources.requests.storage", storage.String(), "100Gi")
	check("dataVolumeTemplates[0].spec.storage.storageClassName", dvt.Spec.Storage.StorageClassName == nil, true)
	check("dataVolumeTemplates[0].spec.pvc", dvt.Spec.PVC == nil, true)

	tmpl := vm.Spec.Template
	check("template label "+InstanceLabel, tmpl.ObjectMeta.Labels[InstanceLabel], "instance-d4e5f6")
	if tmpl.ObjectMeta.Annotations[MetadataHashAnnotation] == "" {
		t.Errorf("template annotation %s is empty", MetadataHashAnnotation)
	}
	spec := tmpl.Spec
	check("hostname", spec.Hostname, "instance-d4e5f6")
	check("domain.cpu.cores", spec.Domain.CPU.Cores, uint32(8))
	check("domain.cpu.sockets", spec.Domain.CPU.Sockets, uint32(1))
	check("domain.cpu.threads", spec.Domain.CPU.Threads, uint32(1))
	check("domain.memory.guest", spec.Domain.Memory.Guest.Cmp(resource.MustParse("64Gi")), 0)

	disks := spec.Domain.Devices.Disks
	if len(disks) != 2 {
		t.Fatalf("domain.devices.disks = %+v, want the boot disk and cloud-init", disks)
	}
	check("disks[0].name", disks[0].Name, "disk-0")
	check("disks[0].disk.bus", disks[0].Disk.Bus, kubevirtv1.DiskBusSCSI)
	check("disks[0].disk.readonly", disks[0].Disk.ReadOnly, false)
	check("disks[0].bootOrder", *disks[0].BootOrder, uint(1))
	check("disks[1].name", disks[1].Name, "cloudinit")
	check("disks[1].disk.bus", disks[1].Disk.Bus, kubevirtv1.DiskBusVirtio)
	check("disks[1].bootOrder", disks[1].BootOrder == nil, true)

	vols := spec.Volumes
	if len(vols) != 2 {
		t.Fatalf("volumes = %+v, want 2", vols)
	}
	check("volumes[0].name", vols[0].Name, "disk-0")
	check("volumes[0].dataVolume.name", vols[0].DataVolume.Name, "instance-d4e5f6-disk-0")
	check("volumes[1].name", vols[1].Name, "cloudinit")
	ci := vols[1].CloudInitNoCloud
	if ci == nil || ci.UserDataSecretRef == nil {
		t.Fatalf("volumes[1].cloudInitNoCloud = %+v, want a secretRef", ci)
	}
	check("cloudInitNoCloud.secretRef.name", ci.UserDataSecretRef.Name, "instance-d4e5f6-cloudinit")
	check("cloudInitNoCloud.userData", ci.UserData, "")
	check("cloudInitNoCloud.networkDataSecretRef", ci.NetworkDataSecretRef == nil, true)
	check("cloudInitNoCloud.networkData", ci.NetworkData, "")

	data, err := CloudInit(inst, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	check("template annotation "+MetadataHashAnnotation, tmpl.ObjectMeta.Annotations[MetadataHashAnnotation], data.Hash())
	secret := BuildCloudInitSecret(inst, data)
	check("secret name", secret.Name, "instance-d4e5f6-cloudinit")
	check("secret namespace", secret.Namespace, "us-texas-1-project-x9y8z7")
	check("secret type", secret.Type, corev1.SecretTypeOpaque)
	check("secret label "+InstanceLabel, secret.Labels[InstanceLabel], "instance-d4e5f6")
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != inst.UID || secret.OwnerReferences[0].Controller != nil {
		t.Errorf("secret ownerReferences = %+v, want the Instance, not as controller", secret.OwnerReferences)
	}
	if _, ok := secret.Data[NetworkDataKey]; ok {
		t.Error("secret has networkdata without static addresses or VLANs")
	}
	userData := string(secret.Data[UserDataKey])
	if !strings.HasPrefix(userData, "#cloud-config\n") {
		t.Errorf("userdata does not start with #cloud-config: %q", userData)
	}
	var cc map[string]any
	if err := yaml.Unmarshal([]byte(userData), &cc); err != nil {
		t.Fatalf("userData is not YAML: %v", err)
	}
	wantCC := map[string]any{
		"hostname":          "instance-d4e5f6",
		"preserve_hostname": false,
		"users": []any{
			map[string]any{
				"name":                "admin",
				"shell":               "/bin/bash",
				"sudo":                "ALL=(ALL) NOPASSWD:ALL",
				"ssh_authorized_keys": []any{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJeaD1heScpzmiypsUSb0T3lkmg2d/onGkPviaZ2Rtgc admin@hostname"},
			},
			map[string]any{
				"name":                "guest",
				"shell":               "/bin/bash",
				"sudo":                "ALL=(ALL) NOPASSWD:ALL",
				"ssh_authorized_keys": []any{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYgtXDI3X7eELjQ+D+qbJGqgfa+OqvY7jo/EuLv1ECd guest@hostname"},
			},
		},
	}
	if !reflect.DeepEqual(cc, wantCC) {
		t.Errorf("userData = %#v\nwant %#v", cc, wantCC)
	}

	ifaces := spec.Domain.Devices.Interfaces
	if len(ifaces) != 1 || len(spec.Networks) != 1 {
		t.Fatalf("interfaces = %+v, networks = %+v, want one each", ifaces, spec.Networks)
	}
	check("interfaces[0].name", ifaces[0].Name, "nic0")
	check("interfaces[0].masquerade", ifaces[0].Masquerade != nil, true)
	check("interfaces[0].bridge", ifaces[0].Bridge == nil, true)
	check("interfaces[0].macAddress", ifaces[0].MacAddress, macAddress(inst, 0))
	if mac, err := net.ParseMAC(ifaces[0].MacAddress); err != nil || mac[0]&0x02 == 0 || mac[0]&0x01 != 0 {
		t.Errorf("interfaces[0].macAddress %s is not a locally administered unicast MAC (%v)", ifaces[0].MacAddress, err)
	}
	check("networks[0].name", spec.Networks[0].Name, "nic0")
	check("networks[0].pod", spec.Networks[0].Pod != nil, true)
	check("networks[0].multus", spec.Networks[0].Multus == nil, true)

	gpus := spec.Domain.Devices.GPUs
	if len(gpus) != 1 {
		t.Fatalf("gpus = %+v, want 1", gpus)
	}
	check("gpus[0].name", gpus[0].Name, "gpu0")
	check("gpus[0].deviceName", gpus[0].DeviceName, "nvidia.com/GH100_H100_SXM5_80GB")
}

func TestBuildVirtualMachineVariants(t *testing.T) {
	const (
		region  = "/v1/regions/us-texas-1"
		project = region + "/projects/project-x9y8z7/compute"
	)
	base := func() *computev1alpha1.Instance {
		inst := sampleInstance(t)
		inst.Spec.GPUs = nil
		inst.Spec.NICs = nil
		return inst
	}
	cat := DefaultCatalog()
	cat.InstanceTypes["g1-custom"] = InstanceType{Instancetype: "u1.large"}
	cat.InstanceTypes["g1-ns"] = InstanceType{Instancetype: "team-type", Kind: KindInstancetype}
	cat.Images["debian-13"] = Image{HTTP: "https://cloud.debian.org/images/debian-13.qcow2"}
	cat.Networks = map[string]Network{"tagged": {NetworkName: "infra/trunk", GuestVLANs: true}}
	cat.Subnets = map[string]Subnet{"subnet-b": {IPv4PrefixLength: 22, Gateway4: "192.168.0.1"}}
	cat.StorageClassName = "fast"

	tests := []struct {
		name   string
		mutate func(*computev1alpha1.Instance)
		check  func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance)
		reason string // a PermanentError reason instead of a VM
	}{{
		name:   "powerState Stopped is runStrategy Halted",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped },
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			if *vm.Spec.RunStrategy != kubevirtv1.RunStrategyHalted {
				t.Errorf("runStrategy = %s", *vm.Spec.RunStrategy)
			}
		},
	}, {
		name:   "powerState Suspended starts the VM (then it is paused)",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateSuspended },
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			if *vm.Spec.RunStrategy != kubevirtv1.RunStrategyAlways {
				t.Errorf("runStrategy = %s", *vm.Spec.RunStrategy)
			}
		},
	}, {
		name:   "a type absent from the catalog references the cluster instancetype of its name",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.Type = region + "/zones/us1-a/instance-types/u1.medium" },
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			it := vm.Spec.Instancetype
			if it == nil || it.Kind != KindClusterInstancetype || it.Name != "u1.medium" {
				t.Errorf("instancetype = %+v", it)
			}
			if vm.Spec.Template.Spec.Domain.CPU != nil || vm.Spec.Template.Spec.Domain.Memory != nil {
				t.Error("domain.cpu/memory set beside an instancetype: KubeVirt refuses that")
			}
		},
	}, {
		name:   "a catalog instancetype reference",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.Type = region + "/zones/us1-a/instance-types/g1-custom" },
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			if it := vm.Spec.Instancetype; it == nil || it.Kind != KindClusterInstancetype || it.Name != "u1.large" {
				t.Errorf("instancetype = %+v", it)
			}
		},
	}, {
		name:   "a namespaced instancetype reference",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.Type = project + "/instance-types/g1-ns" },
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			if it := vm.Spec.Instancetype; it == nil || it.Kind != KindInstancetype || it.Name != "team-type" {
				t.Errorf("instancetype = %+v", it)
			}
		},
	}, {
		name: "disks: HTTP image, NVME read-only data disk from a volume, blank, temporary; the boot disk first",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Disks = []computev1alpha1.Disk{
				{Source: project + "/volumes/data-1", Interface: computev1alpha1.DiskInterfaceNVME, Mode: computev1alpha1.DiskModeReadOnly},
				{SizeGb: 50, Source: region + "/compute/images/debian-13", Boot: true},
				{SizeGb: 10},
				{SizeGb: 5, Type: computev1alpha1.DiskTypeTemporary},
				{Source: region + "/compute/images/ubuntu-24.04-20260202-3", Type: computev1alpha1.DiskTypeTemporary},
				{Source: project + "/snapshots/snap-1", SizeGb: 30},
			}
		},
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			disks := vm.Spec.Template.Spec.Domain.Devices.Disks
			var names []string
			for _, d := range disks {
				names = append(names, d.Name)
			}
			if got := strings.Join(names, ","); got != "disk-1,disk-0,disk-2,disk-3,disk-4,disk-5,cloudinit" {
				t.Errorf("disk order = %s", got)
			}
			if disks[0].BootOrder == nil || *disks[0].BootOrder != 1 {
				t.Error("the boot disk has no bootOrder 1")
			}
			if disks[1].Disk.Bus != kubevirtv1.DiskBusVirtio || !disks[1].Disk.ReadOnly || disks[1].BootOrder != nil {
				t.Errorf("NVME read-only disk = %+v", disks[1])
			}
			dvts := vm.Spec.DataVolumeTemplates
			if len(dvts) != 4 {
				t.Fatalf("dataVolumeTemplates = %d, want 4 (boot, volume clone, blank, snapshot)", len(dvts))
			}
			byName := map[string]kubevirtv1.DataVolumeTemplateSpec{}
			for _, d := range dvts {
				byName[d.Name] = d
				if d.Spec.Storage.StorageClassName == nil || *d.Spec.Storage.StorageClassName != "fast" {
					t.Errorf("%s storageClassName = %v", d.Name, d.Spec.Storage.StorageClassName)
				}
			}
			if src := byName["instance-d4e5f6-disk-1"].Spec.Source; src.HTTP == nil || src.HTTP.URL != "https://cloud.debian.org/images/debian-13.qcow2" {
				t.Errorf("boot disk source = %+v", src)
			}
			clone := byName["instance-d4e5f6-disk-0"]
			if src := clone.Spec.Source; src.PVC == nil || src.PVC.Name != "data-1" || src.PVC.Namespace != "us-texas-1-project-x9y8z7" {
				t.Errorf("volume disk source = %+v", src)
			}
			if _, sized := clone.Spec.Storage.Resources.Requests["storage"]; sized {
				t.Error("a clone without sizeGb should take its source's size")
			}
			if src := byName["instance-d4e5f6-disk-2"].Spec.Source; src.Blank == nil {
				t.Errorf("blank disk source = %+v", src)
			}
			if src := byName["instance-d4e5f6-disk-5"].Spec.Source; src.Snapshot == nil || src.Snapshot.Name != "snap-1" {
				t.Errorf("snapshot disk source = %+v", src)
			}
			vols := map[string]kubevirtv1.Volume{}
			for _, v := range vm.Spec.Template.Spec.Volumes {
				vols[v.Name] = v
			}
			if v := vols["disk-3"]; v.EmptyDisk == nil || v.EmptyDisk.Capacity.String() != "5Gi" {
				t.Errorf("temporary blank disk = %+v", v)
			}
			if v := vols["disk-4"]; v.ContainerDisk == nil || v.ContainerDisk.Image != "quay.io/containerdisks/ubuntu:24.04" {
				t.Errorf("temporary image disk = %+v", v)
			}
		},
	}, {
		name: "NICs: pod network first, Multus after, static address and guest VLAN through cloud-init",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.NICs = []computev1alpha1.NIC{
				{Network: project + "/networks/network-g7h8i9"},
				{Network: project + "/networks/storage-net", Subnet: project + "/subnets/subnet-b", IPv4Address: "192.168.1.20"},
				{Network: project + "/networks/tagged", VLAN: 100, IPv6Address: "fd00::20"},
			}
		},
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			nets := vm.Spec.Template.Spec.Networks
			if len(nets) != 3 || nets[0].Pod == nil || nets[1].Multus == nil || nets[1].Multus.NetworkName != "storage-net" ||
				nets[2].Multus == nil || nets[2].Multus.NetworkName != "infra/trunk" {
				t.Fatalf("networks = %+v", nets)
			}
			ifaces := vm.Spec.Template.Spec.Domain.Devices.Interfaces
			if ifaces[1].Bridge == nil || ifaces[2].Bridge == nil {
				t.Errorf("Multus interfaces are not bridged: %+v", ifaces)
			}
			for _, v := range vm.Spec.Template.Spec.Volumes {
				if v.CloudInitNoCloud != nil && (v.CloudInitNoCloud.NetworkDataSecretRef == nil || v.CloudInitNoCloud.NetworkDataSecretRef.Name != CloudInitSecretName(inst)) {
					t.Errorf("cloudInitNoCloud = %+v, want networkDataSecretRef %s", v.CloudInitNoCloud, CloudInitSecretName(inst))
				}
			}
			ci, err := CloudInit(inst, cat)
			if err != nil {
				t.Fatal(err)
			}
			if string(BuildCloudInitSecret(inst, ci).Data[NetworkDataKey]) != ci.NetworkData {
				t.Error("the Secret's networkdata is not the network config")
			}
			var np netplan
			if err := yaml.UnmarshalStrict([]byte(ci.NetworkData), &np); err != nil {
				t.Fatalf("networkData %q: %v", ci.NetworkData, err)
			}
			if np.Version != 2 || len(np.Ethernets) != 3 {
				t.Fatalf("networkData = %+v", np)
			}
			if e := np.Ethernets["nic0"]; !e.DHCP4 || e.Match.MACAddress != ifaces[0].MacAddress {
				t.Errorf("nic0 = %+v", e)
			}
			if e := np.Ethernets["nic1"]; e.DHCP4 || len(e.Addresses) != 1 || e.Addresses[0] != "192.168.1.20/22" ||
				e.Gateway4 != "192.168.0.1" || e.Match.MACAddress != ifaces[1].MacAddress {
				t.Errorf("nic1 = %+v", e)
			}
			if v := np.VLANs["nic2.100"]; v.ID != 100 || v.Link != "nic2" || len(v.Addresses) != 1 || v.Addresses[0] != "fd00::20/64" {
				t.Errorf("nic2.100 = %+v", v)
			}
		},
	}, {
		name: "a dotted hostname sets the short name and the FQDN; other metadata keys become files",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Hostname = "trainer.ml.example"
			i.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "startup-script", Value: "#!/bin/sh\necho hi\n"}}
		},
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			spec := vm.Spec.Template.Spec
			if spec.Hostname != "trainer" {
				t.Errorf("hostname = %s", spec.Hostname)
			}
			data, err := CloudInit(inst, cat)
			if err != nil {
				t.Fatal(err)
			}
			ud := data.UserData
			var cc cloudConfig
			if err := yaml.UnmarshalStrict([]byte(strings.TrimPrefix(ud, "#cloud-config\n")), &cc); err != nil {
				t.Fatal(err)
			}
			if cc.Hostname != "trainer" || cc.FQDN != "trainer.ml.example" || len(cc.Users) != 0 {
				t.Errorf("cloud-config = %+v", cc)
			}
			if len(cc.WriteFiles) != 1 || cc.WriteFiles[0].Path != MetadataDir+"/startup-script" || cc.WriteFiles[0].Content != "#!/bin/sh\necho hi\n" {
				t.Errorf("write_files = %+v", cc.WriteFiles)
			}
		},
	}, {
		name: "several GPUs of two types",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.GPUs = []computev1alpha1.GPU{{Type: region + "/zones/us1-a/gpu-types/h100-80gb", Count: 2}, {Type: region + "/gpu-types/l40s", Count: 1}}
		},
		check: func(t *testing.T, vm *kubevirtv1.VirtualMachine, inst *computev1alpha1.Instance) {
			gpus := vm.Spec.Template.Spec.Domain.Devices.GPUs
			if len(gpus) != 3 || gpus[1].Name != "gpu1" || gpus[1].DeviceName != "nvidia.com/GH100_H100_SXM5_80GB" || gpus[2].DeviceName != "nvidia.com/AD102GL_L40S" {
				t.Errorf("gpus = %+v", gpus)
			}
		},
	}, {
		name:   "unknown image",
		mutate: func(i *computev1alpha1.Instance) { i.Spec.Disks[0].Source = region + "/compute/images/windows-95" },
		reason: ReasonUnknownImage,
	}, {
		name: "unknown GPU type",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.GPUs = []computev1alpha1.GPU{{Type: region + "/gpu-types/voodoo2", Count: 1}}
		},
		reason: ReasonUnknownGPUType,
	}, {
		name: "a TEMPORARY disk from a volume",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Disks = append(i.Spec.Disks, computev1alpha1.Disk{Source: project + "/volumes/v", Type: computev1alpha1.DiskTypeTemporary})
		},
		reason: ReasonUnsupportedDisk,
	}, {
		name: "a blank disk without size",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.Disks = append(i.Spec.Disks, computev1alpha1.Disk{Type: computev1alpha1.DiskTypePersistent})
		},
		reason: ReasonUnsupportedDisk,
	}, {
		name: "a static address on the pod network",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.NICs = []computev1alpha1.NIC{{IPv4Address: "10.0.0.7"}}
		},
		reason: ReasonUnsupportedNetwork,
	}, {
		name: "a VLAN on a network without guest VLANs",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.NICs = []computev1alpha1.NIC{{}, {Network: project + "/networks/plain", VLAN: 7}}
		},
		reason: ReasonUnsupportedNetwork,
	}, {
		name: "a malformed ssh-keys line",
		mutate: func(i *computev1alpha1.Instance) {
			i.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: "ssh-ed25519 AAAA no-user"}}
		},
		reason: ReasonInvalidMetadata,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := base()
			tt.mutate(inst)
			vm, err := BuildVirtualMachine(inst, cat)
			if tt.reason != "" {
				p, ok := provider.AsPermanent(err)
				if !ok || p.Reason != tt.reason {
					t.Fatalf("err = %v, want a PermanentError %s", err, tt.reason)
				}
				if p.Message == "" {
					t.Error("the PermanentError has no message")
				}
				return
			}
			if err != nil {
				t.Fatalf("BuildVirtualMachine: %v", err)
			}
			tt.check(t, vm, inst)
		})
	}
}

func TestCloudInitHashFollowsMetadata(t *testing.T) {
	inst := sampleInstance(t)
	a, err := CloudInit(inst, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := CloudInit(inst, DefaultCatalog())
	if a.Hash() != again.Hash() {
		t.Error("the cloud-init hash is not stable")
	}
	inst.Spec.InstanceMetadata = append(inst.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "role", Value: "trainer"})
	b, err := CloudInit(inst, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash() == b.Hash() {
		t.Error("a metadata change left the cloud-init hash unchanged")
	}
}

// KubeVirt refuses inline cloud-init data over 2 KiB; instanceMetadata may
// hold far more, so it must reach the guest through the Secret alone.
func TestLargeMetadataStaysOutOfTheVM(t *testing.T) {
	inst := sampleInstance(t)
	script := "#!/bin/sh\n" + strings.Repeat("echo preparing the node\n", 8000)
	inst.Spec.InstanceMetadata = append(inst.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "startup-script", Value: script})
	vm, err := BuildVirtualMachine(inst, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vm.Spec.Template.Spec.Volumes {
		if ci := v.CloudInitNoCloud; ci != nil && (len(ci.UserData) > 2048 || len(ci.UserDataBase64) > 2048 || len(ci.NetworkData) > 2048) {
			t.Errorf("inline cloud-init data of %d bytes: KubeVirt refuses more than 2048", len(ci.UserData)+len(ci.UserDataBase64)+len(ci.NetworkData))
		}
	}
	data, err := CloudInit(inst, DefaultCatalog())
	if err != nil {
		t.Fatal(err)
	}
	var cc cloudConfig
	if err := yaml.Unmarshal(BuildCloudInitSecret(inst, data).Data[UserDataKey], &cc); err != nil {
		t.Fatal(err)
	}
	if len(cc.WriteFiles) != 1 || cc.WriteFiles[0].Content != script {
		t.Errorf("the Secret does not carry the %d-byte script intact", len(script))
	}
}
