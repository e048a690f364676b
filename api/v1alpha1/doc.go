// Package v1alpha1 holds the Instance API of group compute.k0rdent.ai: the
// custom resource that stands for one virtual machine of the k0rdent AI
// compute API, its schema validation (controller-tools markers and CEL
// rules), and the condition types and reasons that its status reports.
//
// The spec speaks the REST API's own field names, so a manifest and a REST
// body read alike.
//
// +kubebuilder:object:generate=true
// +groupName=compute.k0rdent.ai
package v1alpha1
