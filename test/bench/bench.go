package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

const (
	projectPath = "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances"
)

type bench struct {
	s          settings
	work       string
	stack      *devstack.Stack
	client     client.WithWatch
	token      string
	apiURL     string
	metricsURL string
	pprofURL   string
}

// waitRunning waits until want instances of the namespace are RUNNING.
func (b *bench) waitRunning(ctx context.Context, namespace string, want int, timeout time.Duration) error {
	running, err := load.WaitRunning(ctx, b.client, namespace, want, timeout)
	if err == nil && running < want {
		err = fmt.Errorf("%d of %d instances RUNNING after %s", running, want, timeout)
	}
	return err
}

// getBenchmark reads existing instances through the facade and, alternating
// in the same run, directly from kube-apiserver with the same bearer token
// and from the floor (a bare net/http server answering the same bytes);
// then it times a page of 500 through the facade and from kube-apiserver.
func (b *bench) getBenchmark(ctx context.Context, r *report) error {
	ns := devstack.SampleNamespace
	var names []string
	var mu sync.Mutex
	if err := load.CreateInstances(ctx, b.client, ns, "get", b.s.GetInstances, b.s.Creators, func(inst *computev1alpha1.Instance) {
		mu.Lock()
		names = append(names, inst.Name)
		mu.Unlock()
	}); err != nil {
		return err
	}
	// The list page's instances, in the same namespace (the token's).
	if err := load.CreateInstances(ctx, b.client, ns, "list", b.s.ListInstances, b.s.Creators, nil); err != nil {
		return err
	}
	// The sample instance is there too.
	if err := b.waitRunning(ctx, ns, b.s.GetInstances+b.s.ListInstances, 5*time.Minute); err != nil {
		return err
	}
	// All RUNNING is not yet quiet: the manager's events about those
	// instances are still being sent, one POST each, for seconds after (a
	// CPU profile of the first rounds, at one client, showed it). The reads
	// are timed once it has stopped writing.
	if err := b.waitQuiet(ctx, 2*time.Second, 2*time.Minute); err != nil {
		return err
	}
	// What the manager burns with no request at all (informers, leases,
	// metrics) is part of its CPU per GET below; this says how much.
	idleBefore, err := processCPU(b.stack.ManagerPID())
	if err != nil {
		return err
	}
	const idleWindow = 3 * time.Second
	time.Sleep(idleWindow)
	idleAfter, err := processCPU(b.stack.ManagerPID())
	if err != nil {
		return err
	}
	r.add("manager_idle_cpu_ms_per_s", round(float64((idleAfter-idleBefore).Milliseconds())/idleWindow.Seconds(), 1), "ms/s",
		"the manager's CPU with no request, before the rounds")

	facade := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}, Timeout: 10 * time.Second}
	bare := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}, Timeout: 10 * time.Second}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.stack.Config.CAData)
	apiserver := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 128,
	}, Timeout: 10 * time.Second}
	var paths []string
	for _, name := range names {
		paths = append(paths, projectPath+"/"+name)
	}
	floorURL, floorPID, stopFloor, err := b.startFloor(ctx, facade, paths)
	if err != nil {
		return err
	}
	defer stopFloor()
	apiserverBase := strings.TrimSuffix(b.stack.Config.Host, "/") + "/apis/compute.k0rdent.ai/v1alpha1/namespaces/" + ns + "/instances"
	targets := []target{
		{"facade", facade, func(name string) string { return b.apiURL + projectPath + "/" + name }, b.stack.ManagerPID()},
		{"apiserver", apiserver, func(name string) string { return apiserverBase + "/" + name }, 0},
		{"bare", bare, func(name string) string { return floorURL + projectPath + "/" + name }, floorPID},
	}
	// BENCH_CPU_PROFILE keeps the manager's CPU profile of the GET rounds
	// at BENCH_CPU_PROFILE_CLIENTS clients (64 unless set), for go tool
	// pprof: where the API's time goes.
	profileClients := load.EnvInt("BENCH_CPU_PROFILE_CLIENTS", 64)
	for _, c := range []int{1, 16, 64} {
		var profileDone chan error
		seconds := max(1, int(b.s.GetDuration.Seconds())*len(targets))
		if path := os.Getenv("BENCH_CPU_PROFILE"); path != "" && c == profileClients {
			profileDone = make(chan error, 1)
			go func() { profileDone <- b.saveProfile(ctx, fmt.Sprintf("profile?seconds=%d", seconds), path) }()
		} else if path := os.Getenv("BENCH_TRACE"); path != "" && c == profileClients {
			// The execution trace (go tool trace; -pprof=sched for the time
			// goroutines waited to run) of the same rounds.
			profileDone = make(chan error, 1)
			go func() { profileDone <- b.saveProfile(ctx, fmt.Sprintf("trace?seconds=%d", seconds), path) }()
		}
		results, err := b.alternate(ctx, targets, names, c)
		if profileDone != nil {
			if perr := <-profileDone; perr != nil && err == nil {
				err = perr
			}
		}
		if err != nil {
			return err
		}
		f, a, floor := results[0], results[1], results[2]
		r.add(fmt.Sprintf("facade_get_rps_c%d", c), round(f.rps(), 0), "req/s", fmt.Sprintf("%d clients", c))
		r.add(fmt.Sprintf("apiserver_get_rps_c%d", c), round(a.rps(), 0), "req/s", "same GET, same token, straight to kube-apiserver")
		r.add(fmt.Sprintf("bare_get_rps_c%d", c), round(floor.rps(), 0), "req/s", "the floor: bare net/http answering the same bytes")
		r.add(fmt.Sprintf("facade_vs_apiserver_rps_ratio_c%d", c), round(f.rps()/a.rps(), 2), "x", "")
		r.add(fmt.Sprintf("facade_vs_bare_rps_ratio_c%d", c), round(f.rps()/floor.rps(), 2), "x", "share of the floor's throughput")
		r.add(fmt.Sprintf("facade_get_p50_ms_c%d", c), round(f.percentile(50), 3), "ms", "")
		r.add(fmt.Sprintf("facade_get_p99_ms_c%d", c), round(f.percentile(99), 3), "ms", "")
		r.add(fmt.Sprintf("apiserver_get_p99_ms_c%d", c), round(a.percentile(99), 3), "ms", "")
		r.add(fmt.Sprintf("bare_get_p99_ms_c%d", c), round(floor.percentile(99), 3), "ms", "")
		r.add(fmt.Sprintf("facade_vs_bare_p99_ratio_c%d", c), round(f.percentile(99)/floor.percentile(99), 2), "x", "")
		r.add(fmt.Sprintf("facade_cpu_us_per_get_c%d", c), round(f.cpuPerRequest(), 1), "µs",
			"the manager's CPU time (user and system) per GET, all its work during the rounds included")
		r.add(fmt.Sprintf("bare_cpu_us_per_get_c%d", c), round(floor.cpuPerRequest(), 1), "µs", "the floor process's")
	}

	// A page of 500 (the largest) from each, by 4 clients at once.
	lists := []target{
		{"facade list", facade, func(string) string {
			return fmt.Sprintf("%s%s?pageSize=%d", b.apiURL, projectPath, b.s.ListInstances)
		}, 0},
		{"apiserver list", apiserver, func(string) string { return fmt.Sprintf("%s?limit=%d", apiserverBase, b.s.ListInstances) }, 0},
	}
	results, err := b.alternate(ctx, lists, names, 4)
	if err != nil {
		return err
	}
	f, a := results[0], results[1]
	n := b.s.ListInstances
	r.add(fmt.Sprintf("facade_list%d_p99_ms", n), round(f.percentile(99), 2), "ms", fmt.Sprintf("a page of %d instances, 4 clients", n))
	r.add(fmt.Sprintf("apiserver_list%d_p99_ms", n), round(a.percentile(99), 2), "ms", "the same list from kube-apiserver (limit)")
	r.add(fmt.Sprintf("facade_vs_apiserver_list%d_p99_ratio", n), round(f.percentile(99)/a.percentile(99), 2), "x", "")
	return nil
}

