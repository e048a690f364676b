package install

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

func k0rdentOptions() release.K0rdentOptions {
	return release.K0rdentOptions{
		ChartRepository: "oci://ghcr.io/k0rdent-ai/charts",
		ChartVersion:    "0.1.0-dev.abc123",
		KubeConstraint:  ">=1.36.0-0",
		Namespace:       "kcm-system",
	}
}

// dist/k0rdent's HelmRepository, ServiceTemplate and MultiClusterService are
// accepted by the schemas of k0rdent's and Flux's CRDs (testdata/k0rdent), and
// the schemas are live: a ServiceTemplate naming both a chartSpec and a
// chartRef, and a service with no template, are refused with k0rdent's messages.
func TestK0rdentManifestsValidateAgainstK0rdentCRDs(t *testing.T) {
	e := freshControlPlane(t)
	kubectl(t, e, "", "apply", "-f", filepath.Join(root(t), "test", "install", "testdata", "k0rdent"))
	kubectl(t, e, "", "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicetemplates.k0rdent.mirantis.com", "crd/multiclusterservices.k0rdent.mirantis.com",
		"crd/helmrepositories.source.toolkit.fluxcd.io")
	kubectl(t, e, "", "create", "namespace", "kcm-system")

	dir := t.TempDir()
	must(t, release.WriteK0rdent(dir, k0rdentOptions()), "write the k0rdent manifests")
	kubectl(t, e, "", "apply", "--server-side", "-f", dir)
	out := kubectl(t, e, "", "get", "-n", "kcm-system", "servicetemplates", "-o",
		"jsonpath={.items[0].spec.helm.chartSpec.sourceRef.name} {.items[0].spec.k8sConstraint}")
	if out != "instance-operator >=1.36.0-0" {
		t.Fatalf("the stored ServiceTemplate says %q", out)
	}
	kubectl(t, e, "", "get", "multiclusterservice/instance-operator")

	objs := release.K0rdentObjects(k0rdentOptions())
	both := objs[1].DeepCopy()
	both.SetName("both-chart-sources")
	_ = unstructured.SetNestedField(both.Object, map[string]any{"kind": "HelmChart", "name": "x"}, "spec", "helm", "chartRef")
	noTemplate := objs[2].DeepCopy()
	noTemplate.SetName("no-template")
	_ = unstructured.SetNestedSlice(noTemplate.Object, []any{map[string]any{"name": "x"}}, "spec", "serviceSpec", "services")
	for want, obj := range map[string]*unstructured.Unstructured{
		"either chartSpec or chartRef must be set":              both,
		"spec.serviceSpec.services[0].template: Required value": noTemplate,
	} {
		var buf bytes.Buffer
		must(t, release.EncodeObjects(&buf, []unstructured.Unstructured{*obj}), "encode %s", obj.GetName())
		_, stderr, err := e.Kubectl(t, buf.String(), "apply", "--server-side", "-f", "-")
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("applying %s: err %v, stderr %q; want a refusal saying %q", obj.GetName(), err, stderr, want)
		}
	}
}
