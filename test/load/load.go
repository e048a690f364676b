package load

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

// TypeName is an instance type of the simulated cloud that the programs give
// ample capacity with --sim-instance-types.
const (
	TypeName = "cpu1-small"
	TypeURI  = "/v1/regions/us-texas-1/zones/us1-a/instance-types/" + TypeName
)

// EnvInt reads a positive integer setting from the environment.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Locate finds the module root, the control-plane binaries and the manager
// binary: $managerEnv, or bin/manager under the root.
func Locate(managerEnv string) (root, assets, manager string, err error) {
	if root, err = controlplane.ModuleRoot(); err != nil {
		return "", "", "", err
	}
	if assets, err = controlplane.AssetsDir(); err != nil {
		return "", "", "", err
	}
	if manager = os.Getenv(managerEnv); manager == "" {
		manager = filepath.Join(root, "bin", "manager")
	}
	return root, assets, manager, nil
}

// FreePort is a TCP port on the loopback that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PrefixWriter prints each line written to it after Prefix, so that the
// stack's progress lines stand apart from the program's own.
type PrefixWriter struct{ Prefix string }

func (w PrefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line != "" {
			fmt.Print(w.Prefix + line)
		}
	}
	return len(p), nil
}

// Client is an admin client of the stack with no client-side rate limit:
// the programs measure the server side.
func Client(stack *devstack.Stack) (client.WithWatch, error) {
	cfg := *stack.Config
	cfg.QPS, cfg.Burst = -1, 0
	return client.NewWithWatch(&cfg, client.Options{Scheme: controlplane.Scheme()})
}

// EnsureProjectNamespace creates the namespace of project name in region us-texas-1.
func EnsureProjectNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		computev1alpha1.RegionLabel: "us-texas-1", computev1alpha1.ProjectLabel: name,
	}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", name, err)
	}
	return nil
}

// CreateInstances creates count instances of TypeURI named prefix-<i> with
// workers clients at once, handing each created object to created (when not nil).
func CreateInstances(ctx context.Context, c client.Client, namespace, prefix string, count, workers int,
	created func(*computev1alpha1.Instance)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				inst := &computev1alpha1.Instance{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: namespace},
					Spec:       computev1alpha1.InstanceSpec{Type: TypeURI},
				}
				if err := c.Create(ctx, inst); err != nil {
					errs <- fmt.Errorf("failed to create %s: %w", inst.Name, err)
					return
				}
				if created != nil {
					created(inst)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ForceDeleteAll deletes the namespace's instances when no manager runs to
// release them: their finalizers (kube-apiserver's admission policy stamps
// one on each) are dropped, as they hold no machines.
func ForceDeleteAll(ctx context.Context, c client.Client, namespace string, workers int) error {
	if err := c.DeleteAllOf(ctx, &computev1alpha1.Instance{}, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("failed to delete the instances of %s: %w", namespace, err)
	}
	list := &computev1alpha1.InstanceList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("failed to list instances: %w", err)
	}
	work := make(chan *computev1alpha1.Instance)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for inst := range work {
				patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
				if err := c.Patch(ctx, inst, patch); err != nil && !apierrors.IsNotFound(err) {
					select {
					case errs <- fmt.Errorf("failed to drop the finalizers of %s: %w", inst.Name, err):
					default:
					}
				}
			}
		}()
	}
	for i := range list.Items {
		work <- &list.Items[i]
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// WatchInstances calls seen with every state of the namespace's instances,
// from a list and then a watch, until seen returns true or ctx ends.
func WatchInstances(ctx context.Context, c client.WithWatch, namespace string, seen func(map[string]*computev1alpha1.Instance) bool) error {
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

// CountRunning counts the RUNNING instances of a state.
func CountRunning(state map[string]*computev1alpha1.Instance) int {
	n := 0
	for _, inst := range state {
		if inst.Status.Lifecycle.Status == computev1alpha1.LifecycleRunning {
			n++
		}
	}
	return n
}

// WaitRunning waits until want instances of the namespace are RUNNING, and
// returns how many were when it stopped waiting; only the timeout passing is
// not an error.
func WaitRunning(ctx context.Context, c client.WithWatch, namespace string, want int, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	running := 0
	err := WatchInstances(ctx, c, namespace, func(state map[string]*computev1alpha1.Instance) bool {
		running = CountRunning(state)
		return running >= want
	})
	if err != nil && ctx.Err() != nil {
		return running, nil
	}
	return running, err
}

// Memory reads a process's peak (VmHWM) and current (VmRSS) resident memory in MiB.
func Memory(pid int) (peak, now float64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmHWM:":
			peak = kb / 1024
		case "VmRSS:":
			now = kb / 1024
		}
	}
	return peak, now, nil
}
