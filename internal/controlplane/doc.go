// Package controlplane locates what the local stack and the tests run: the
// module's root, the kube-apiserver, kube-controller-manager, etcd and kubectl
// that hack/build-control-plane.sh builds into bin/k8s/<version>/, and the
// scheme of the types they speak; and it starts kube-controller-manager beside
// an envtest kube-apiserver. Production binaries (cmd/devstack, test/load) use
// it; it imports no test package, so they never link testing, as they would
// through internal/testenv.
package controlplane
