package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// The single install file of make release, applied with the built kubectl to
// a control plane with nothing on it, installs the operator: the CRD is
// established, both Deployments' image is the pinned digest, and a sample
// Instance is accepted with the finalizer the admission policy stamps.
func TestInstallYAMLAppliesToFreshControlPlane(t *testing.T) {
	image := "ghcr.io/k0rdent-ai/instance-operator@sha256:" + strings.Repeat("b", 64)
	path := filepath.Join(t.TempDir(), "install.yaml")
	must(t, release.WriteInstallYAML(root(t), image, "v0.0.0-test", path), "write install.yaml")
	data, err := os.ReadFile(path)
	must(t, err, "read install.yaml")
	if strings.Contains(string(data), release.PlaceholderImage) {
		t.Fatalf("install.yaml still names %s", release.PlaceholderImage)
	}

	e := freshControlPlane(t)
	kubectl(t, e, "", "apply", "-f", path)
	kubectl(t, e, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/instances.compute.k0rdent.ai")
	for _, deployment := range []string{"instance-operator-controller-manager", "instance-operator-api"} {
		got := kubectl(t, e, "", "get", "-n", "instance-operator-system", "deployment/"+deployment,
			"-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if got != image {
			t.Fatalf("%s's image is %q, want %q", deployment, got, image)
		}
	}
	applyInstance(t, e, "-k", filepath.Join(root(t), "config", "samples"))
	out := kubectl(t, e, "", "get", "instances", "-A", "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.finalizers}{\"\\n\"}{end}")
	if !strings.Contains(out, "instance-d4e5f6") || !strings.Contains(out, "compute.k0rdent.ai/machine") {
		t.Fatalf("after applying config/samples, instances are:\n%s\nwant instance-d4e5f6 with the finalizer", out)
	}
}
