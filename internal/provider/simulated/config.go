package simulated

import (
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"
)

// Latencies are how long each step of a machine's life takes. Zero makes a
// step instant, which fast tests use.
type Latencies struct {
	// Allocate is PROVISIONING once capacity is found.
	Allocate time.Duration
	// Boot is STAGING after create or start.
	Boot time.Duration
	// Stop is STOPPING.
	Stop time.Duration
	// Suspend is SUSPENDING.
	Suspend time.Duration
	// Resume is STAGING after a resume.
	Resume time.Duration
	// Delete is how long a deleted machine takes to disappear.
	Delete time.Duration
	// Repair is REPAIRING after a host failure.
	Repair time.Duration
}

// Faults are the rates of injected failures, each a probability in [0, 1].
type Faults struct {
	// TransientErrorRate is the chance that a call fails with a retryable error
	// before doing anything.
	TransientErrorRate float64
	// SlowCallRate is the chance that a call does its work and then takes
	// SlowCallDelay to answer, past a caller's timeout: the caller sees a
	// timeout although the cloud acted, which is what create tokens are for.
	SlowCallRate  float64
	SlowCallDelay time.Duration
	// HostFailureRate is the chance, per observation of a running machine,
	// that its host fails: the machine goes to REPAIRING, then back to RUNNING.
	HostFailureRate float64
	// LossRate is the chance, per observation, that the machine is lost out
	// of band: it disappears from the cloud without anybody deleting it.
	LossRate float64
	// DropRate is the chance that the network service (cmd/simcloud) closes
	// a call's connection without an answer after the cloud acted on it, as
	// a dropped connection or a lost reply would. The in-process cloud has
	// no connection to drop and ignores it.
	DropRate float64
}

// Config configures a simulated cloud.
type Config struct {
	// StateDir holds one file per machine; a cloud opened on the same
	// directory again finds its machines. Empty keeps state in memory only.
	StateDir string
	// InstanceTypes are the instance types that exist (by name, the last
	// segment of spec.type) and how many machines of each fit. A type absent
	// from the map is refused as unknown.
	InstanceTypes map[string]int
	// GPUs are the GPU types that exist (by name) and how many GPUs of each there are.
	GPUs map[string]int
	// Images are the image names that exist; empty accepts every image.
	Images    []string
	Latencies Latencies
	Faults    Faults
	// Clock is the cloud's time; nil means the real clock.
	Clock clock.Clock
	// Seed seeds the fault dice; zero picks a random seed.
	Seed uint64
}

// DefaultConfig is a cloud with a handful of instance and GPU types, room for
// a thousand machines of each CPU type, and short, realistic latencies.
func DefaultConfig() Config {
	return Config{
		InstanceTypes: map[string]int{
			"cpu1-small": 1000, "cpu1-medium": 1000, "cpu1-large": 1000,
			"g1-large": 200, "g1-xlarge": 200, "g1-2xlarge": 100, "g1-8xlarge": 50,
		},
		GPUs: map[string]int{"h100-80gb": 800, "a100-80gb": 800, "l40s-48gb": 800},
		Latencies: Latencies{
			Allocate: 2 * time.Second, Boot: 5 * time.Second, Stop: 3 * time.Second,
			Suspend: 3 * time.Second, Resume: 3 * time.Second, Delete: 2 * time.Second,
			Repair: 10 * time.Second,
		},
		Faults: Faults{SlowCallDelay: time.Minute},
	}
}

// BindFlags binds the cloud's settings to flags named --sim-*, with cfg's
// values as defaults.
func (cfg *Config) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&cfg.StateDir, "sim-state-dir", cfg.StateDir,
		"Directory where the simulated cloud keeps its machines across restarts; empty keeps them in memory.")
	fs.Var((*capacityFlag)(&cfg.InstanceTypes), "sim-instance-types",
		"Instance types of the simulated cloud and how many machines of each fit, as name=count,...")
	fs.Var((*capacityFlag)(&cfg.GPUs), "sim-gpus",
		"GPU types of the simulated cloud and how many GPUs of each there are, as name=count,...")
	fs.Func("sim-images", "Image names that exist in the simulated cloud, comma-separated; empty accepts every image.",
		func(s string) error {
			cfg.Images = nil
			for _, name := range strings.Split(s, ",") {
				if name = strings.TrimSpace(name); name != "" {
					cfg.Images = append(cfg.Images, name)
				}
			}
			return nil
		})
	l := &cfg.Latencies
	fs.DurationVar(&l.Allocate, "sim-latency-allocate", l.Allocate, "Simulated time to allocate a machine (PROVISIONING).")
	fs.DurationVar(&l.Boot, "sim-latency-boot", l.Boot, "Simulated time to boot a machine (STAGING).")
	fs.DurationVar(&l.Stop, "sim-latency-stop", l.Stop, "Simulated time to stop a machine (STOPPING).")
	fs.DurationVar(&l.Suspend, "sim-latency-suspend", l.Suspend, "Simulated time to suspend a machine (SUSPENDING).")
	fs.DurationVar(&l.Resume, "sim-latency-resume", l.Resume, "Simulated time to resume a machine (STAGING).")
	fs.DurationVar(&l.Delete, "sim-latency-delete", l.Delete, "Simulated time to delete a machine.")
	fs.DurationVar(&l.Repair, "sim-latency-repair", l.Repair, "Simulated time to repair a failed host (REPAIRING).")
	f := &cfg.Faults
	fs.Float64Var(&f.TransientErrorRate, "sim-transient-error-rate", f.TransientErrorRate,
		"Probability that a simulated cloud call fails with a retryable error.")
	fs.Float64Var(&f.SlowCallRate, "sim-slow-call-rate", f.SlowCallRate,
		"Probability that a simulated cloud call acts and then answers after --sim-slow-call-delay.")
	fs.DurationVar(&f.SlowCallDelay, "sim-slow-call-delay", f.SlowCallDelay, "How long a slow simulated call takes.")
	fs.Float64Var(&f.HostFailureRate, "sim-host-failure-rate", f.HostFailureRate,
		"Probability, per observation of a running machine, that its host fails (REPAIRING, then RUNNING).")
	fs.Float64Var(&f.LossRate, "sim-loss-rate", f.LossRate,
		"Probability, per observation, that a machine is lost out of band.")
	fs.Float64Var(&f.DropRate, "sim-drop-rate", f.DropRate,
		"Probability that the simulated cloud's network service drops a call's connection after acting on it.")
}

// capacityFlag is a name=count,... flag.
type capacityFlag map[string]int

func (c *capacityFlag) String() string {
	if c == nil {
		return ""
	}
	names := make([]string, 0, len(*c))
	for name := range *c {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", name, (*c)[name]))
	}
	return strings.Join(parts, ",")
}

func (c *capacityFlag) Set(s string) error {
	m := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(count)
		if !ok || name == "" || err != nil || n < 0 {
			return fmt.Errorf("%q is not name=count with a count of 0 or more", part)
		}
		m[name] = n
	}
	*c = m
	return nil
}

func (f Faults) validate() error {
	for name, rate := range map[string]float64{
		"transient error rate": f.TransientErrorRate, "slow call rate": f.SlowCallRate,
		"host failure rate": f.HostFailureRate, "loss rate": f.LossRate, "drop rate": f.DropRate,
	} {
		if rate < 0 || rate > 1 {
			return fmt.Errorf("the %s must be between 0 and 1, not %g", name, rate)
		}
	}
	return nil
}
