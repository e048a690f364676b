// Package kubevirt owns the KubeVirt provider: it turns each Instance into a
// kubevirt.io/v1 VirtualMachine of the same name in the instance's namespace,
// owned by the Instance, and reads the machine's lifecycle back from the
// VirtualMachine, its VirtualMachineInstance and its CDI DataVolumes.
//
// The catalog (catalog.go) maps the API's instance types, images, GPU types
// and networks onto KubeVirt and CDI names; mapping.go builds the
// VirtualMachine from an Instance; status.go maps KubeVirt's printable status
// and VMI phase onto provider phases (the table is in docs/kubevirt.md).
// Suspend and resume go through the VMI pause and unpause subresources of
// subresources.kubevirt.io, behind the Pauser interface.
package kubevirt
