package simcloud

import (
	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// Paths of the provider calls; each is a POST of a callRequest.
const (
	pathObserve  = "/v1/calls/observe"
	pathCreate   = "/v1/calls/create"
	pathUpdate   = "/v1/calls/update"
	pathSetPower = "/v1/calls/set-power"
	pathDelete   = "/v1/calls/delete"
)

// Paths of the operator's knobs and views.
const (
	// PathMachines lists the machines (GET).
	PathMachines = "/v1/machines"
	// PathFaults reads (GET) or replaces (PUT) the fault rates.
	PathFaults = "/v1/faults"
	// PathCapacity sets one instance type's capacity (PUT of a capacityRequest).
	PathCapacity = "/v1/capacity"
	// PathHealth answers 200 while the service runs.
	PathHealth = "/healthz"
)

// callRequest is a provider call: the instance it is about and, for
// SetPower, the action.
type callRequest struct {
	Instance *computev1alpha1.Instance `json:"instance"`
	Action   provider.PowerAction      `json:"action,omitempty"`
}

// callResponse is a call's answer: the machine for Observe and Create.
type callResponse struct {
	Machine *provider.Machine `json:"machine,omitempty"`
}

// Error kinds, which the client turns back into the provider's errors.
const (
	kindNotFound  = "NotFound"
	kindPermanent = "Permanent"
	kindTransient = "Transient"
)

// errorResponse is a call's refusal.
type errorResponse struct {
	Kind    string `json:"kind"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// CapacityRequest sets how many machines of an instance type fit.
type CapacityRequest struct {
	InstanceType string `json:"instanceType"`
	Machines     int    `json:"machines"`
}
