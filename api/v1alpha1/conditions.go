package v1alpha1

// Condition types of status.conditions. They follow the kstatus convention
// (sigs.k8s.io/cli-utils/pkg/kstatus) that Flux and Argo CD read: Reconciling
// is True while the operator still works towards the spec, Stalled is True when
// it cannot get there without a change, Ready is True when the instance is in
// the power state its owner asked for.
const (
	// ConditionReady is True when the lifecycle matches spec.powerState:
	// RUNNING for Running, TERMINATED for Stopped, SUSPENDED for Suspended.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator is making progress
	// towards the spec (provisioning, booting, changing power state, retrying).
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the operator gave up on the current spec:
	// the cloud refused the request, or provisioning passed its deadline.
	ConditionStalled = "Stalled"
	// ConditionPaused is True while the PausedAnnotation stops all provider calls.
	ConditionPaused = "Paused"
)

// Reasons of the Ready condition.
const (
	// ReasonRunning: the machine is up, as asked.
	ReasonRunning = "Running"
	// ReasonStopped: the machine is stopped, as asked.
	ReasonStopped = "Stopped"
	// ReasonSuspended: the machine is suspended, as asked.
	ReasonSuspended = "Suspended"
	// ReasonProvisioning: resources are being allocated or waited for.
	ReasonProvisioning = "Provisioning"
	// ReasonStaging: the machine is booting.
	ReasonStaging = "Staging"
	// ReasonStopping: the machine is shutting down.
	ReasonStopping = "Stopping"
	// ReasonSuspending: the machine is being suspended.
	ReasonSuspending = "Suspending"
	// ReasonRepairing: the machine's host is being repaired.
	ReasonRepairing = "Repairing"
	// ReasonDeleting: the instance is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonMachineLost: the machine disappeared from the cloud out of band.
	ReasonMachineLost = "MachineLost"
)

// Reasons of the Reconciling condition.
const (
	// ReasonProgressing: the operator is moving the instance towards its spec.
	ReasonProgressing = "Progressing"
	// ReasonWaitingForCapacity: the cloud has no room for the instance's type
	// or GPUs yet; the instance stays PROVISIONING until it has.
	ReasonWaitingForCapacity = "WaitingForCapacity"
	// ReasonRetryingAfterError: a provider call failed transiently and is retried with backoff.
	ReasonRetryingAfterError = "RetryingAfterError"
	// ReasonReconciled: the instance matches its spec; Reconciling is False.
	ReasonReconciled = "Reconciled"
)

// Reasons of the Stalled condition.
const (
	// ReasonProviderRejected: the cloud refused the request for good (unknown
	// instance type or image, a request it cannot serve). Change the spec.
	ReasonProviderRejected = "ProviderRejected"
	// ReasonProvisioningDeadlineExceeded: the instance did not reach its power
	// state within the operator's provisioning deadline.
	ReasonProvisioningDeadlineExceeded = "ProvisioningDeadlineExceeded"
	// ReasonMachineLostReported: the machine was lost out of band and the
	// operator's policy is to report it rather than create a new one.
	ReasonMachineLostReported = "MachineLostReported"
	// ReasonOutsideProject: the instance names a URI outside its namespace's
	// region and project, for example another project's network, or a
	// project-scoped URI in a namespace mapped to no project (labels
	// RegionLabel and ProjectLabel). No machine is made; the operator looks
	// again every poll interval, since a platform admin may map the
	// namespace (spec references are immutable, so the owner's fix is a new
	// instance).
	ReasonOutsideProject = "OutsideProject"
	// ReasonNotStalled: nothing blocks the instance; Stalled is False.
	ReasonNotStalled = "NotStalled"
)

// Reasons of the Paused condition.
const (
	// ReasonPausedByAnnotation: the PausedAnnotation is set; no provider call is made.
	ReasonPausedByAnnotation = "PausedByAnnotation"
	// ReasonNotPaused: the instance is reconciled normally.
	ReasonNotPaused = "NotPaused"
)

// Annotations, labels and the finalizer the operator owns.
const (
	// PausedAnnotation, with any value but "false", stops all provider calls for the instance.
	PausedAnnotation = "compute.k0rdent.ai/paused"
	// CreatedByAnnotation records the user who created the instance through the REST API.
	CreatedByAnnotation = "compute.k0rdent.ai/created-by"
	// Finalizer holds the resource until its machine is deleted (or orphaned).
	Finalizer = "compute.k0rdent.ai/machine"
	// RegionLabel on a namespace names the API region it serves.
	RegionLabel = "k0rdent.ai/region"
	// ProjectLabel on a namespace names the API project it serves.
	ProjectLabel = "k0rdent.ai/project"
)

// MaxInstanceMetadataBytes bounds the keys and values of an Instance's
// instanceMetadata together; the CRD's CEL rule enforces it.
const MaxInstanceMetadataBytes = 256 << 10
