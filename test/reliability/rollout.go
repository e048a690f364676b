package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

const (
	typeName = "cpu1-small"
	typeURI  = "/v1/regions/us-texas-1/zones/us1-a/instance-types/" + typeName
)

func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		computev1alpha1.RegionLabel: "us-texas-1", computev1alpha1.ProjectLabel: name,
	}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", name, err)
	}
	return nil
}

// createAll creates n instances with 32 clients at once.
func createAll(ctx context.Context, c client.Client, namespace string, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				inst := &computev1alpha1.Instance{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("vm-%d", i), Namespace: namespace},
					Spec:       computev1alpha1.InstanceSpec{Type: typeURI},
				}
				if err := c.Create(ctx, inst); err != nil {
					errs <- fmt.Errorf("failed to create %s: %w", inst.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// watchInstances calls seen with every state of the namespace's instances,
// from a list and then a watch, until seen returns true or ctx ends.
func watchInstances(ctx context.Context, c client.WithWatch, namespace string, seen func(map[string]*computev1alpha1.Instance) bool) error {
	state := map[string]*computev1alpha1.Instance{}
	for {
		list := &computev1alpha1.InstanceList{}
		if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return fmt.Errorf("failed to list instances: %w", err)
		}
		clear(state)
		for i := range list.Items {
			state[list.Items[i].Name] = &list.Items[i]
		}
		if seen(state) {
			return nil
		}
		w, err := c.Watch(ctx, &computev1alpha1.InstanceList{}, client.InNamespace(namespace),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			return fmt.Errorf("failed to watch instances: %w", err)
		}
		for ev := range w.ResultChan() {
			inst, ok := ev.Object.(*computev1alpha1.Instance)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(state, inst.Name)
			} else {
				state[inst.Name] = inst
			}
			if seen(state) {
				w.Stop()
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func countRunning(state map[string]*computev1alpha1.Instance) int {
	n := 0
	for _, inst := range state {
		if inst.Status.Lifecycle.Status == computev1alpha1.LifecycleRunning {
			n++
		}
	}
	return n
}

// waitAllRunning waits until n instances of the namespace are RUNNING; it
// reports how many were when the timeout passed.
func waitAllRunning(ctx context.Context, c client.WithWatch, namespace string, n int, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := 0
	err := watchInstances(ctx, c, namespace, func(state map[string]*computev1alpha1.Instance) bool {
		last = countRunning(state)
		return last >= n
	})
	if err != nil && ctx.Err() != nil {
		return last, nil
	}
	return last, err
}

// cloudMachines opens the simulated cloud's state, as the manager left it,
// and counts machines per instance.
func cloudMachines(dataDir string) (map[string]int, int, error) {
	cfg := simulated.DefaultConfig()
	cfg.StateDir = filepath.Join(dataDir, "cloud")
	cloud, err := simulated.New(cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to open the simulated cloud's state: %w", err)
	}
	perInstance := map[string]int{}
	machines := cloud.Machines()
	for _, m := range machines {
		perInstance[m.Namespace+"/"+m.Name]++
	}
	return perInstance, len(machines), nil
}

// crashSafety kills the manager three times with SIGKILL while a rollout
// provisions, restarts it each time, and checks that every instance runs on
// exactly one machine.
func crashSafety(ctx context.Context, e env, results *checks) error {
	n := envInt("RELIABILITY_N", 500)
	const ns = "crash"
	stack, c, _, err := e.startStack(ctx, ns,
		"--sim-latency-allocate=200ms", "--sim-latency-boot=300ms",
		fmt.Sprintf("--sim-instance-types=%s=%d", typeName, 10*n))
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return err
	}
	began := time.Now()
	created := make(chan error, 1)
	go func() { created <- createAll(ctx, c, ns, n) }()

	// Kill when a fifth, two fifths and three fifths of the rollout run:
	// each kill lands with many instances in the middle of provisioning.
	for kill := 1; kill <= 3; kill++ {
		threshold := kill * n / 5
		wait, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err := watchInstances(wait, c, ns, func(state map[string]*computev1alpha1.Instance) bool {
			return countRunning(state) >= threshold
		})
		cancel()
		if err != nil {
			return fmt.Errorf("rollout did not reach %d RUNNING before kill %d: %w", threshold, kill, err)
		}
		stack.KillManager()
		fmt.Printf("crash | SIGKILL %d at %d/%d RUNNING after %s; restarting\n", kill, threshold, n, since(began))
		if err := stack.StartManager(ctx); err != nil {
			return err
		}
	}
	if err := <-created; err != nil {
		return err
	}
	running, err := waitAllRunning(ctx, c, ns, n, 10*time.Minute)
	if err != nil {
		return err
	}
	stack.StopManager()
	perInstance, total, err := cloudMachines(filepath.Join(e.work, ns))
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
	results.add("crash_duplicate_machines", duplicates, duplicates == 0)
	results.add("crash_all_running", boolInt(running == n), running == n)
	return nil
}

// faults rolls out instances while the simulated cloud fails 30% of calls and
// stalls 10% past the manager's provider timeout, then deletes them all.
func faults(ctx context.Context, e env, results *checks) error {
	n := envInt("RELIABILITY_N", 500)
	const ns = "faults"
	stack, c, _, err := e.startStack(ctx, ns,
		"--sim-latency-allocate=100ms", "--sim-latency-boot=100ms", "--sim-latency-delete=100ms", "--sim-latency-stop=100ms",
		fmt.Sprintf("--sim-instance-types=%s=%d", typeName, 10*n),
		"--sim-transient-error-rate=0.3", "--sim-slow-call-rate=0.1",
		"--provider-call-timeout=1s", "--sim-slow-call-delay=3s")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	if err := ensureNamespace(ctx, c, ns); err != nil {
		return err
	}
	began := time.Now()
	if err := createAll(ctx, c, ns, n); err != nil {
		return err
	}
	running, err := waitAllRunning(ctx, c, ns, n, 15*time.Minute)
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
	err = watchInstances(wait, c, ns, func(state map[string]*computev1alpha1.Instance) bool {
		left = len(state)
		return left == 0
	})
	if err != nil {
		return fmt.Errorf("%d instances were not gone 15 minutes after deletion: %w", left, err)
	}
	stack.StopManager()
	_, total, err := cloudMachines(filepath.Join(e.work, ns))
	if err != nil {
		return err
	}
	fmt.Printf("faults | all deleted after %s; %d machines left in the cloud\n", since(began), total)
	results.add("faults_leaked_machines", total, total == 0)
	return nil
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
