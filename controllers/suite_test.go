package controllers_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// env is the real kube-apiserver every test of this package talks to.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	var err error
	// kube-controller-manager's namespace controller deletes the
	// Instances of a deleted namespace (TestNamespaceDeletionDeletesItsMachines).
	env, err = testenv.Start(testenv.WithControllerManager())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The operator's own client is not throttled on the client side here;
	// the kube-apiserver's own limits still apply.
	env.Config.QPS, env.Config.Burst = -1, 0
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to stop the control plane:", err)
	}
	os.Exit(code)
}

const (
	typeURI  = "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"
	imageURI = "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3"
	// step is the simulated time every step of a machine takes in these
	// tests; the tests move the fake clock by it, so nothing waits for real.
	step = time.Hour
)

// operator is one run of the operator, watching one namespace, over a
// simulated cloud on a fake clock.
type operator struct {
	cloud  *simulated.Cloud
	cancel context.CancelFunc
	done   chan error
}

// harness is one test's namespace, fake clock, cloud state directory and operator.
type harness struct {
	t        testing.TB
	ns       string
	c        client.Client
	clock    *clocktesting.FakeClock
	stateDir string
	simCfg   simulated.Config
	opts     controllers.Options
	op       *operator
	// config is whom the operator runs as; nil means the envtest admin.
	config *rest.Config
}

var nsCounter atomic.Int32

// newHarness starts an operator on a fresh namespace. Every step of the
// simulated cloud takes one `step` of fake time unless tune changes it.
func newHarness(t testing.TB, tune func(*simulated.Config, *controllers.Options)) *harness {
	t.Helper()
	ns := fmt.Sprintf("reconcile-%d-%d", os.Getpid()%10000, nsCounter.Add(1))
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ns: ns, c: env.Client, clock: clocktesting.NewFakeClock(time.Now()), stateDir: t.TempDir()}
	h.simCfg = simulated.DefaultConfig()
	h.simCfg.Images = []string{"ubuntu-24.04-20260202-3"}
	h.simCfg.Seed = 1
	h.simCfg.Latencies = simulated.Latencies{Allocate: step, Boot: step, Stop: step, Suspend: step, Resume: step, Delete: step, Repair: step}
	h.opts = controllers.Options{
		PollInterval:         20 * time.Millisecond,
		CallTimeout:          2 * time.Second,
		ProvisioningDeadline: 10 * step,
		RetryBaseDelay:       10 * time.Millisecond,
		RetryMaxDelay:        100 * time.Millisecond,
		// Re-observation is what notices the cloud acting on its own
		// (host failures, lost machines); here it is quick.
		ResyncPeriod: 100 * time.Millisecond,
	}
	if tune != nil {
		tune(&h.simCfg, &h.opts)
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

// start runs an operator; its cloud opens the harness's state directory,
// so a restarted operator finds the machines of the one before.
func (h *harness) start() {
	h.t.Helper()
	cfg := h.simCfg
	cfg.Clock, cfg.StateDir = h.clock, h.stateDir
	cloud, err := simulated.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	restConfig := env.Config
	if h.config != nil {
		restConfig = h.config
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	r := &controllers.InstanceReconciler{Provider: cloud, Clock: h.clock, Options: h.opts}
	if err := r.SetupWithManager(mgr); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{cloud: cloud, cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(ctx) }()
	h.op = op
}

// stop stops the operator, as a crash or a rollout would.
func (h *harness) stop() {
	if h.op == nil {
		return
	}
	h.op.cancel()
	if err := <-h.op.done; err != nil {
		h.t.Errorf("the manager stopped with an error: %v", err)
	}
	h.op = nil
}

func (h *harness) cloud() *simulated.Cloud { return h.op.cloud }

// newInstance is a minimal valid instance of the harness's namespace.
func (h *harness) newInstance(name string) *computev1alpha1.Instance {
	return &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns},
		Spec: computev1alpha1.InstanceSpec{
			Type:             typeURI,
			Disks:            []computev1alpha1.Disk{{Source: imageURI, Boot: true, SizeGb: 50}},
			InstanceMetadata: []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: "admin:ssh-ed25519 AAAA admin@host"}},
		},
	}
}

func (h *harness) create(inst *computev1alpha1.Instance) *computev1alpha1.Instance {
	h.t.Helper()
	if err := h.c.Create(context.Background(), inst); err != nil {
		h.t.Fatalf("failed to create %s: %v", inst.Name, err)
	}
	return inst
}

