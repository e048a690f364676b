// Package kubevirt is the tools module that links KubeVirt's own code
// (kubevirt.io/kubevirt) for the tests of internal/provider/kubevirt: crd-gen
// writes KubeVirt's CRDs and virt-api's webhook registration as virt-operator
// generates them, and virt-api-webhook serves virt-api's validating admitters.
// It is a module of its own because KubeVirt pins k8s.io/* and other modules
// at versions the operator's go.mod cannot take.
package kubevirt
