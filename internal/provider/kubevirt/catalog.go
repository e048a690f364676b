package kubevirt

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// Instancetype kinds an InstanceType entry may reference.
const (
	KindClusterInstancetype = "VirtualMachineClusterInstancetype"
	KindInstancetype        = "VirtualMachineInstancetype"
)

// Catalog maps the API's instance types, images, GPU types, networks and
// subnets onto KubeVirt and CDI names. Each map is keyed by the resource's
// full URI or by its last path segment (the URI wins when both match).
type Catalog struct {
	// InstanceTypes maps an instance type to a KubeVirt instancetype or to
	// explicit CPU and memory. A type with no entry references the
	// VirtualMachineClusterInstancetype named like the type.
	InstanceTypes map[string]InstanceType `json:"instanceTypes,omitempty"`
	// Images maps an image to the registry or HTTP source CDI imports it from.
	Images map[string]Image `json:"images,omitempty"`
	// GPUTypes maps a GPU type to the device name its nodes advertise.
	GPUTypes map[string]GPUType `json:"gpuTypes,omitempty"`
	// Networks maps a network to its Multus NetworkAttachmentDefinition; a
	// network with no entry uses the NetworkAttachmentDefinition named like it.
	Networks map[string]Network `json:"networks,omitempty"`
	// Subnets gives prefix lengths and gateways for static addresses.
	Subnets map[string]Subnet `json:"subnets,omitempty"`
	// StorageClassName is the storage class of imported disks; empty uses the
	// cluster's default.
	StorageClassName string `json:"storageClassName,omitempty"`
}

// InstanceType is either a reference to a KubeVirt instancetype or explicit
// CPU and memory.
type InstanceType struct {
	// Instancetype names a KubeVirt instancetype.
	Instancetype string `json:"instancetype,omitempty"`
	// Kind is VirtualMachineClusterInstancetype (the default) or the
	// namespaced VirtualMachineInstancetype, looked up in the instance's namespace.
	Kind string `json:"kind,omitempty"`
	// CPU is the number of vCPUs (guest cores).
	CPU uint32 `json:"cpu,omitempty"`
	// Memory is the guest memory, e.g. 64Gi.
	Memory string `json:"memory,omitempty"`
}

// Image is where CDI imports an image from: exactly one of Registry and HTTP.
type Image struct {
	// Registry is a container disk, e.g. docker://quay.io/containerdisks/ubuntu:24.04.
	Registry string `json:"registry,omitempty"`
	// HTTP is a qcow2 or raw image URL.
	HTTP string `json:"http,omitempty"`
	// SizeGb is the disk size used when the instance's disk gives none.
	SizeGb int32 `json:"sizeGb,omitempty"`
}

// GPUType names the device of a GPU type.
type GPUType struct {
	// DeviceName is the resource name of the device plugin, e.g. nvidia.com/GH100_H100_SXM5_80GB.
	DeviceName string `json:"deviceName"`
}

// Network is a Multus network for NICs after the first.
type Network struct {
	// NetworkName is the NetworkAttachmentDefinition, "name" (in the
	// instance's namespace) or "namespace/name".
	NetworkName string `json:"networkName,omitempty"`
	// GuestVLANs says the network carries tagged frames to the guest, so a
	// NIC's vlan is configured in the guest through cloud-init.
	GuestVLANs bool `json:"guestVLANs,omitempty"`
}

// Subnet is what cloud-init needs for a static address on the subnet.
type Subnet struct {
	// IPv4PrefixLength defaults to 24.
	IPv4PrefixLength int `json:"ipv4PrefixLength,omitempty"`
	// IPv6PrefixLength defaults to 64.
	IPv6PrefixLength int    `json:"ipv6PrefixLength,omitempty"`
	Gateway4         string `json:"gateway4,omitempty"`
	Gateway6         string `json:"gateway6,omitempty"`
}

// DefaultCatalog is the built-in catalog: the seed's instance type, image and
// GPU type. A catalog file's entries are laid over it.
func DefaultCatalog() *Catalog {
	return &Catalog{
		InstanceTypes: map[string]InstanceType{
			"g1-xlarge": {CPU: 8, Memory: "64Gi"},
		},
		Images: map[string]Image{
			"ubuntu-24.04-20260202-3": {Registry: "docker://quay.io/containerdisks/ubuntu:24.04", SizeGb: 20},
		},
		GPUTypes: map[string]GPUType{
			"h100-80gb": {DeviceName: "nvidia.com/GH100_H100_SXM5_80GB"},
			"a100-80gb": {DeviceName: "nvidia.com/GA100_A100_SXM4_80GB"},
			"l40s":      {DeviceName: "nvidia.com/AD102GL_L40S"},
		},
	}
}

