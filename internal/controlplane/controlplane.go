package controlplane

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

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

// AssetsDir is where the control-plane binaries are, once they are built:
// $KUBEBUILDER_ASSETS, or bin/k8s/<version pinned in hack/tools/go.mod> under
// the module root. Every caller runs them, so a missing build is an error
// here, which says how to make it.
func AssetsDir() (string, error) {
	dir, err := assetsDir()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run `make control-plane` first: %w", dir, err)
	}
	return dir, nil
}

func assetsDir() (string, error) {
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
