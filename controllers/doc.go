// Package controllers owns the Instance reconciler: it drives each Instance
// through the lifecycle (PROVISIONING, STAGING, RUNNING, STOPPING, TERMINATED,
// SUSPENDING, SUSPENDED, REPAIRING) over the provider interface, and reports
// the lifecycle, conditions and observedGeneration in status.
//
// The RBAC the reconciler needs is declared here, as it uses it: it watches
// instances and patches their finalizer and status; its events go through
// core/v1 (see events.go), created and patched as they repeat. The finalizers
// subresource is for the KubeVirt provider, whose VMs block their instance's
// deletion, which OwnerReferencesPermissionEnforcement allows only to whoever
// may update it. finalize is the verb the admission policy
// instance-tenancy.compute.k0rdent.ai asks of whoever removes the finalizer;
// a namespace is read (get, live) for its project mapping (instance_scope.go).
// TestManagerRoleIsEnough runs the reconciler with only this.
//
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances,verbs=get;list;watch;patch;finalize
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances/status,verbs=patch
// +kubebuilder:rbac:groups=compute.k0rdent.ai,resources=instances/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
package controllers
