// Package install proves each way of installing the operator: the Helm chart
// (linted, rendered by Helm's own engine, held to config/ by a drift test and
// applied to a real kube-apiserver), the single install.yaml of make release
// (applied with the real kubectl to a fresh control plane), the chart in an
// OCI registry, and k0rdent's ServiceTemplate and MultiClusterService.
package install
