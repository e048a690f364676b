// Package devstack runs the whole product on one machine, as `make run` does:
// a real etcd and kube-apiserver (the binaries hack/build-control-plane.sh
// builds, started through envtest) with their data kept under a directory,
// kube-controller-manager beside them, the CRD, the API's ClusterRoles and the
// samples installed, an admin kubeconfig and a deployer's bearer token written
// beside them, the simulated cloud's service (cmd/simcloud) as a process of
// its own (admitting only the controllers' and an admin's service-account
// tokens for its audience), and the manager binary running against it with
// the REST API. The
// reliability checks also start further manager replicas, and kill and
// restart kube-apiserver and etcd, through it.
package devstack
