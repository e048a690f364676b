// Package e2e holds the end-to-end tests: they start the whole product the way
// `make run` does (cmd/devstack: etcd, kube-apiserver, the manager with the
// simulated cloud and the REST API) and drive it only from outside, with the
// built kubectl and with HTTP, as users do.
package e2e
