package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PowerState is what the owner wants the machine to be doing.
// +kubebuilder:validation:Enum=Running;Stopped;Suspended
type PowerState string

const (
	// PowerStateRunning asks for a booted machine.
	PowerStateRunning PowerState = "Running"
	// PowerStateStopped asks for a machine shut down but kept (lifecycle TERMINATED).
	PowerStateStopped PowerState = "Stopped"
	// PowerStateSuspended asks for a machine whose memory is saved and whose CPUs are released.
	PowerStateSuspended PowerState = "Suspended"
)

// DeletionPolicy says what happens to the machine when the Instance is deleted.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the machine with the resource.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the machine running in the cloud.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// DiskInterface is the bus a disk is attached on.
// +kubebuilder:validation:Enum=SCSI;NVME
type DiskInterface string

const (
	DiskInterfaceSCSI DiskInterface = "SCSI"
	DiskInterfaceNVME DiskInterface = "NVME"
)

// DiskType says whether a disk outlives the machine's host.
// +kubebuilder:validation:Enum=PERSISTENT;TEMPORARY
type DiskType string

const (
	DiskTypePersistent DiskType = "PERSISTENT"
	DiskTypeTemporary  DiskType = "TEMPORARY"
)

// DiskMode is how the machine may use a disk.
// +kubebuilder:validation:Enum=READ_ONLY;READ_WRITE
type DiskMode string

const (
	DiskModeReadOnly  DiskMode = "READ_ONLY"
	DiskModeReadWrite DiskMode = "READ_WRITE"
)

// LifecycleStatus is the API's provisioning state of an instance. The values
// and their meanings are Compute Engine's; there is no error value: a failure
// is told in the status message.
// +kubebuilder:validation:Enum=PROVISIONING;STAGING;RUNNING;STOPPING;SUSPENDING;SUSPENDED;REPAIRING;TERMINATED
type LifecycleStatus string

const (
	// LifecycleProvisioning: resources are being allocated (or wait for capacity).
	LifecycleProvisioning LifecycleStatus = "PROVISIONING"
	// LifecycleStaging: resources are acquired and the machine is booting.
	LifecycleStaging LifecycleStatus = "STAGING"
	// LifecycleRunning: the machine is up.
	LifecycleRunning LifecycleStatus = "RUNNING"
	// LifecycleStopping: the machine is shutting down, on request or for deletion.
	LifecycleStopping LifecycleStatus = "STOPPING"
	// LifecycleSuspending: the machine's memory is being saved.
	LifecycleSuspending LifecycleStatus = "SUSPENDING"
	// LifecycleSuspended: the machine is suspended.
	LifecycleSuspended LifecycleStatus = "SUSPENDED"
	// LifecycleRepairing: the machine's host is being repaired.
	LifecycleRepairing LifecycleStatus = "REPAIRING"
	// LifecycleTerminated: the machine is stopped, by request or by failure; the record still exists.
	LifecycleTerminated LifecycleStatus = "TERMINATED"
)

// LifecycleStatuses lists every lifecycle value in the API's order.
var LifecycleStatuses = []LifecycleStatus{
	LifecycleProvisioning, LifecycleStaging, LifecycleRunning, LifecycleStopping,
	LifecycleSuspending, LifecycleSuspended, LifecycleRepairing, LifecycleTerminated,
}

