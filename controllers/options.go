package controllers

import (
	"flag"
	"fmt"
	"time"
)

// LostMachinePolicy says what the reconciler does when an instance's machine
// disappears from the cloud without the instance being deleted.
type LostMachinePolicy string

const (
	// LostMachineRecreate creates a replacement machine (with a new create
	// token derived from the lost one's) and reports MachineLost in an event.
	LostMachineRecreate LostMachinePolicy = "Recreate"
	// LostMachineReport leaves the instance TERMINATED and Stalled with reason
	// MachineLostReported, for a person to decide.
	LostMachineReport LostMachinePolicy = "Report"
)

// Options tune the reconciler. The zero value of a field means its default.
type Options struct {
	// MaxConcurrentReconciles is how many instances are reconciled at once.
	MaxConcurrentReconciles int
	// CallTimeout bounds every provider call.
	CallTimeout time.Duration
	// PollInterval is the longest the reconciler waits before looking again at
	// a machine in transit (booting, stopping, waiting for capacity).
	PollInterval time.Duration
	// ResyncPeriod is how often a settled instance is observed again to catch
	// drift; each instance's period is jittered by up to 20% so they spread out.
	ResyncPeriod time.Duration
	// ProvisioningDeadline is how long an instance may stay short of its power
	// state before it is Stalled with reason ProvisioningDeadlineExceeded; it
	// keeps being retried. Negative turns the deadline off.
	ProvisioningDeadline time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the jittered exponential backoff
	// of retries after transient errors.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// LostMachinePolicy is Recreate (the default) or Report.
	LostMachinePolicy LostMachinePolicy
}

// DefaultOptions are the reconciler's defaults.
func DefaultOptions() Options {
	return Options{
		MaxConcurrentReconciles: 16,
		CallTimeout:             30 * time.Second,
		PollInterval:            5 * time.Second,
		ResyncPeriod:            10 * time.Minute,
		ProvisioningDeadline:    15 * time.Minute,
		RetryBaseDelay:          100 * time.Millisecond,
		RetryMaxDelay:           30 * time.Second,
		LostMachinePolicy:       LostMachineRecreate,
	}
}

// withDefaults fills the zero fields of o from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = d.MaxConcurrentReconciles
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = d.CallTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = d.PollInterval
	}
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = d.ResyncPeriod
	}
	if o.ProvisioningDeadline == 0 {
		o.ProvisioningDeadline = d.ProvisioningDeadline
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = d.RetryBaseDelay
	}
	if o.RetryMaxDelay <= 0 {
		o.RetryMaxDelay = d.RetryMaxDelay
	}
	if o.LostMachinePolicy == "" {
		o.LostMachinePolicy = d.LostMachinePolicy
	}
	return o
}

// BindFlags binds the options to command-line flags, with o's values as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.MaxConcurrentReconciles, "concurrency", o.MaxConcurrentReconciles,
		"How many instances are reconciled at once.")
	fs.DurationVar(&o.CallTimeout, "provider-call-timeout", o.CallTimeout, "Timeout of every provider call.")
	fs.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval,
		"Longest wait before looking again at a machine in transit (booting, stopping, waiting for capacity).")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod,
		"How often a settled instance is observed again to catch drift (jittered by up to 20%).")
	fs.DurationVar(&o.ProvisioningDeadline, "provisioning-deadline", o.ProvisioningDeadline,
		"How long an instance may stay short of its power state before it is Stalled (ProvisioningDeadlineExceeded); negative turns it off.")
	fs.DurationVar(&o.RetryBaseDelay, "retry-base-delay", o.RetryBaseDelay, "First retry delay after a transient provider error.")
	fs.DurationVar(&o.RetryMaxDelay, "retry-max-delay", o.RetryMaxDelay, "Cap of the retry delay after transient provider errors.")
	fs.Func("lost-machine-policy",
		"What to do when a machine disappears from the cloud out of band: Recreate (default) or Report.",
		func(s string) error {
			switch p := LostMachinePolicy(s); p {
			case LostMachineRecreate, LostMachineReport:
				o.LostMachinePolicy = p
				return nil
			}
			return fmt.Errorf("must be %s or %s", LostMachineRecreate, LostMachineReport)
		})
}
