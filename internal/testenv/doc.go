// Package testenv starts a real control plane for tests: controller-runtime's
// envtest running the kube-apiserver and etcd that hack/build-control-plane.sh
// builds into bin/k8s/<version>/, with the CRDs of config/crd installed, and
// kube-controller-manager beside them for the suites that ask for it. It
// also runs the kubectl built beside them, as a user would type it. It imports
// testing, so only tests use it; programs take the module root, the binaries'
// location and the scheme from internal/controlplane.
package testenv
