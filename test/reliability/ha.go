package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// leaseName is the manager's leader election Lease, in the namespace
// devstack names with --leader-election-namespace.
const leaseName = "instance-operator.compute.k0rdent.ai"

// haStack is a control plane, one simulated cloud and two manager replicas
// electing a leader, as config/ deploys them.
type haStack struct {
	stack    *devstack.Stack
	c        client.WithWatch
	replicas [2]*devstack.Replica
	extra    []string
}

func (e env) startHAStack(ctx context.Context, name string, simArgs ...string) (*haStack, error) {
	stack, err := devstack.Start(ctx, devstack.Options{
		Root: e.root, AssetsDir: e.assets, DataDir: e.work + "/" + name,
		ManagerPath: e.manager, SimcloudPath: e.simcloud, NoManager: true,
		APIAddress:  "127.0.0.1:0", // unused: the replicas have their own
		Log:         load.PrefixWriter{Prefix: name + " | "},
		ManagerArgs: append([]string{"--zap-log-level=" + logLevel()}, simArgs...),
	})
	if err != nil {
		return nil, err
	}
	c, err := load.Client(stack)
	if err != nil {
		_ = stack.Stop()
		return nil, err
	}
	h := &haStack{stack: stack, c: c, extra: []string{"--leader-elect", "--api-rate-limit=0"}}
	for i, r := range []string{"a", "b"} {
		if err := h.start(ctx, i, r); err != nil {
			_ = stack.Stop()
			return nil, err
		}
	}
	return h, nil
}

func (h *haStack) start(ctx context.Context, i int, name string) error {
	port, err := load.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if h.replicas[i] != nil {
		addr = h.replicas[i].APIAddress
	}
	r, err := h.stack.StartReplica(ctx, name, addr, h.extra...)
	if err != nil {
		return err
	}
	h.replicas[i] = r
	return nil
}

// leader waits until the Lease names a running replica and returns its
// index and when it acquired the Lease (the Lease's own acquireTime: the
// same machine's clock).
func (h *haStack) leader(ctx context.Context) (int, time.Time, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var lease coordinationv1.Lease
		if err := h.c.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: leaseName}, &lease); err == nil {
			pid, _ := strconv.Atoi(lease.Labels["compute.k0rdent.ai/holder-pid"])
			for i, r := range h.replicas {
				if r.Running() && r.PID() == pid && lease.Spec.AcquireTime != nil {
					return i, lease.Spec.AcquireTime.Time, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, time.Time{}, errors.New("no running replica holds the leader Lease")
}

// statusWrites records when the manager last wrote an instance's status: a
// MODIFIED event (the test only creates; admission stamps the finalizer at
// create, so every later write is a reconcile's).
type statusWrites struct {
	mu    sync.Mutex
	times []time.Time
}

func (s *statusWrites) watch(ctx context.Context, c client.WithWatch, ns string) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, &computev1alpha1.InstanceList{}, client.InNamespace(ns))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				s.mu.Lock()
				s.times = append(s.times, time.Now())
				s.mu.Unlock()
			}
		}
	}
}

