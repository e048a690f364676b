// Package controllers owns the Instance reconciler: it drives each Instance
// through the lifecycle (PROVISIONING, STAGING, RUNNING, STOPPING, TERMINATED,
// SUSPENDING, SUSPENDED, REPAIRING) over the provider interface, and reports
// the lifecycle, conditions and observedGeneration in status.
//
// The RBAC the manager needs is declared here, next to the code that uses it.
//
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
package controllers
