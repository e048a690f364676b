package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

// Env is a running control plane with the Instance CRD installed.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
	Scheme      *runtime.Scheme
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string

	// ControllerManager is the kube-controller-manager started by
	// WithControllerManager; nil otherwise.
	ControllerManager *controlplane.ControllerManager

	kubeconfig string
}

// Option changes what Start starts.
type Option func(*options)

type options struct {
	controllerManager bool
}

// WithControllerManager starts kube-controller-manager beside the
// kube-apiserver, for the suites that need namespace deletion, garbage
// collection, quota counting or ClusterRole aggregation. The others go
// without: it costs each suite 2-5 seconds and a process on busy cores.
func WithControllerManager() Option { return func(o *options) { o.controllerManager = true } }

// Start starts a control plane with the CRDs of config/crd/bases installed.
// Call Stop when done; tests usually do it from TestMain.
func Start(opts ...Option) (*Env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	root, err := controlplane.ModuleRoot()
	if err != nil {
		return nil, err
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start the control plane: %w", err)
	}
	scheme := controlplane.Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	e := &Env{Environment: env, Config: cfg, Client: c, Scheme: scheme, AssetsDir: assets}
	if o.controllerManager {
		log := io.Discard
		if os.Getenv("KCM_LOG") != "" {
			log = os.Stderr
		}
		if e.ControllerManager, err = controlplane.StartControllerManager(context.Background(), env, assets, log); err != nil {
			_ = env.Stop()
			return nil, err
		}
	}
	return e, nil
}

// Stop stops the control plane and removes the kubeconfig it wrote.
func (e *Env) Stop() error {
	if e.kubeconfig != "" {
		_ = os.Remove(e.kubeconfig)
	}
	_ = e.ControllerManager.Stop()
	return e.Environment.Stop()
}

// Kubeconfig writes (once) an admin kubeconfig for the control plane and returns its path.
func (e *Env) Kubeconfig() (string, error) {
	if e.kubeconfig != "" {
		return e.kubeconfig, nil
	}
	user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: "envtest-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("failed to add an admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("failed to render the kubeconfig: %w", err)
	}
	f, err := os.CreateTemp("", "envtest-kubeconfig-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	e.kubeconfig = f.Name()
	return e.kubeconfig, nil
}

// Kubectl runs the built kubectl against the control plane, with stdin as its
// standard input, and returns its standard output and standard error.
func (e *Env) Kubectl(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	kubeconfig, err := e.Kubeconfig()
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command(filepath.Join(e.AssetsDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// Kustomize renders config/<dir> of the module with the built kubectl, as
// `kubectl apply -k` would before applying it.
func (e *Env) Kustomize(t testing.TB, dir string) []unstructured.Unstructured {
	t.Helper()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err := e.Kubectl(t, "", "kustomize", filepath.Join(root, "config", dir))
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s: %v: %s", dir, err, stderr)
	}
	var objs []unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}