func (h *harness) get(name string) (*computev1alpha1.Instance, error) {
	inst := &computev1alpha1.Instance{}
	err := h.c.Get(context.Background(), types.NamespacedName{Namespace: h.ns, Name: name}, inst)
	return inst, err
}

// update applies change to the stored instance, retrying on conflicts.
func (h *harness) update(name string, change func(*computev1alpha1.Instance)) {
	h.t.Helper()
	for range 10 {
		inst, err := h.get(name)
		if err != nil {
			h.t.Fatal(err)
		}
		change(inst)
		if err = h.c.Update(context.Background(), inst); err == nil {
			return
		}
	}
	h.t.Fatalf("failed to update %s", name)
}

// waitFor polls the instance until ok holds, and fails the test with the
// last state seen after timeout.
func (h *harness) waitFor(name, what string, ok func(*computev1alpha1.Instance) bool) *computev1alpha1.Instance {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *computev1alpha1.Instance
	for time.Now().Before(deadline) {
		inst, err := h.get(name)
		if err == nil {
			last = inst
			if ok(inst) {
				return inst
			}
		}
		<-time.After(10 * time.Millisecond)
	}
	h.t.Fatalf("%s: never %s; last seen: %s", name, what, describe(last))
	return nil
}

// waitLifecycle waits for the lifecycle status and a status written for the
// current generation.
func (h *harness) waitLifecycle(name string, want computev1alpha1.LifecycleStatus) *computev1alpha1.Instance {
	h.t.Helper()
	return h.waitFor(name, "reached "+string(want), func(i *computev1alpha1.Instance) bool {
		return i.Status.Lifecycle.Status == want && i.Status.ObservedGeneration == i.Generation
	})
}

// waitGone waits until the instance is deleted from the kube-apiserver.
func (h *harness) waitGone(name string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.get(name); err != nil {
			return
		}
		<-time.After(10 * time.Millisecond)
	}
	inst, _ := h.get(name)
	h.t.Fatalf("%s was never deleted; last seen: %s", name, describe(inst))
}

func describe(inst *computev1alpha1.Instance) string {
	if inst == nil {
		return "nothing"
	}
	s := fmt.Sprintf("generation %d, observed %d, %s %q, finalizers %v", inst.Generation, inst.Status.ObservedGeneration,
		inst.Status.Lifecycle.Status, inst.Status.Lifecycle.StatusMessage, inst.Finalizers)
	for _, c := range inst.Status.Conditions {
		s += fmt.Sprintf("; %s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message)
	}
	return s
}

// expect asserts the lifecycle, the conditions (type → "True/Reason" or
// "False/Reason"), observedGeneration and kstatus' verdict.
func (h *harness) expect(inst *computev1alpha1.Instance, lifecycle computev1alpha1.LifecycleStatus, conditions map[string]string, verdict status.Status) {
	h.t.Helper()
	if inst.Status.Lifecycle.Status != lifecycle {
		h.t.Errorf("%s: lifecycle %s, want %s", inst.Name, inst.Status.Lifecycle.Status, lifecycle)
	}
	if inst.Status.Lifecycle.StatusMessage == "" {
		h.t.Errorf("%s: empty statusMessage in %s", inst.Name, lifecycle)
	}
	for condType, want := range conditions {
		c := meta.FindStatusCondition(inst.Status.Conditions, condType)
		if c == nil {
			h.t.Errorf("%s: no %s condition, want %s", inst.Name, condType, want)
			continue
		}
		if got := string(c.Status) + "/" + c.Reason; got != want {
			h.t.Errorf("%s: %s is %s (%s), want %s", inst.Name, condType, got, c.Message, want)
		}
		if c.Message == "" {
			h.t.Errorf("%s: %s has no message", inst.Name, condType)
		}
	}
	if got := kstatus(h.t, inst); got != verdict {
		h.t.Errorf("%s: kstatus says %s, want %s (%s)", inst.Name, got, verdict, describe(inst))
	}
}

// kstatus computes the instance's status as Flux does.
func kstatus(t testing.TB, inst *computev1alpha1.Instance) status.Status {
	t.Helper()
	verdict, err := testenv.KStatus(inst)
	if err != nil {
		t.Fatal(err)
	}
	return verdict
}
