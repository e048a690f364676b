package install

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// Labels and annotations that only Helm's side carries, by design: release
// bookkeeping, the CRD's keep policy and the catalog's checksum.
var (
	helmOnlyLabels      = []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}
	helmOnlyAnnotations = []string{"helm.sh/resource-policy", "checksum/kubevirt-catalog"}
)

// comparable strips what may differ between the chart's rendering and
// kustomize's by design, so that everything else must be equal: names,
// namespaces, rules, the CRD's schema, the Deployment's whole pod spec
// (the image aside) and selectors.
func comparable(obj unstructured.Unstructured) unstructured.Unstructured {
	o := obj.DeepCopy()
	strip := func(m map[string]string, keys []string) map[string]string {
		for _, k := range keys {
			delete(m, k)
		}
		return m
	}
	labels := strip(o.GetLabels(), helmOnlyLabels)
	o.SetLabels(labels)
	if len(labels) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "labels")
	}
	annotations := strip(o.GetAnnotations(), helmOnlyAnnotations)
	o.SetAnnotations(annotations)
	if len(annotations) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
	}
	if o.GetKind() == "Deployment" {
		if a, ok, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations"); ok {
			if a = strip(a, helmOnlyAnnotations); len(a) == 0 {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations")
			} else {
				_ = unstructured.SetNestedStringMap(o.Object, a, "spec", "template", "metadata", "annotations")
			}
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			c.(map[string]any)["image"] = "IMAGE"
			// kustomize leaves the pull policy to the cluster's default.
			delete(c.(map[string]any), "imagePullPolicy")
		}
		_ = unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers")
	}
	return *o
}

func key(o unstructured.Unstructured) string {
	return fmt.Sprintf("%s/%s %s/%s", o.GetAPIVersion(), o.GetKind(), o.GetNamespace(), o.GetName())
}

// byKey indexes objects, leaving out the Namespace: kustomize's config/default
// makes it, Helm expects it (helm install --create-namespace).
func byKey(t *testing.T, objs []unstructured.Unstructured) map[string]unstructured.Unstructured {
	t.Helper()
	out := map[string]unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		if _, dup := out[key(o)]; dup {
			t.Fatalf("%s rendered twice", key(o))
		}
		out[key(o)] = comparable(o)
	}
	return out
}

// assertSameObjects fails on every object one side has and the other lacks,
// and on every difference within an object, showing both as YAML.
func assertSameObjects(t *testing.T, chart, kustomize []unstructured.Unstructured) {
	t.Helper()
	c, k := byKey(t, chart), byKey(t, kustomize)
	var keys []string
	for name := range k {
		keys = append(keys, name)
	}
	for name := range c {
		if _, ok := k[name]; !ok {
			keys = append(keys, name)
		}
	}
	sort.Strings(keys)
	for _, name := range keys {
		co, inChart := c[name]
		ko, inConfig := k[name]
		switch {
		case !inChart:
			t.Errorf("config/ has %s; the chart does not render it", name)
		case !inConfig:
			t.Errorf("the chart renders %s; config/ does not have it", name)
		case !reflect.DeepEqual(co.Object, ko.Object):
			cy, _ := yaml.Marshal(co.Object)
			ky, _ := yaml.Marshal(ko.Object)
			t.Errorf("%s differs:\n--- chart\n%s\n--- config/\n%s", name, cy, ky)
		}
	}
	if len(keys) < 10 {
		t.Errorf("only %d objects compared; expected the whole install", len(keys))
	}
}

func renderChart(t *testing.T, vals map[string]any) []unstructured.Unstructured {
	t.Helper()
	manifest, err := release.RenderChart(filepath.Join(root(t), release.ChartDir), "instance-operator", "instance-operator-system", vals)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := release.DecodeObjects([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func kustomize(t *testing.T, dir string) []unstructured.Unstructured {
	t.Helper()
	objs, err := release.Kustomize(filepath.Join(root(t), "config", dir))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// The chart with default values and `kubectl kustomize config/default` hold
// the same objects; a change to config/ that the chart does not follow fails here.
func TestChartDefaultValuesMatchConfigDefault(t *testing.T) {
	assertSameObjects(t, renderChart(t, nil), kustomize(t, "default"))
}

// The same for the KubeVirt provider: provider=kubevirt against config/kubevirt.
func TestChartKubevirtValuesMatchConfigKubevirt(t *testing.T) {
	assertSameObjects(t, renderChart(t, map[string]any{"provider": "kubevirt"}), kustomize(t, "kubevirt"))
}

// With the Prometheus and Grafana objects on, the chart adds what
// config/prometheus and config/grafana hold, and nothing else.
func TestChartMonitoringValuesMatchConfigPrometheusAndGrafana(t *testing.T) {
	chart := renderChart(t, map[string]any{
		"serviceMonitor":   map[string]any{"enabled": true},
		"prometheusRule":   map[string]any{"enabled": true},
		"grafanaDashboard": map[string]any{"enabled": true},
	})
	config := append(append(kustomize(t, "default"), kustomize(t, "prometheus")...), kustomize(t, "grafana")...)
	assertSameObjects(t, chart, config)
}

// The drift check is live: an object changed on one side only is reported.
func TestDriftCheckCatchesAChangedRule(t *testing.T) {
	chart := renderChart(t, nil)
	for i := range chart {
		if chart[i].GetKind() == "ClusterRole" && strings.HasSuffix(chart[i].GetName(), "-manager-role") {
			rules, _, _ := unstructured.NestedSlice(chart[i].Object, "rules")
			_ = unstructured.SetNestedSlice(chart[i].Object, rules[1:], "rules")
		}
	}
	c, k := byKey(t, chart), byKey(t, kustomize(t, "default"))
	differing := 0
	for name, co := range c {
		if !reflect.DeepEqual(co.Object, k[name].Object) {
			differing++
		}
	}
	if differing != 1 {
		t.Fatalf("%d objects differ after changing one rule of the manager's role; want 1", differing)
	}
}

// With the optional namespace name rule on, the chart adds exactly
// config/admission/namespace-name.
func TestChartNamespaceNameRuleMatchesConfigAdmissionNamespaceName(t *testing.T) {
	chart := renderChart(t, map[string]any{"admissionPolicy": map[string]any{"namespaceNameRule": true}})
	assertSameObjects(t, chart, append(kustomize(t, "default"), kustomize(t, "admission/namespace-name")...))
}