// alternate reads with c clients from each target in turn, four rounds
// each, so that noise from the shared machine falls on all alike.
func (b *bench) alternate(ctx context.Context, targets []target, names []string, c int) ([]*result, error) {
	results := make([]*result, len(targets))
	for i := range results {
		results[i] = &result{}
	}
	const rounds = 4
	for range rounds {
		for i, t := range targets {
			var before time.Duration
			if t.pid != 0 {
				var err error
				if before, err = processCPU(t.pid); err != nil {
					return nil, err
				}
			}
			if err := t.run(ctx, b.token, names, c, b.s.GetDuration/rounds, results[i]); err != nil {
				return nil, err
			}
			if t.pid != 0 {
				after, err := processCPU(t.pid)
				if err != nil {
					return nil, err
				}
				results[i].cpu += after - before
			}
		}
	}
	return results, nil
}

type target struct {
	name   string
	client *http.Client
	url    func(name string) string
	// pid is the serving process, whose CPU time is read around each
	// round; 0 reads none.
	pid int
}

type result struct {
	mu        sync.Mutex
	latencies []time.Duration
	elapsed   time.Duration
	cpu       time.Duration // the serving process's, during the rounds
}

// cpuPerRequest is the serving process's CPU time per request, in µs.
func (r *result) cpuPerRequest() float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(len(r.latencies))
}

