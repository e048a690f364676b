package testenv

import (
	"bytes"
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
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// Env is a running control plane with the Instance CRD installed.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
	Scheme      *runtime.Scheme
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string

	kubeconfig string
}

// Scheme returns a scheme with the Kubernetes built-in types and the Instance API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := computev1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// ModuleRoot is the directory of the operator's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(data, []byte("module github.com/k0rdent-ai/instance-operator\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/k0rdent-ai/instance-operator above the working directory")
		}
		dir = parent
	}
}

// AssetsDir is where the control-plane binaries are: $KUBEBUILDER_ASSETS, or
// bin/k8s/<version pinned in hack/tools/go.mod> under the module root.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "tools", "go.mod"))
	if err != nil {
		return "", fmt.Errorf("failed to read hack/tools/go.mod: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "k8s.io/kubernetes" {
			return filepath.Join(root, "bin", "k8s", fields[1]), nil
		}
	}
	return "", fmt.Errorf("hack/tools/go.mod pins no k8s.io/kubernetes version")
}

// Start starts a control plane with the CRDs of config/crd/bases installed.
// Call Stop when done; tests usually do it from TestMain.
func Start() (*Env, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("no kube-apiserver in %s: run `make control-plane` first: %w", assets, err)
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
	scheme := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Client: c, Scheme: scheme, AssetsDir: assets}, nil
}

// Stop stops the control plane and removes the kubeconfig it wrote.
func (e *Env) Stop() error {
	if e.kubeconfig != "" {
		_ = os.Remove(e.kubeconfig)
	}
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
	root, err := ModuleRoot()
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