// MetadataItem is one key of the instance metadata that the guest image reads.
// The key `ssh-keys` holds `user:ssh-ed25519 AAAA... comment` lines.
type MetadataItem struct {
	// Key names the item.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=127
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9_-]+$`
	// +required
	Key string `json:"key"`

	// Value is free text read by the image: lines of text, with no control
	// characters but tabs and line breaks (MultiLineTextPattern).
	// +kubebuilder:validation:MaxLength=262144
	// +kubebuilder:validation:Pattern=`^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$`
	// +optional
	Value string `json:"value,omitempty"`
}

// Disk is a disk attached to the instance, made from an image, a volume or a snapshot.
// +kubebuilder:validation:XValidation:rule="has(self.source) || has(self.sizeGb)",message="a disk needs a source, a sizeGb, or both"
type Disk struct {
	// SizeGb is the disk's size in GiB; when absent, the size of the source.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	SizeGb int32 `json:"sizeGb,omitempty"`

	// Interface is the bus the disk is attached on.
	// +optional
	Interface DiskInterface `json:"interface,omitempty"`

	// Source is the URI of the image, volume or snapshot the disk is made from,
	// e.g. /v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3 (images
	// are region-scoped) or /v1/regions/{region}/projects/{project}/compute/volumes/{name}.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(compute/images|projects/[a-z0-9]([-a-z0-9]*[a-z0-9])?/compute/(volumes|snapshots))/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="source must be an image URI such as /v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3, or a volume or snapshot URI such as /v1/regions/us-texas-1/projects/project-x9y8z7/compute/volumes/volume-1"
	// +optional
	Source string `json:"source,omitempty"`

	// Boot marks the disk the machine boots from; at most one disk may have it.
	// +optional
	Boot bool `json:"boot,omitempty"`

	// Type says whether the disk outlives the machine's host.
	// +optional
	Type DiskType `json:"type,omitempty"`

	// Mode is how the machine may use the disk.
	// +kubebuilder:default=READ_WRITE
	// +optional
	Mode DiskMode `json:"mode,omitempty"`
}

// NIC is a network interface of the instance. When neither network nor subnet
// is given, the project's default network is used; addresses left empty are
// assigned by the system and reported in status.nics.
type NIC struct {
	// Network is the URI of a network of the project, e.g.
	// /v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/network-g7h8i9.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/projects/[a-z0-9]([-a-z0-9]*[a-z0-9])?/compute/networks/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="network must be a network URI such as /v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/network-g7h8i9"
	// +optional
	Network string `json:"network,omitempty"`

	// Subnet is the URI of a subnet of the project, e.g.
	// /v1/regions/us-texas-1/projects/project-x9y8z7/compute/subnets/subnet-a1b2c3.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/projects/[a-z0-9]([-a-z0-9]*[a-z0-9])?/compute/subnets/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="subnet must be a subnet URI such as /v1/regions/us-texas-1/projects/project-x9y8z7/compute/subnets/subnet-a1b2c3"
	// +optional
	Subnet string `json:"subnet,omitempty"`

	// IPv4Address asks for this IPv4 address; empty lets the system choose.
	// +kubebuilder:validation:Format=ipv4
	// +kubebuilder:validation:MaxLength=15
	// +optional
	IPv4Address string `json:"ipv4Address,omitempty"`

	// IPv6Address asks for this IPv6 address; empty lets the system choose.
	// +kubebuilder:validation:Format=ipv6
	// +kubebuilder:validation:MaxLength=45
	// +optional
	IPv6Address string `json:"ipv6Address,omitempty"`

	// VLAN tags the interface's traffic, where the network supports it.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4094
	// +optional
	VLAN int32 `json:"vlan,omitempty"`
}

// GPU asks for count accelerators of one GPU type.
type GPU struct {
	// Type is the URI of a GPU type, zonal like instance types
	// (/v1/regions/{region}/zones/{zone}/gpu-types/{name}) or regional
	// (/v1/regions/{region}/gpu-types/{name}).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(zones/[a-z0-9]([-a-z0-9]*[a-z0-9])?/)?gpu-types/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="type must be a GPU type URI such as /v1/regions/us-texas-1/zones/us1-a/gpu-types/h100-80gb or /v1/regions/us-texas-1/gpu-types/h100-80gb"
	// +required
	Type string `json:"type"`

	// Count is how many GPUs of the type the instance gets.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +required
	Count int32 `json:"count"`
}

// InstanceSpec is the instance as its owner asks for it, in the REST API's own
// field names, plus the operator's powerState and deletionPolicy.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.hostname) || (has(self.hostname) && self.hostname == oldSelf.hostname)",message="hostname is immutable once set",fieldPath=".hostname"
// +kubebuilder:validation:XValidation:rule="has(self.disks) == has(oldSelf.disks) && (!has(self.disks) || self.disks == oldSelf.disks)",message="disks are immutable",fieldPath=".disks"
// +kubebuilder:validation:XValidation:rule="has(self.nics) == has(oldSelf.nics) && (!has(self.nics) || self.nics == oldSelf.nics)",message="nics are immutable",fieldPath=".nics"
// +kubebuilder:validation:XValidation:rule="has(self.gpus) == has(oldSelf.gpus) && (!has(self.gpus) || self.gpus == oldSelf.gpus)",message="gpus are immutable",fieldPath=".gpus"
type InstanceSpec struct {
	// DisplayName is a human-friendly name, one line with no control
	// characters (SingleLineTextPattern).
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[^\x00-\x1F\x7F]*$`
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// Description is free text about the instance, with no control
	// characters but tabs and line breaks (MultiLineTextPattern).
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$`
	// +optional
	Description string `json:"description,omitempty"`

	// Type is the URI of the instance type, e.g.
	// /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge, or a project's
	// custom type /v1/regions/{region}/projects/{project}/compute/instance-types/{name}.
	// Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^/v1/regions/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(zones/[a-z0-9]([-a-z0-9]*[a-z0-9])?|projects/[a-z0-9]([-a-z0-9]*[a-z0-9])?/compute)/instance-types/[a-z0-9]([-a-z0-9._]*[a-z0-9])?$')",message="type must be an instance type URI such as /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge or /v1/regions/us-texas-1/projects/project-x9y8z7/compute/instance-types/my-type"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable"
	// +required
	Type string `json:"type"`

	// Hostname is the machine's RFC 1035 host name; generated when absent
	// (see status.hostname). Immutable once set.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z]([-a-z0-9]{0,61}[a-z0-9])?)*$')",message="hostname must be an RFC 1035 name: dot-separated labels of at most 63 lowercase letters, digits and '-', each starting with a letter and not ending with '-'"
	// +optional
	Hostname string `json:"hostname,omitempty"`

	// InstanceMetadata is key/value data the guest image reads; keys are unique.
	// Its keys and values together hold at most 256 KiB (MaxInstanceMetadataBytes):
	// every Instance lives in the operator's cache, so one tenant's metadata
	// must not be able to fill the process.
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:XValidation:rule="self.map(m, size(m.key) + (has(m.value) ? size(m.value) : 0)).sum() <= 262144",message="the keys and values of instanceMetadata together must not exceed 262144 bytes (256 KiB)"
	// +optional
	InstanceMetadata []MetadataItem `json:"instanceMetadata,omitempty"`

	// Disks are the disks of the instance; at most one is the boot disk. Immutable.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.filter(d, has(d.boot) && d.boot).size() <= 1",message="at most one disk may have boot: true"
	// +optional
	Disks []Disk `json:"disks,omitempty"`

	// NICs are the network interfaces of the instance. Immutable.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +optional
	NICs []NIC `json:"nics,omitempty"`

	// GPUs are the accelerators of the instance. Immutable.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +optional
	GPUs []GPU `json:"gpus,omitempty"`

	// PowerState is what the owner wants the machine to be doing.
	// +kubebuilder:default=Running
	// +optional
	PowerState PowerState `json:"powerState,omitempty"`

	// DeletionPolicy says whether deleting the resource also deletes the machine.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// Lifecycle is the API's provisioning state of the instance and why it is there.
type Lifecycle struct {
	// Status is the lifecycle status.
	// +optional
	Status LifecycleStatus `json:"status,omitempty"`

	// StatusMessage says, for a person, why the instance is in this status.
	// +optional
	StatusMessage string `json:"statusMessage,omitempty"`
}

// MachineRef identifies the machine that backs the instance at its provider.
type MachineRef struct {
	// Provider names the backend, e.g. "simulated" or "kubevirt".
	// +optional
	Provider string `json:"provider,omitempty"`

	// ID is the machine's identity at the provider.
	// +optional
	ID string `json:"id,omitempty"`

	// CreateToken is the idempotency token of the provider's create call: a
	// retry or a restarted operator sends the same token and finds the machine
	// it already asked for instead of making a second one. The first machine's
	// token is derived from the UID; a replacement's, derived from the lost
	// machine's token, is recorded here before its create call.
	// +optional
	CreateToken string `json:"createToken,omitempty"`
}

// NICStatus is what the system actually assigned to the NIC of the same index.
type NICStatus struct {
	// Network is the network the interface is attached to.
	// +optional
	Network string `json:"network,omitempty"`
	// Subnet is the subnet the interface is attached to.
	// +optional
	Subnet string `json:"subnet,omitempty"`
	// IPv4Address is the assigned IPv4 address.
	// +optional
	IPv4Address string `json:"ipv4Address,omitempty"`
	// IPv6Address is the assigned IPv6 address.
	// +optional
	IPv6Address string `json:"ipv6Address,omitempty"`
	// VLAN is the VLAN tag in use.
	// +optional
	VLAN int32 `json:"vlan,omitempty"`
}

// LifecycleTransition is one entry of the short history of lifecycle changes.
type LifecycleTransition struct {
	// Status is the lifecycle status entered.
	Status LifecycleStatus `json:"status"`
	// Message is the status message at the time.
	// +optional
	Message string `json:"message,omitempty"`
	// Time is when the status was entered.
	Time metav1.Time `json:"time"`
}

// MaxHistory is how many lifecycle transitions status.history keeps.
const MaxHistory = 10

// InstanceStatus is the instance as the operator last observed it.
type InstanceStatus struct {
	// ObservedGeneration is the spec generation that the last successful
	// reconcile acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Lifecycle is the API's provisioning state.
	// +optional
	Lifecycle Lifecycle `json:"lifecycle,omitempty"`

	// Conditions are Ready, Reconciling, Stalled and Paused, as kstatus, Flux,
	// Argo CD and `kubectl wait` read them.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Machine identifies the machine at its provider.
	// +optional
	Machine MachineRef `json:"machine,omitempty"`

	// Hostname is the machine's host name: spec.hostname, or the instance's
	// name when spec.hostname is absent, unless the provider reports another.
	// +optional
	Hostname string `json:"hostname,omitempty"`

	// Zone is the zone the instance runs in, taken from its type.
	// +optional
	Zone string `json:"zone,omitempty"`

	// InstanceTypeName is the last segment of spec.type, for display.
	// +optional
	InstanceTypeName string `json:"instanceTypeName,omitempty"`

	// GPUSummary is the accelerators in short form, e.g. "8x h100-80gb", for display.
	// +optional
	GPUSummary string `json:"gpuSummary,omitempty"`

	// NICs are the addresses actually assigned, one entry per spec.nics entry.
	// +listType=atomic
	// +optional
	NICs []NICStatus `json:"nics,omitempty"`

	// UpdatedAt is when the lifecycle or the spec last changed.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`

	// History holds the last few lifecycle transitions, oldest first.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +optional
	History []LifecycleTransition `json:"history,omitempty"`
}

// Instance is one virtual machine of the k0rdent AI compute API. Its name is
// the API's id, its UID the API's uid, and its labels without a prefix the
// API's labels.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=inst,categories={k0rdent,compute}
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.lifecycle.status`,description="Lifecycle status"
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.instanceTypeName`,description="Instance type"
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.status.hostname`,description="Effective host name"
// +kubebuilder:printcolumn:name="IP",type=string,JSONPath=`.status.nics[0].ipv4Address`,description="First assigned IPv4 address"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,description="Ready condition"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Zone",type=string,JSONPath=`.status.zone`,priority=1,description="Zone"
// +kubebuilder:printcolumn:name="GPUs",type=string,JSONPath=`.status.gpuSummary`,priority=1,description="Accelerators"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name is the instance id: 1-63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
type Instance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec InstanceSpec `json:"spec"`

	// +optional
	Status InstanceStatus `json:"status,omitempty"`
}

// InstanceList is a list of Instances.
//
// +kubebuilder:object:root=true
type InstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Instance `json:"items"`
}