// processCPU is a process's user and system CPU time so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms: the rounds are long enough).
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("failed to read the CPU time of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: fields count after it.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("process %d's stat is short", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("process %d's stat has no CPU times", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func (r *result) rps() float64 {
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

func (r *result) percentile(p float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), r.latencies...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func round(v float64, digits int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', digits, 64), 64)
	return f
}

// run reads random instances with c clients for d, adding to res. Any answer
// but 200 fails the benchmark: a fast error is not a result.
func (t target) run(ctx context.Context, token string, names []string, c int, d time.Duration, res *result) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	var failure atomic.Value
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() {
				res.mu.Lock()
				res.latencies = append(res.latencies, local...)
				res.mu.Unlock()
			}()
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, t.url(names[rand.IntN(len(names))]), nil)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Accept", "application/json")
				began := time.Now()
				resp, err := t.client.Do(req)
				if err != nil {
					failure.Store(fmt.Errorf("%s GET: %w", t.name, err))
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failure.Store(fmt.Errorf("%s GET %s answered %d", t.name, req.URL.Path, resp.StatusCode))
					return
				}
				local = append(local, time.Since(began))
			}
		}()
	}
	wg.Wait()
	res.mu.Lock()
	res.elapsed += time.Since(start)
	res.mu.Unlock()
	if err, ok := failure.Load().(error); ok {
		return err
	}
	return nil
}

// managerWrites sums the manager's own count of the writes it sent to kube-apiserver.
func (b *bench) managerWrites(ctx context.Context) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("failed to scrape the manager's metrics: %w", err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		if !strings.Contains(line, `method="POST"`) && !strings.Contains(line, `method="PUT"`) &&
			!strings.Contains(line, `method="PATCH"`) && !strings.Contains(line, `method="DELETE"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total, sc.Err()
}

// waitQuiet waits until the manager has sent no write to kube-apiserver
// (its own count, events included) for quiet.
func (b *bench) waitQuiet(ctx context.Context, quiet, timeout time.Duration) error {
	const poll = 250 * time.Millisecond
	last, err := b.managerWrites(ctx)
	if err != nil {
		return err
	}
	since := time.Now()
	for deadline := time.Now().Add(timeout); time.Since(since) < quiet; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager kept writing to kube-apiserver for %s", timeout)
		}
		time.Sleep(poll)
		n, err := b.managerWrites(ctx)
		if err != nil {
			return err
		}
		if n != last {
			last, since = n, time.Now()
		}
	}
	return nil
}

// statusWrites is kube-apiserver's own count of the writes to
// instances/status it has served.
func (b *bench) statusWrites(ctx context.Context) (float64, error) {
	cs, err := kubernetes.NewForConfig(b.stack.Config)
	if err != nil {
		return 0, err
	}
	data, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to scrape kube-apiserver's metrics: %w", err)
	}
	total := 0.0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="instances"`) ||
			!strings.Contains(line, `subresource="status"`) ||
			!(strings.Contains(line, `verb="PATCH"`) || strings.Contains(line, `verb="PUT"`) || strings.Contains(line, `verb="APPLY"`)) {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			total += v
		}
	}
	return total, nil
}

// convergeBenchmark times N instances to RUNNING beside the floor (see converge).
func (b *bench) convergeBenchmark(ctx context.Context, r *report) error {
	c, err := b.converge(ctx, b.s.N, "bench-converge", "bench-floor")
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("converge_%d_s", b.s.N), round(c.converge.Seconds(), 2), "s", fmt.Sprintf("%d instances created at once to all RUNNING", b.s.N))
	r.add(fmt.Sprintf("floor_%d_s", b.s.N), round(c.floor.Seconds(), 2), "s",
		fmt.Sprintf("bare client: create + %d status writes each (as many as the manager's), %d writers", c.statusWrites, b.s.Concurrency))
	r.add("converge_vs_floor_ratio", round(c.converge.Seconds()/c.floor.Seconds(), 2), "x", "target <= 1.5")
	r.add("converge_manager_writes_per_instance", round(c.writesPerInstance, 2), "writes",
		"the manager's writes to kube-apiserver per instance, events included")
	return nil
}

// convergence is one converge run's times.
type convergence struct {
	converge, floor   time.Duration
	statusWrites      int     // the floor's status writes per instance
	writesPerInstance float64 // the manager's writes per instance
}

