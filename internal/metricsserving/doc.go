// Package metricsserving owns how the manager serves its Prometheus metrics:
// over HTTPS, with every scrape authenticated (TokenReview) and authorized
// (SubjectAccessReview of get on the /metrics non-resource URL) by the
// kube-apiserver, as kubebuilder v4 scaffolds it, or over plain HTTP for
// local use.
package metricsserving
