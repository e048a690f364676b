package kubevirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/kubevirt/kubevirttest"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// The control plane every envtest of this package talks to: the real
// kube-apiserver with the Instance CRD and the KubeVirt and CDI CRDs of
// testdata/crds, and the double of KubeVirt's controllers running on it.
var (
	env        *testenv.Env
	k8sClient  client.WithWatch
	double     *kubevirttest.Double
	testScheme *runtime.Scheme
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	log.SetLogger(zap.New(zap.WriteTo(logOutput())))
	root, err := controlplane.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		fmt.Fprintf(os.Stderr, "no kube-apiserver in %s: run `make control-plane` first: %v\n", assets, err)
		return 1
	}
	testScheme = controlplane.Scheme()
	if err := AddToScheme(testScheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e := &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"),
			filepath.Join(root, "internal", "provider", "kubevirt", "testdata", "crds"),
		},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := e.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failed to start the control plane:", err)
		return 1
	}
	env = &testenv.Env{Environment: e, Config: cfg, Scheme: testScheme, AssetsDir: assets}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "failed to stop the control plane:", err)
		}
	}()
	// kube-controller-manager's garbage collector deletes what the provider
	// owns once its owner goes (TestOwnedObjectsAreCollectedAfterTheInstance),
	// or keeps it running once released (TestReleaseForOrphan). Started after
	// the KubeVirt CRDs, so its first discovery already knows them.
	if env.ControllerManager, err = controlplane.StartControllerManager(context.Background(), e, assets, logOutput()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.Client = k8sClient

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	double = kubevirttest.New()
	if err := double.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "the KubeVirt double stopped with an error:", err)
		}
	}()
	return m.Run()
}

// logOutput discards the double's logs unless KUBEVIRT_TEST_VERBOSE is set.
func logOutput() io.Writer {
	if os.Getenv("KUBEVIRT_TEST_VERBOSE") != "" {
		return os.Stderr
	}
	return io.Discard
}

const waitTimeout = 30 * time.Second

// eventually polls cond until it reports true or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		<-tick.C
	}
}

// newNamespace makes a fresh namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kv-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// freshSample is the seed's sample, not yet created, in a fresh namespace,
// changed by mutate (when not nil).
func freshSample(t *testing.T, mutate func(*computev1alpha1.Instance)) *computev1alpha1.Instance {
	t.Helper()
	inst := sampleInstance(t)
	inst.UID, inst.Status, inst.Namespace = "", computev1alpha1.InstanceStatus{}, newNamespace(t)
	if mutate != nil {
		mutate(inst)
	}
	return inst
}

// newInstance stores the seed's sample Instance (changed by mutate) in a
// fresh namespace and records its create token, as the reconciler does
// before it calls Create.
func newInstance(t *testing.T, mutate func(*computev1alpha1.Instance)) *computev1alpha1.Instance {
	t.Helper()
	inst := freshSample(t, mutate)
	ctx := context.Background()
	if err := k8sClient.Create(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst.Status.Machine = computev1alpha1.MachineRef{Provider: Name, CreateToken: provider.CreateToken(inst)}
	if err := k8sClient.Status().Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

// observeUntil polls Observe until the machine is in phase.
func observeUntil(t *testing.T, p *Provider, inst *computev1alpha1.Instance, phase provider.Phase) *provider.Machine {
	t.Helper()
	var m *provider.Machine
	eventually(t, "phase "+string(phase), func() (bool, string) {
		var err error
		m, err = p.Observe(context.Background(), inst)
		if err != nil {
			return false, err.Error()
		}
		return m.Phase == phase, fmt.Sprintf("%s: %s", m.Phase, m.Message)
	})
	return m
}

// goneUntil polls Observe until it reports ErrNotFound.
func goneUntil(t *testing.T, p *Provider, inst *computev1alpha1.Instance) {
	t.Helper()
	eventually(t, "the machine to be gone", func() (bool, string) {
		m, err := p.Observe(context.Background(), inst)
		if errors.Is(err, provider.ErrNotFound) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, fmt.Sprintf("%s: %s", m.Phase, m.Message)
	})
}

func key(inst *computev1alpha1.Instance) types.NamespacedName {
	return client.ObjectKeyFromObject(inst)
}