// LoadCatalog reads a catalog file (YAML, for example a mounted ConfigMap
// key) and lays its entries over the defaults. An empty path returns the defaults.
func LoadCatalog(path string) (*Catalog, error) {
	cat := DefaultCatalog()
	if path == "" {
		return cat, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read the KubeVirt catalog: %w", err)
	}
	var file Catalog
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		return nil, fmt.Errorf("failed to parse the KubeVirt catalog %s: %w", path, err)
	}
	merge(cat.InstanceTypes, file.InstanceTypes)
	merge(cat.Images, file.Images)
	merge(cat.GPUTypes, file.GPUTypes)
	cat.Networks = file.Networks
	cat.Subnets = file.Subnets
	cat.StorageClassName = file.StorageClassName
	if err := cat.Validate(); err != nil {
		return nil, fmt.Errorf("invalid KubeVirt catalog %s: %w", path, err)
	}
	return cat, nil
}

func merge[V any](dst, src map[string]V) {
	for k, v := range src {
		dst[k] = v
	}
}

var deviceNameRE = regexp.MustCompile(`^[a-z0-9.-]+/[A-Za-z0-9_.-]+$`)

// Validate reports every malformed entry.
func (c *Catalog) Validate() error {
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(c.InstanceTypes)) {
		t := c.InstanceTypes[k]
		switch {
		case t.Instancetype != "" && (t.CPU != 0 || t.Memory != ""):
			errs = append(errs, fmt.Sprintf("instanceTypes[%s]: give either instancetype or cpu and memory, not both", k))
		case t.Instancetype != "":
			if t.Kind != "" && t.Kind != KindClusterInstancetype && t.Kind != KindInstancetype {
				errs = append(errs, fmt.Sprintf("instanceTypes[%s].kind: must be %s or %s", k, KindClusterInstancetype, KindInstancetype))
			}
		case t.CPU == 0 || t.Memory == "":
			errs = append(errs, fmt.Sprintf("instanceTypes[%s]: needs instancetype, or both cpu and memory", k))
		default:
			if _, err := resource.ParseQuantity(t.Memory); err != nil {
				errs = append(errs, fmt.Sprintf("instanceTypes[%s].memory: %v", k, err))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Images)) {
		im := c.Images[k]
		if (im.Registry == "") == (im.HTTP == "") {
			errs = append(errs, fmt.Sprintf("images[%s]: needs exactly one of registry and http", k))
		}
		if im.Registry != "" && !strings.HasPrefix(im.Registry, "docker://") && !strings.HasPrefix(im.Registry, "oci-archive://") {
			errs = append(errs, fmt.Sprintf("images[%s].registry: must start with docker:// or oci-archive://", k))
		}
		if im.HTTP != "" && !strings.HasPrefix(im.HTTP, "http://") && !strings.HasPrefix(im.HTTP, "https://") {
			errs = append(errs, fmt.Sprintf("images[%s].http: must be an http:// or https:// URL", k))
		}
		if im.SizeGb < 0 {
			errs = append(errs, fmt.Sprintf("images[%s].sizeGb: must be positive", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.GPUTypes)) {
		if !deviceNameRE.MatchString(c.GPUTypes[k].DeviceName) {
			errs = append(errs, fmt.Sprintf("gpuTypes[%s].deviceName: must be a resource name such as nvidia.com/GH100_H100_SXM5_80GB", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Subnets)) {
		s := c.Subnets[k]
		if s.IPv4PrefixLength < 0 || s.IPv4PrefixLength > 32 || s.IPv6PrefixLength < 0 || s.IPv6PrefixLength > 128 {
			errs = append(errs, fmt.Sprintf("subnets[%s]: prefix lengths out of range", k))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// lookup finds a catalog entry by full URI, then by the URI's last segment.
func lookup[V any](m map[string]V, uri string) (V, bool) {
	if v, ok := m[uri]; ok {
		return v, true
	}
	v, ok := m[computev1alpha1.TypeName(uri)]
	return v, ok
}