// converge creates n instances at once in ns and times them to RUNNING;
// then, with the manager stopped, a bare client makes the same creates and
// as many status writes per instance as the manager made (kube-apiserver
// counts them) at the manager's concurrency against the same kube-apiserver
// in floorNS: the floor. Both are timed by the same watch, and both creates
// pass the same admission policy (it stamps the finalizer). The manager's
// other writes (a finalizer patch where the policy is missing, events) are
// its overhead and count against it. The manager is left stopped, the
// floor's instances deleted and ns's left RUNNING.
func (b *bench) converge(ctx context.Context, n int, ns, floorNS string) (*convergence, error) {
	for _, name := range []string{ns, floorNS} {
		if err := load.EnsureProjectNamespace(ctx, b.client, name); err != nil {
			return nil, err
		}
	}
	writesBefore, err := b.managerWrites(ctx)
	if err != nil {
		return nil, err
	}
	statusBefore, err := b.statusWrites(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- b.waitRunning(ctx, ns, n, 15*time.Minute) }()
	if err := load.CreateInstances(ctx, b.client, ns, "converge", n, b.s.Creators, nil); err != nil {
		return nil, err
	}
	if err := <-done; err != nil {
		return nil, err
	}
	converge := time.Since(start)
	writesAfter, err := b.managerWrites(ctx)
	if err != nil {
		return nil, err
	}
	statusAfter, err := b.statusWrites(ctx)
	if err != nil {
		return nil, err
	}
	perInstance := max(1, int(math.Round((statusAfter-statusBefore)/float64(n))))

	sample := &computev1alpha1.Instance{}
	if err := b.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "converge-0"}, sample); err != nil {
		return nil, err
	}
	var states []computev1alpha1.Lifecycle
	for _, h := range sample.Status.History {
		states = append(states, computev1alpha1.Lifecycle{Status: h.Status, StatusMessage: h.Message})
	}
	// The floor writes the last perInstance states the instances went through.
	for len(states) < perInstance {
		states = append([]computev1alpha1.Lifecycle{sample.Status.Lifecycle}, states...)
	}
	states = states[len(states)-perInstance:]
	b.stack.StopManager()

	work := make(chan *computev1alpha1.Instance, n)
	start = time.Now()
	// The floor is timed as the manager is: by the same watch, until it
	// shows every instance RUNNING.
	floorDone := make(chan error, 1)
	go func() { floorDone <- b.waitRunning(ctx, floorNS, n, 15*time.Minute) }()
	var writers sync.WaitGroup
	writeErr := make(chan error, b.s.Concurrency)
	for range b.s.Concurrency {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for inst := range work {
				for _, lc := range states {
					inst.Status.Lifecycle = lc
					inst.Status.ObservedGeneration = inst.Generation
					inst.Status.Conditions = sample.Status.Conditions
					if err := b.client.Status().Update(ctx, inst); err != nil {
						writeErr <- fmt.Errorf("floor status write: %w", err)
						return
					}
				}
			}
		}()
	}
	err = load.CreateInstances(ctx, b.client, floorNS, "floor", n, b.s.Creators, func(inst *computev1alpha1.Instance) { work <- inst })
	close(work)
	writers.Wait()
	if err != nil {
		return nil, err
	}
	select {
	case err := <-writeErr:
		return nil, err
	default:
	}
	if err := <-floorDone; err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	floor := time.Since(start)
	if err := load.ForceDeleteAll(ctx, b.client, floorNS, b.s.Concurrency); err != nil {
		return nil, err
	}
	return &convergence{converge: converge, floor: floor, statusWrites: len(states),
		writesPerInstance: (writesAfter - writesBefore) / float64(n)}, nil
}

// memoryBenchmark reads the manager's resident memory holding MemN instances
// (see hold).
func (b *bench) memoryBenchmark(ctx context.Context, r *report) error {
	h, err := b.hold(ctx, "bench-memory", "memory", b.s.MemN)
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("manager_rss_mib_%s", kilo(b.s.MemN)), round(h.peakMiB, 1), "MiB",
		fmt.Sprintf("peak resident memory holding %d instances (target <= 150 at 10k)", h.instances))
	r.add(fmt.Sprintf("manager_rss_now_mib_%s", kilo(b.s.MemN)), round(h.nowMiB, 1), "MiB", "resident memory at rest afterwards")
	r.add(fmt.Sprintf("api_encodings_mib_%s", kilo(b.s.MemN)), round(h.encodingsMiB, 1), "MiB",
		fmt.Sprintf("live heap the API's stored encodings add, %d instances read through it", h.listed))
	return nil
}

