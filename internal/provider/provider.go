package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// Phase is where a machine is at its provider. The reconciler maps it onto the
// API's lifecycle status; Stopped becomes TERMINATED.
type Phase string

const (
	// PhaseProvisioning: resources are being allocated, or wait for capacity.
	PhaseProvisioning Phase = "Provisioning"
	// PhaseStaging: resources are allocated and the machine is booting (or resuming).
	PhaseStaging Phase = "Staging"
	PhaseRunning Phase = "Running"
	// PhaseStopping: the machine is shutting down.
	PhaseStopping Phase = "Stopping"
	// PhaseStopped: the machine is shut down and still exists.
	PhaseStopped    Phase = "Stopped"
	PhaseSuspending Phase = "Suspending"
	PhaseSuspended  Phase = "Suspended"
	// PhaseRepairing: the machine's host failed and is being repaired.
	PhaseRepairing Phase = "Repairing"
	// PhaseDeleting: the machine is being torn down.
	PhaseDeleting Phase = "Deleting"
)

// PowerAction changes a machine's power state.
type PowerAction string

const (
	PowerStart   PowerAction = "Start"
	PowerStop    PowerAction = "Stop"
	PowerSuspend PowerAction = "Suspend"
	PowerResume  PowerAction = "Resume"
)

// Machine is a machine as its provider last saw it.
type Machine struct {
	// ID is the machine's identity at the provider.
	ID    string
	Phase Phase
	// Message says, for a person, why the machine is in its phase; for a
	// machine waiting for capacity it names what it waits for.
	Message string
	// WaitingForCapacity is true while the machine cannot be allocated yet
	// for lack of room for its type or GPUs.
	WaitingForCapacity bool
	// Hostname is the machine's effective host name.
	Hostname string
	// NICs are the addresses assigned, one per spec.nics entry (one for the
	// default network when spec.nics is empty).
	NICs []computev1alpha1.NICStatus
	// NextChangeIn is when the provider expects the machine's phase to change
	// next (a boot or a shutdown finishing), for the caller to look again then;
	// zero when it does not know.
	NextChangeIn time.Duration
}

// Provider runs machines for Instances. Every method is idempotent and
// returns promptly: long work (allocation, boot, shutdown) goes on at the
// provider and shows in later Observe calls. Callers bound each call with a
// context deadline.
type Provider interface {
	// Name names the provider, e.g. "simulated"; it is recorded in status.machine.provider.
	Name() string
	// Observe returns the instance's machine, or an error wrapping ErrNotFound
	// when the provider has none for it.
	Observe(ctx context.Context, inst *computev1alpha1.Instance) (*Machine, error)
	// Create asks for the instance's machine. It is keyed by
	// inst.Status.Machine.CreateToken: a second call with the same token
	// returns the machine of the first, never a second one.
	Create(ctx context.Context, inst *computev1alpha1.Instance) (*Machine, error)
	// Update pushes the mutable parts of the spec (instanceMetadata) to the machine.
	Update(ctx context.Context, inst *computev1alpha1.Instance) error
	// SetPower starts, stops, suspends or resumes the machine.
	SetPower(ctx context.Context, inst *computev1alpha1.Instance, action PowerAction) error
	// Delete tears the machine down; it returns nil when it is already gone.
	Delete(ctx context.Context, inst *computev1alpha1.Instance) error
}

// ErrNotFound is wrapped by Observe when the provider has no machine for the instance.
var ErrNotFound = errors.New("machine not found")

// PermanentError is a refusal that no retry will change: an unknown instance
// type or image, a request the cloud cannot serve. The reconciler stalls the
// instance on it (Stalled, reason ProviderRejected) until the spec changes.
type PermanentError struct {
	// Reason is a short UpperCamelCase cause, e.g. "UnknownInstanceType".
	Reason  string
	Message string
}

func (e *PermanentError) Error() string { return e.Message }

// Permanent returns a PermanentError.
func Permanent(reason, format string, args ...any) error {
	return &PermanentError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// AsPermanent reports whether err wraps a PermanentError and returns it.
func AsPermanent(err error) (*PermanentError, bool) {
	var p *PermanentError
	ok := errors.As(err, &p)
	return p, ok
}

// ReplacementToken is the create token of the machine that replaces one lost
// out of band. It is derived from the lost machine's token, so that a retried
// or restarted replacement sends the same token, and differs from it, so that
// the provider does not answer with the machine that is gone.
func ReplacementToken(previous string) string {
	sum := sha256.Sum256([]byte("replace/" + previous))
	return hex.EncodeToString(sum[:16])
}

// CreateToken is the idempotency token of an instance's create call, derived
// from its UID so that every retry and every restarted operator sends the same one.
func CreateToken(inst *computev1alpha1.Instance) string {
	sum := sha256.Sum256([]byte("create/" + string(inst.UID)))
	return hex.EncodeToString(sum[:16])
}
