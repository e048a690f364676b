//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the tests run
// (kube-apiserver, kube-controller-manager, etcd, kubectl). It lives in its own
// module so that k8s.io/kubernetes never enters the operator's go.mod.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