// holding is what a manager holding some instances costs.
type holding struct {
	instances, listed             int
	peakMiB, nowMiB, encodingsMiB float64
}

// hold fills the cluster to total instances (the new ones in ns, named
// prefix-i) with the manager stopped, created straight to kube-apiserver;
// then it starts a fresh manager (controllers and API on), waits until its
// controllers have brought every instance of ns to RUNNING, reads every
// instance of ns through the API once (so the stored encodings count), and
// reads the manager's peak resident memory.
func (b *bench) hold(ctx context.Context, ns, prefix string, total int) (*holding, error) {
	b.stack.StopManager() // the instances are made with no manager; a fresh one then takes them all
	if err := load.EnsureProjectNamespace(ctx, b.client, ns); err != nil {
		return nil, err
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(computev1alpha1.GroupVersion.WithKind("InstanceList"))
	if err := b.client.List(ctx, list); err != nil {
		return nil, err
	}
	inNS := 0
	for i := range list.Items {
		if list.Items[i].Namespace == ns {
			inNS++
		}
	}
	extra := max(0, total-len(list.Items))
	if err := load.CreateInstances(ctx, b.client, ns, prefix, extra, b.s.Creators, nil); err != nil {
		return nil, err
	}
	if err := b.stack.StartManager(ctx); err != nil {
		return nil, err
	}
	if err := b.waitRunning(ctx, ns, inNS+extra, 60*time.Minute); err != nil {
		return nil, err
	}
	// Every instance read through the API once, so the peak includes the
	// API's stored encodings, whose size the heap tells before and after.
	heapBefore, err := b.liveHeap(ctx)
	if err != nil {
		return nil, err
	}
	listed, err := b.listAll(ctx, ns)
	if err != nil {
		return nil, err
	}
	heapAfter, err := b.liveHeap(ctx)
	if err != nil {
		return nil, err
	}
	hwm, rss, err := load.Memory(b.stack.ManagerPID())
	if err != nil {
		return nil, err
	}
	if path := os.Getenv("BENCH_HEAP_PROFILE"); path != "" {
		if err := b.saveHeapProfile(ctx, path); err != nil {
			return nil, err
		}
	}
	return &holding{instances: len(list.Items) + extra, listed: listed, peakMiB: hwm, nowMiB: rss,
		encodingsMiB: (heapAfter - heapBefore) / (1 << 20)}, nil
}

// listAll reads every instance of the namespace (its project's) through
// the API, a page of 500 at a time, with the bench's token bound to
// compute.viewer there; it returns how many it read.
func (b *bench) listAll(ctx context.Context, ns string) (int, error) {
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-viewer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.viewer"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: devstack.DeployerServiceAccount,
			Namespace: devstack.SampleNamespace}},
	}
	if err := b.client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("failed to bind the bench's token in %s: %w", ns, err)
	}
	path := "/v1/regions/us-texas-1/projects/" + ns + "/compute/instances?pageSize=500"
	total, token := 0, ""
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+path+"&pageToken="+token, nil)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("failed to list %s through the API: %w", ns, err)
		}
		var page struct {
			Instances     []json.RawMessage `json:"instances"`
			NextPageToken string            `json:"nextPageToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden && time.Now().Before(deadline) {
			time.Sleep(time.Second) // the binding is new; the authorizer may have said no a moment ago
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("list of %s through the API: status %d", ns, resp.StatusCode)
		}
		if err != nil {
			return 0, fmt.Errorf("failed to decode a list page of %s: %w", ns, err)
		}
		total += len(page.Instances)
		if token = page.NextPageToken; token == "" {
			return total, nil
		}
	}
}

// liveHeap is the manager's heap in use right after a collection (the heap
// profile's gc=1 runs one), from its go_memstats_heap_alloc_bytes.
func (b *bench) liveHeap(ctx context.Context) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.pprofURL+"?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("failed to collect the manager's garbage: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		return 0, fmt.Errorf("failed to scrape the manager's metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_alloc_bytes "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("the manager's metrics have no go_memstats_heap_alloc_bytes: %w", sc.Err())
}

func kilo(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// saveHeapProfile writes the manager's heap profile to path, for
// `go tool pprof` (BENCH_HEAP_PROFILE).
func (b *bench) saveHeapProfile(ctx context.Context, path string) error {
	return b.saveProfile(ctx, "heap", path)
}

// saveProfile writes the manager's pprof profile of the given name (and
// query) to path.
func (b *bench) saveProfile(ctx context.Context, profile, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(b.pprofURL, "heap")+profile, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("failed to get the manager's %s profile: %w", profile, err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
