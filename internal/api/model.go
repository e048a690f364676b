package api

import (
	"time"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// Instance is the API's instance resource; the field order is the contract's.
type Instance struct {
	SelfLink         string                         `json:"selfLink"`
	UID              string                         `json:"uid"`
	ID               string                         `json:"id"`
	DisplayName      string                         `json:"displayName,omitempty"`
	Description      string                         `json:"description,omitempty"`
	Labels           map[string]string              `json:"labels"`
	Type             string                         `json:"type"`
	InstanceMetadata []computev1alpha1.MetadataItem `json:"instanceMetadata"`
	Hostname         string                         `json:"hostname,omitempty"`
	Lifecycle        Lifecycle                      `json:"lifecycle"`
	Disks            []computev1alpha1.Disk         `json:"disks"`
	NICs             []NIC                          `json:"nics"`
	GPUs             []computev1alpha1.GPU          `json:"gpus"`
	CreatedAt        string                         `json:"createdAt"`
	UpdatedAt        string                         `json:"updatedAt"`
}

// Lifecycle is the provisioning state.
type Lifecycle struct {
	Status        computev1alpha1.LifecycleStatus `json:"status"`
	StatusMessage string                          `json:"statusMessage"`
}

// NIC is a network interface with the addresses actually assigned.
type NIC struct {
	Network     string `json:"network,omitempty"`
	Subnet      string `json:"subnet,omitempty"`
	IPv4Address string `json:"ipv4Address,omitempty"`
	IPv6Address string `json:"ipv6Address,omitempty"`
	VLAN        int32  `json:"vlan,omitempty"`
}

// InstanceList is a page of instances.
type InstanceList struct {
	Instances     []Instance `json:"instances"`
	NextPageToken string     `json:"nextPageToken,omitempty"`
}

// CreateRequest is the body of POST .../instances: the writable fields of an
// instance. Only type is required.
type CreateRequest struct {
	ID               string                         `json:"id,omitempty"`
	DisplayName      string                         `json:"displayName,omitempty"`
	Description      string                         `json:"description,omitempty"`
	Labels           map[string]string              `json:"labels,omitempty"`
	Type             string                         `json:"type"`
	InstanceMetadata []computev1alpha1.MetadataItem `json:"instanceMetadata,omitempty"`
	Hostname         string                         `json:"hostname,omitempty"`
	Disks            []computev1alpha1.Disk         `json:"disks,omitempty"`
	NICs             []computev1alpha1.NIC          `json:"nics,omitempty"`
	GPUs             []computev1alpha1.GPU          `json:"gpus,omitempty"`
}

// selfLink is the instance's path in the API.
func selfLink(region, project, id string) string {
	return "/v1/regions/" + region + "/projects/" + project + "/compute/instances/" + id
}

// toAPI renders an Instance resource as the API's instance.
func toAPI(region, project string, in *computev1alpha1.Instance) Instance {
	out := Instance{
		SelfLink:         selfLink(region, project, in.Name),
		UID:              string(in.UID),
		ID:               in.Name,
		DisplayName:      in.Spec.DisplayName,
		Description:      in.Spec.Description,
		Labels:           in.APILabels(),
		Type:             in.Spec.Type,
		InstanceMetadata: in.Spec.InstanceMetadata,
		Hostname:         in.Status.Hostname,
		Lifecycle: Lifecycle{
			Status:        in.Status.Lifecycle.Status,
			StatusMessage: in.Status.Lifecycle.StatusMessage,
		},
		Disks:     in.Spec.Disks,
		GPUs:      in.Spec.GPUs,
		CreatedAt: in.CreationTimestamp.UTC().Format(time.RFC3339),
	}
	if out.Hostname == "" {
		// The reconciler has not written it yet: answer what it will write.
		out.Hostname = in.EffectiveHostname()
	}
	if out.Lifecycle.Status == "" {
		// The reconciler has not seen the instance yet: creation has started.
		out.Lifecycle.Status = computev1alpha1.LifecycleProvisioning
		if out.Lifecycle.StatusMessage == "" {
			out.Lifecycle.StatusMessage = "creation has started"
		}
	}
	if in.Status.UpdatedAt != nil {
		out.UpdatedAt = in.Status.UpdatedAt.UTC().Format(time.RFC3339)
	} else {
		out.UpdatedAt = out.CreatedAt
	}
	if out.InstanceMetadata == nil {
		out.InstanceMetadata = []computev1alpha1.MetadataItem{}
	}
	if out.Disks == nil {
		out.Disks = []computev1alpha1.Disk{}
	}
	if out.GPUs == nil {
		out.GPUs = []computev1alpha1.GPU{}
	}
	out.NICs = renderNICs(in.Spec.NICs, in.Status.NICs)
	return out
}

// renderNICs merges what was asked for with what the system assigned (the
// status entry of the same index wins where it has a value).
func renderNICs(spec []computev1alpha1.NIC, status []computev1alpha1.NICStatus) []NIC {
	n := max(len(spec), len(status))
	out := make([]NIC, n)
	for i := range n {
		if i < len(spec) {
			s := spec[i]
			out[i] = NIC{Network: s.Network, Subnet: s.Subnet, IPv4Address: s.IPv4Address, IPv6Address: s.IPv6Address, VLAN: s.VLAN}
		}
		if i < len(status) {
			st := status[i]
			if st.Network != "" {
				out[i].Network = st.Network
			}
			if st.Subnet != "" {
				out[i].Subnet = st.Subnet
			}
			if st.IPv4Address != "" {
				out[i].IPv4Address = st.IPv4Address
			}
			if st.IPv6Address != "" {
				out[i].IPv6Address = st.IPv6Address
			}
			if st.VLAN != 0 {
				out[i].VLAN = st.VLAN
			}
		}
	}
	return out
}