// firstAfter waits for the first write after t.
func (s *statusWrites) firstAfter(t time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, at := range s.times {
			if at.After(t) {
				s.mu.Unlock()
				return at, true
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

// duplicates counts the machines beyond one per instance, and the machines
// no instance accounts for.
func duplicates(ctx context.Context, stack *devstack.Stack, c client.Client) (int, int, error) {
	perInstance, total, err := cloudMachines(ctx, stack)
	if err != nil {
		return 0, 0, err
	}
	dup := total - len(perInstance)
	for key := range perInstance {
		namespace, name := splitKey(key)
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &computev1alpha1.Instance{}); err != nil {
			dup++
		}
	}
	return dup, total, nil
}

// failover rolls out RELIABILITY_N instances in three waves over two
// replicas sharing one cloud, SIGKILLs the leader in the middle of each wave
// and starts it again (as a standby now), and measures the longest time
// from a kill to the next status write, which only the new leader can make.
func failover(ctx context.Context, e env, results *checks) error {
	n := load.EnvInt("RELIABILITY_N", 500)
	const ns = "failover"
	h, err := e.startHAStack(ctx, ns, "--sim-latency-allocate=500ms", "--sim-latency-boot=1s",
		fmt.Sprintf("--sim-instance-types=%s=%d", load.TypeName, 10*n))
	if err != nil {
		return err
	}
	defer func() { _ = h.stack.Stop() }()
	if err := load.EnsureProjectNamespace(ctx, h.c, ns); err != nil {
		return err
	}
	writes := &statusWrites{}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go writes.watch(watchCtx, h.c, ns)

	began := time.Now()
	var longest time.Duration
	created := 0
	for kill := 1; kill <= 3; kill++ {
		wave := n / 3
		if kill == 3 {
			wave = n - created
		}
		// Most of the wave before the kill, the rest right after it: then
		// the new leader surely has work, however far the dead one got.
		late := max(1, wave/4)
		early := wave - late
		if err := load.CreateInstances(ctx, h.c, ns, fmt.Sprintf("w%d", kill), early, 16, nil); err != nil {
			return err
		}
		created += early
		// Mid-wave: a quarter of what was created RUNNING, the rest on its way.
		threshold := created - early + early/4
		inTransit, err := waitRunningAtLeast(ctx, h.c, ns, threshold)
		if err != nil {
			return fmt.Errorf("wave %d did not reach %d RUNNING: %w", kill, threshold, err)
		}
		i, _, err := h.leader(ctx)
		if err != nil {
			return err
		}
		killedAt := time.Now()
		h.replicas[i].Kill()
		fmt.Printf("failover | SIGKILL of leader %s (pid %d) at %d/%d RUNNING, %d in PROVISIONING or STAGING, after %s\n",
			h.replicas[i].Name, h.replicas[i].PID(), threshold, created, inTransit, since(began))
		if err := load.CreateInstances(ctx, h.c, ns, fmt.Sprintf("w%d-late", kill), late, 16, nil); err != nil {
			return err
		}
		created += late
		// Writes the dead leader had in flight still arrive for a moment;
		// only once the standby holds the Lease is a write surely its own.
		standby := 1 - i
		j, acquiredAt, err := h.leader(ctx)
		if err != nil || j != standby {
			return fmt.Errorf("the standby did not take the Lease after the leader's kill: %w", err)
		}
		at, ok := writes.firstAfter(acquiredAt, 2*time.Minute)
		if !ok {
			return fmt.Errorf("no reconcile within 2 minutes of the standby taking the Lease")
		}
		takeover := at.Sub(killedAt)
		fmt.Printf("failover | the standby took the Lease %s and wrote a status %s after the kill\n",
			acquiredAt.Sub(killedAt).Round(time.Millisecond), takeover.Round(time.Millisecond))
		longest = max(longest, takeover)
		if err := h.start(ctx, i, h.replicas[i].Name); err != nil {
			return err
		}
	}
	running, err := load.WaitRunning(ctx, h.c, ns, n, 10*time.Minute)
	if err != nil {
		return err
	}
	dup, total, err := duplicates(ctx, h.stack, h.c)
	if err != nil {
		return err
	}
	fmt.Printf("failover | %d instances, %d RUNNING, %d machines in the cloud, after %s\n", n, running, total, since(began))
	results.add("failover_duplicate_machines", dup, dup == 0)
	results.add("failover_all_running", boolInt(running == n), running == n)
	// Bounded by the lease duration (20s) plus a retry period (2s), and
	// what the new leader's cache sync takes.
	results.add("failover_takeover_s", fmt.Sprintf("%.1f", longest.Seconds()), longest < 45*time.Second)
	return nil
}

// apiReplicaKill keeps clients reading the REST API, spread over both
// replicas and moving to the other on a connection error as a load balancer
// would, while each replica in turn is SIGKILLed and started again; every
// request must get an answer, and a 200.
func apiReplicaKill(ctx context.Context, e env, results *checks) error {
	const ns = "api-replica"
	clients := load.EnvInt("RELIABILITY_CLIENTS", 50)
	h, err := e.startHAStack(ctx, ns)
	if err != nil {
		return err
	}
	defer func() { _ = h.stack.Stop() }()
	token, err := devstack.ReadToken(h.stack.TokenFile)
	if err != nil {
		return err
	}
	path := "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/" + devstack.SampleInstance
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(addr string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var requests, failures, movedOver atomic.Int64
	var firstFailure atomic.Value
	// A restarted replica keeps its address, so the clients need only these.
	addrs := [2]string{h.replicas[0].APIAddress, h.replicas[1].APIAddress}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				first, other := addrs[k%2], addrs[(k+1)%2]
				requests.Add(1)
				code, err := get(first)
				if err != nil {
					movedOver.Add(1)
					code, err = get(other)
				}
				if err != nil || code != http.StatusOK {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("code %d, err %v", code, err))
				}
			}
		}()
	}
	began := time.Now()
	for i := range h.replicas {
		time.Sleep(2 * time.Second)
		name, pid := h.replicas[i].Name, h.replicas[i].PID()
		h.replicas[i].Kill()
		fmt.Printf("api-replica | SIGKILL of replica %s (pid %d) after %s\n", name, pid, since(began))
		time.Sleep(2 * time.Second)
		if err := h.start(ctx, i, name); err != nil {
			close(stop)
			wg.Wait()
			return err
		}
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	fmt.Printf("api-replica | %d requests from %d clients in %s, %d moved to the other replica, %d without a 200 (first: %v)\n",
		requests.Load(), clients, since(began), movedOver.Load(), failures.Load(), firstFailure.Load())
	results.add("api_replica_kill_errors", failures.Load(), failures.Load() == 0 && requests.Load() > 0)
	return nil
}

