// Package admission owns the MutatingAdmissionPolicy of config/admission,
// which stamps the operator's finalizer on Instances as kube-apiserver
// stores them, and knows when kube-apiserver enforces it.
package admission
