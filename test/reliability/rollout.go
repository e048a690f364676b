package main

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// cloudMachines asks the simulated cloud's service for its machines and
// counts them per instance.
func cloudMachines(ctx context.Context, stack *devstack.Stack) (map[string]int, int, error) {
	cloud, err := stack.SimcloudAdmin()
	if err != nil {
		return nil, 0, err
	}
	machines, err := cloud.Machines(ctx)
	if err != nil {
		return nil, 0, err
	}
	perInstance := map[string]int{}
	for _, m := range machines {
		perInstance[m.Namespace+"/"+m.Name]++
	}
	return perInstance, len(machines), nil
}

// crashRolloutSpread is how long the crash check's creates take at the least.
const crashRolloutSpread = 5 * time.Second

// crashSafety kills the manager three times with SIGKILL while a rollout
// provisions, restarts it each time, and checks that every instance runs on
// exactly one machine.
func crashSafety(ctx context.Context, e env, results *checks) error {
	n := load.EnvInt("RELIABILITY_N", 500)
	const ns = "crash"
	stack, c, err := e.startRollout(ctx, ns, n, "--sim-latency-allocate=200ms", "--sim-latency-boot=300ms")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	began := time.Now()
	created := make(chan error, 1)
	// The creates are spread evenly over crashRolloutSpread (a few clients,
	// each pausing after a create), so that every kill finds instances on
	// their way to a machine: at the short size 32 clients at once made a
	// rollout of 50 that had finished by the third kill
	// (crash_kills_mid_provisioning 2/3).
	const workers = 4
	pace := crashRolloutSpread * workers / time.Duration(n)
	go func() {
		created <- load.CreateInstances(ctx, c, ns, "vm", n, workers, func(*computev1alpha1.Instance) { time.Sleep(pace) })
	}()

	// Kill when a fifth, two fifths and three fifths of the rollout run, and
	// count the instances in PROVISIONING or STAGING as last seen before each
	// kill: a kill that found none tested no crash mid-provisioning.
	killsMidProvisioning := 0
	for kill := 1; kill <= 3; kill++ {
		threshold := kill * n / 5
		inTransit, err := waitRunningAtLeast(ctx, c, ns, threshold)
		if err != nil {
			return fmt.Errorf("rollout did not reach %d RUNNING before kill %d: %w", threshold, kill, err)
		}
		stack.KillManager()
		if inTransit > 0 {
			killsMidProvisioning++
		}
		fmt.Printf("crash | SIGKILL %d at %d/%d RUNNING, %d in PROVISIONING or STAGING, after %s; restarting\n",
			kill, threshold, n, inTransit, since(began))
		if err := stack.StartManager(ctx); err != nil {
			return err
		}
	}
	if err := <-created; err != nil {
		return err
	}
	running, err := load.WaitRunning(ctx, c, ns, n, 10*time.Minute)
	if err != nil {
		return err
	}
	stack.StopManager()
	perInstance, total, err := cloudMachines(ctx, stack)
	if err != nil {
		return err
	}
	duplicates := total - len(perInstance)
	for key := range perInstance {
		var inst computev1alpha1.Instance
		namespace, name := splitKey(key)
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &inst); apierrors.IsNotFound(err) {
			duplicates++ // a machine no instance accounts for
		}
	}
	fmt.Printf("crash | %d instances, %d RUNNING, %d machines in the cloud, after %s\n", n, running, total, since(began))
	results.add("crash_kills_mid_provisioning", fmt.Sprintf("%d/3", killsMidProvisioning), killsMidProvisioning == 3)
	results.add("crash_duplicate_machines", duplicates, duplicates == 0)
	results.add("crash_all_running", boolInt(running == n), running == n)
	return nil
}

// faults rolls out instances while the simulated cloud fails 30% of calls and
// stalls 10% past the manager's provider timeout, then deletes them all.
func faults(ctx context.Context, e env, results *checks) error {
	n := load.EnvInt("RELIABILITY_N", 500)
	const ns = "faults"
	stack, c, err := e.startRollout(ctx, ns, n,
		"--sim-latency-allocate=100ms", "--sim-latency-boot=100ms", "--sim-latency-delete=100ms", "--sim-latency-stop=100ms",
		"--sim-transient-error-rate=0.3", "--sim-slow-call-rate=0.1",
		"--provider-call-timeout=1s", "--sim-slow-call-delay=3s")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	began := time.Now()
	if err := load.CreateInstances(ctx, c, ns, "vm", n, 32, nil); err != nil {
		return err
	}
	running, err := load.WaitRunning(ctx, c, ns, n, 15*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("faults | %d of %d RUNNING after %s\n", running, n, since(began))
	results.add("faults_all_running", boolInt(running == n), running == n)

	if err := c.DeleteAllOf(ctx, &computev1alpha1.Instance{}, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("failed to delete the instances: %w", err)
	}
	wait, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	left := 0
	err = load.WatchInstances(wait, c, ns, func(state map[string]*computev1alpha1.Instance) bool {
		left = len(state)
		return left == 0
	})
	if err != nil {
		return fmt.Errorf("%d instances were not gone 15 minutes after deletion: %w", left, err)
	}
	stack.StopManager()
	_, total, err := cloudMachines(ctx, stack)
	if err != nil {
		return err
	}
	fmt.Printf("faults | all deleted after %s; %d machines left in the cloud\n", since(began), total)
	results.add("faults_leaked_machines", total, total == 0)
	return nil
}

// waitRunningAtLeast watches ns (for at most ten minutes) until at least
// want instances run, and says how many were in PROVISIONING or STAGING when
// it last looked: the instances a fault at that moment catches mid-way.
func waitRunningAtLeast(ctx context.Context, c client.WithWatch, ns string, want int) (inTransit int, err error) {
	wait, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err = load.WatchInstances(wait, c, ns, func(state map[string]*computev1alpha1.Instance) bool {
		inTransit = countProvisioning(state)
		return load.CountRunning(state) >= want
	})
	return inTransit, err
}

// countProvisioning counts the instances on their way to a machine.
func countProvisioning(state map[string]*computev1alpha1.Instance) int {
	n := 0
	for _, inst := range state {
		switch inst.Status.Lifecycle.Status {
		case computev1alpha1.LifecycleProvisioning, computev1alpha1.LifecycleStaging:
			n++
		}
	}
	return n
}

func splitKey(key string) (string, string) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