// waitRunningAcrossOutages is load.WaitRunning that keeps watching through
// a kube-apiserver that is away for a while.
func waitRunningAcrossOutages(ctx context.Context, c client.WithWatch, ns string, want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	running := 0
	for time.Now().Before(deadline) {
		r, err := load.WaitRunning(ctx, c, ns, want, time.Until(deadline))
		running = max(running, r)
		if err == nil {
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
	return running
}

// apiserverRestart stops kube-apiserver and etcd for 10 seconds in the
// middle of a rollout; the manager (leader-elected, as deployed) must ride
// it out without a restart of its own and finish the rollout with one
// machine per instance.
func apiserverRestart(ctx context.Context, e env, results *checks) error {
	n := load.EnvInt("RELIABILITY_N", 500)
	const ns = "apiserver-restart"
	stack, c, err := e.startRollout(ctx, ns, n, "--leader-elect", "--sim-latency-allocate=500ms", "--sim-latency-boot=1s")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	pid := stack.ManagerPID()
	began := time.Now()
	if err := load.CreateInstances(ctx, c, ns, "vm", n, 16, nil); err != nil {
		return err
	}
	inTransit, err := waitRunningAtLeast(ctx, c, ns, n/4)
	if err != nil {
		return err
	}
	fmt.Printf("apiserver-restart | stopping kube-apiserver and etcd for 10s at %d/%d RUNNING, %d in PROVISIONING or STAGING\n", n/4, n, inTransit)
	if err := stack.RestartControlPlane(10 * time.Second); err != nil {
		return err
	}
	back := time.Now()
	running := waitRunningAcrossOutages(ctx, c, ns, n, 10*time.Minute)
	// The leader renewed its Lease after the outage: it held on rather
	// than stepping down (which exits the process) later.
	renewed := false
	for deadline := time.Now().Add(time.Minute); !renewed && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var lease coordinationv1.Lease
		if err := c.Get(ctx, client.ObjectKey{Namespace: metav1.NamespaceDefault, Name: leaseName}, &lease); err == nil &&
			lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(back) &&
			lease.Labels["compute.k0rdent.ai/holder-pid"] == strconv.Itoa(pid) {
			renewed = true
		}
	}
	// Signal 0 fails once the process is gone (devstack reaps it).
	restarted := !renewed || syscall.Kill(pid, 0) != nil
	if restarted {
		fmt.Printf("apiserver-restart | the manager did not hold on (renewed its Lease after the outage: %v); its log ends:\n%s\n",
			renewed, stack.ManagerLogTail(10))
	}
	dup, total, err := duplicates(ctx, stack, c)
	if err != nil {
		return err
	}
	fmt.Printf("apiserver-restart | %d RUNNING of %d, %d machines, manager pid %d %s, after %s\n",
		running, n, total, pid, map[bool]string{true: "exited", false: "still running"}[restarted], since(began))
	ok := running == n && !restarted
	results.add("apiserver_restart_all_running", boolInt(ok), ok)
	results.add("apiserver_restart_duplicate_machines", dup, dup == 0)
	return nil
}

// simcloudPartition makes the simulated cloud unreachable for 20 seconds in
// the middle of a rollout (SIGSTOP: connections open but nothing answers,
// as behind a partition); instances must wait with a condition saying why,
// then converge with one machine each.
func simcloudPartition(ctx context.Context, e env, results *checks) error {
	n := load.EnvInt("RELIABILITY_N", 500)
	const ns = "partition"
	stack, c, err := e.startRollout(ctx, ns, n, "--provider-call-timeout=2s", "--sim-latency-allocate=500ms", "--sim-latency-boot=1s")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	began := time.Now()
	if err := load.CreateInstances(ctx, c, ns, "vm", n, 16, nil); err != nil {
		return err
	}
	if _, err := waitRunningAtLeast(ctx, c, ns, n/4); err != nil {
		return err
	}
	pid := stack.SimcloudPID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("failed to stop the simulated cloud: %w", err)
	}
	stoppedAt := time.Now()
	fmt.Printf("partition | the simulated cloud (pid %d) unreachable for 20s from %s\n", pid, since(began))
	// What an instance says while it waits.
	said := ""
	wait, cancel := context.WithTimeout(ctx, 20*time.Second)
	_ = load.WatchInstances(wait, c, ns, func(state map[string]*computev1alpha1.Instance) bool {
		for _, inst := range state {
			cond := meta.FindStatusCondition(inst.Status.Conditions, computev1alpha1.ConditionReconciling)
			if cond != nil && cond.Reason == computev1alpha1.ReasonRetryingAfterError && strings.Contains(cond.Message, "simulated cloud") {
				said = inst.Name + ": " + cond.Message
				return true
			}
		}
		return false
	})
	cancel()
	time.Sleep(max(0, 20*time.Second-time.Since(stoppedAt)))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("failed to resume the simulated cloud: %w", err)
	}
	fmt.Printf("partition | while unreachable, %s\n", orNothing(said))
	running, err := load.WaitRunning(ctx, c, ns, n, 10*time.Minute)
	if err != nil {
		return err
	}
	dup, total, err := duplicates(ctx, stack, c)
	if err != nil {
		return err
	}
	fmt.Printf("partition | %d RUNNING of %d, %d machines, %d duplicates, after %s\n", running, n, total, dup, since(began))
	ok := running == n && dup == 0 && said != ""
	results.add("simcloud_partition_all_running", boolInt(ok), ok)
	return nil
}

func orNothing(s string) string {
	if s == "" {
		return "no instance said it waits for the cloud"
	}
	return "an instance said " + s
}
