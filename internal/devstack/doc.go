// Package devstack runs the whole product on one machine, as `make run` does:
// a real etcd and kube-apiserver (the binaries hack/build-control-plane.sh
// builds, started through envtest) with their data kept under a directory, the
// CRD, the API's ClusterRoles and the samples installed, an admin kubeconfig
// and a deployer's bearer token written beside them, and the manager binary
// running against it with the simulated cloud and the REST API.
package devstack
