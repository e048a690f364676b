package controllers_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

const (
	scaleInstances = 1000
	// scaleWriters is how many clients write at once, in the baseline and
	// when the test creates the instances; the operator runs its default concurrency.
	scaleWriters = 16
)

// scaleResult is what a thousand-instance run measured.
type scaleResult struct {
	// baseline is the time the kube-apiserver needs for the writes one
	// instance costs at the least: its create, the finalizer, and the
	// final status.
	baseline time.Duration
	// toRunning is the time from the first create to the last RUNNING with
	// the operator at work.
	toRunning time.Duration
}

// runThousand creates scaleInstances instances at once with zero simulated
// latency and waits until all are RUNNING, checking that each has exactly
// one machine; it also times the baseline writes with no operator.
func runThousand(t testing.TB, h *harness) scaleResult {
	var res scaleResult
	ctx := context.Background()

	// The baseline, in a namespace no operator watches.
	baseNS := h.ns + "-baseline"
	if err := h.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: baseNS}}); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	parallel(t, scaleInstances, func(i int) error {
		inst := h.newInstance(fmt.Sprintf("base-%04d", i))
		inst.Namespace = baseNS
		if err := h.c.Create(ctx, inst); err != nil {
			return err
		}
		base := inst.DeepCopy()
		inst.Finalizers = []string{computev1alpha1.Finalizer}
		if err := h.c.Patch(ctx, inst, client.MergeFrom(base)); err != nil {
			return err
		}
		base = inst.DeepCopy()
		inst.Status.Machine = computev1alpha1.MachineRef{Provider: simulated.Name, CreateToken: provider.CreateToken(inst)}
		inst.Status.ObservedGeneration = inst.Generation
		inst.Status.Lifecycle = computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleRunning, StatusMessage: "machine is running"}
		return h.c.Status().Patch(ctx, inst, client.MergeFrom(base))
	})
	res.baseline = time.Since(started)

	// The operator's run.
	started = time.Now()
	parallel(t, scaleInstances, func(i int) error {
		return h.c.Create(ctx, h.newInstance(fmt.Sprintf("vm-%04d", i)))
	})
	deadline := started.Add(5 * time.Minute)
	for {
		list := &computev1alpha1.InstanceList{}
		if err := h.c.List(ctx, list, client.InNamespace(h.ns)); err != nil {
			t.Fatal(err)
		}
		runningNow := 0
		for i := range list.Items {
			if st := list.Items[i].Status; st.Lifecycle.Status == computev1alpha1.LifecycleRunning && st.ObservedGeneration == list.Items[i].Generation {
				runningNow++
			}
		}
		if runningNow == scaleInstances {
			res.toRunning = time.Since(started)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d instances RUNNING after %s", runningNow, scaleInstances, time.Since(started))
		}
		<-time.After(50 * time.Millisecond)
	}

	// One machine per instance, the one its status names.
	machines := map[types.NamespacedName]string{}
	for _, m := range h.cloud().Machines() {
		key := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
		if _, dup := machines[key]; dup {
			t.Fatalf("%s has two machines", key)
		}
		machines[key] = m.ID
	}
	if len(machines) != scaleInstances {
		t.Fatalf("the cloud holds %d machines for %d instances", len(machines), scaleInstances)
	}
	return res
}

// parallel runs do(0..n-1) on scaleWriters goroutines and fails t on the first error.
func parallel(t testing.TB, n int, do func(int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		next  = make(chan int)
		errMu sync.Mutex
		first error
	)
	for range scaleWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func scaleHarness(t testing.TB) *harness {
	return newHarness(t, func(c *simulated.Config, o *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		c.InstanceTypes = map[string]int{"g1-xlarge": scaleInstances}
		o.ResyncPeriod = time.Hour
		o.MaxConcurrentReconciles = controllers.DefaultOptions().MaxConcurrentReconciles
	})
}

// TestThousandInstancesReachRunning checks that a thousand instances created
// at once all reach RUNNING, one machine each. It logs the time against the
// baseline; `make bench-reconciler` is the one to print the number.
func TestThousandInstancesReachRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a thousand instances")
	}
	res := runThousand(t, scaleHarness(t))
	t.Logf("%d instances: RUNNING after %s; the kube-apiserver alone needs %s for their writes (%.2fx)",
		scaleInstances, res.toRunning.Round(time.Millisecond), res.baseline.Round(time.Millisecond),
		res.toRunning.Seconds()/res.baseline.Seconds())
}

// BenchmarkThousandInstances reports the seconds a thousand instances created
// at once take to reach RUNNING with zero simulated latency, the seconds the
// kube-apiserver needs for the same instances' minimal writes with no
// operator, and their ratio.
func BenchmarkThousandInstances(b *testing.B) {
	var run, base time.Duration
	for range b.N {
		res := runThousand(b, scaleHarness(b))
		run += res.toRunning
		base += res.baseline
	}
	b.ReportMetric(run.Seconds()/float64(b.N), "s-to-running")
	b.ReportMetric(base.Seconds()/float64(b.N), "s-apiserver-writes")
	b.ReportMetric(run.Seconds()/base.Seconds(), "ratio")
}
