package main

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// deleteRaceWorkers is how many deployers create and delete at once.
const deleteRaceWorkers = 4

// deleteRace creates RELIABILITY_N/2 instances (at least 40) through the REST API, as a
// deployer would, and deletes each a random 0-500 ms after its create was
// answered, while a stream of other instances rolls out beside them (the
// controllers are busy) and the simulated cloud fails 30% of calls and
// stalls 10% past the manager's provider timeout. Once every raced instance
// is gone, each machine left in the cloud that no Instance tracks is a leak:
// a deleted instance must never leave a machine running.
func deleteRace(ctx context.Context, e env, results *checks) error {
	n := max(load.EnvInt("RELIABILITY_N", 500)/2, 40)
	const loadNS = "delete-race-load"
	stack, admin, apiURL, err := e.startStack(ctx, "delete-race",
		fmt.Sprintf("--sim-instance-types=%s=%d", load.TypeName, 20*n),
		"--sim-latency-allocate=100ms", "--sim-latency-boot=100ms", "--sim-latency-delete=100ms", "--sim-latency-stop=100ms",
		"--sim-transient-error-rate=0.3", "--sim-slow-call-rate=0.1",
		"--provider-call-timeout=1s", "--sim-slow-call-delay=3s", "--api-rate-limit=0")
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	token, err := devstack.ReadToken(stack.TokenFile)
	if err != nil {
		return err
	}
	if err := load.EnsureProjectNamespace(ctx, admin, loadNS); err != nil {
		return err
	}
	began := time.Now()
	// The load: a stream of other instances rolling out (and retrying
	// through the faults) for as long as the raced ones come and go. A
	// stream, not a burst: a queue so deep that every delete lands before
	// the create's first pass would race nothing.
	raceDone := make(chan struct{})
	loaded := make(chan loadResult, 1)
	go func() { loaded <- streamLoad(ctx, admin, loadNS, raceDone) }()

	raced, refused, err := raceCreateDelete(ctx, apiURL, token, n)
	close(raceDone)
	loadRes := <-loaded
	if err != nil {
		return err
	}
	if loadRes.err != nil {
		return loadRes.err
	}
	fmt.Printf("delete-race | %d created and deleted through the REST API (%d answers not 2xx), beside %d others rolling out, after %s\n",
		raced, refused, loadRes.created, since(began))

	left, err := waitRacedGone(ctx, admin)
	if err != nil {
		return fmt.Errorf("%d raced instances were not gone 5 minutes after their deletion: %w", left, err)
	}
	leaked, total, err := untrackedMachines(ctx, stack, admin)
	if err != nil {
		return err
	}
	fmt.Printf("delete-race | all raced instances gone after %s; %d machines in the cloud, %d tracked by no Instance\n",
		since(began), total, leaked)
	results.add("delete_race_requests_refused", refused, refused == 0)
	results.add("delete_race_leaked_machines", leaked, leaked == 0)
	return nil
}

type loadResult struct {
	created int
	err     error
}

// streamLoad creates an instance in ns every 50 ms until done is closed.
func streamLoad(ctx context.Context, c client.Client, ns string, done <-chan struct{}) loadResult {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return loadResult{created: i}
		case <-ctx.Done():
			return loadResult{created: i, err: ctx.Err()}
		case <-tick.C:
		}
		inst := &computev1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%d", i), Namespace: ns},
			Spec:       computev1alpha1.InstanceSpec{Type: load.TypeURI},
		}
		if err := c.Create(ctx, inst); err != nil {
			return loadResult{created: i, err: fmt.Errorf("failed to create %s: %w", inst.Name, err)}
		}
	}
}

// racedPrefix names the raced instances in the deployer's project.
const racedPrefix = "race-"

// raceCreateDelete POSTs n instances and DELETEs each a random 0-500 ms
// after its create was answered, deleteRaceWorkers at a time. It returns how
// many were created and how many answers were not 2xx.
func raceCreateDelete(ctx context.Context, apiURL, token string, n int) (int, int64, error) {
	httpClient := &http.Client{Timeout: 30 * time.Second}
	collection := apiURL + "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances"
	var next, created, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, deleteRaceWorkers)
	for range deleteRaceWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("%s%d", racedPrefix, i)
				body, _ := json.Marshal(map[string]any{"id": id, "type": load.TypeURI})
				code, answer, err := do(httpClient, http.MethodPost, collection, "Bearer "+token, "application/json", body)
				if err != nil {
					errs <- fmt.Errorf("failed to create %s: %w", id, err)
					return
				}
				if code/100 != 2 {
					refused.Add(1)
					fmt.Printf("delete-race | create %s answered %d: %s\n", id, code, truncate(answer))
					continue
				}
				created.Add(1)
				time.Sleep(time.Duration(mrand.Int64N(int64(500 * time.Millisecond))))
				code, answer, err = do(httpClient, http.MethodDelete, collection+"/"+id, "Bearer "+token, "", nil)
				if err != nil {
					errs <- fmt.Errorf("failed to delete %s: %w", id, err)
					return
				}
				if code/100 != 2 {
					refused.Add(1)
					fmt.Printf("delete-race | delete %s answered %d: %s\n", id, code, truncate(answer))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return int(created.Load()), refused.Load(), <-errs
}

// waitRacedGone waits up to five minutes for every raced instance to be
// gone, and says how many were left when it stopped.
func waitRacedGone(ctx context.Context, c client.WithWatch) (int, error) {
	wait, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	left := 0
	err := load.WatchInstances(wait, c, devstack.SampleNamespace, func(state map[string]*computev1alpha1.Instance) bool {
		left = 0
		for name := range state {
			if strings.HasPrefix(name, racedPrefix) {
				left++
			}
		}
		return left == 0
	})
	return left, err
}

// untrackedMachines counts the cloud's machines that no Instance tracks:
// none of that namespace and name exists, or the one that does records
// another machine. The cloud's listing leaves create tokens out, so a
// machine is matched by its ID; an instance still without one may yet
// record it.
func untrackedMachines(ctx context.Context, stack *devstack.Stack, c client.Client) (leaked, total int, err error) {
	cloud, err := stack.SimcloudAdmin()
	if err != nil {
		return 0, 0, err
	}
	machines, err := cloud.Machines(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, m := range machines {
		var inst computev1alpha1.Instance
		err := c.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Name}, &inst)
		switch {
		case apierrors.IsNotFound(err):
			leaked++
			fmt.Printf("delete-race | machine %s (%s, of instance %s/%s) is tracked by no Instance\n", m.ID, m.Phase, m.Namespace, m.Name)
		case err != nil:
			return 0, 0, fmt.Errorf("failed to get instance %s/%s: %w", m.Namespace, m.Name, err)
		case inst.Status.Machine.ID != "" && inst.Status.Machine.ID != m.ID:
			leaked++
			fmt.Printf("delete-race | machine %s of %s/%s is not the one its instance records (%s)\n", m.ID, m.Namespace, m.Name, inst.Status.Machine.ID)
		}
	}
	return leaked, len(machines), nil
}
