package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// K0rdentOptions says where k0rdent finds the chart and how the sample
// MultiClusterService deploys it.
type K0rdentOptions struct {
	// ChartRepository is the OCI repository that holds the chart
	// (oci://host/path, where make release's chart-push puts it).
	ChartRepository string
	// ChartVersion is the chart's version; KubeConstraint its Kubernetes
	// version constraint (Chart.yaml's kubeVersion).
	ChartVersion   string
	KubeConstraint string
	// Namespace is the management cluster's namespace of k0rdent's templates.
	Namespace string
}

// K0rdentObjects are the objects that make the chart a k0rdent service: a
// Flux HelmRepository of type oci (labelled for k0rdent to manage), a
// ServiceTemplate whose chartSpec points at it, and a sample
// MultiClusterService that deploys it to clusters labelled
// k0rdent.ai/compute=true.
func K0rdentObjects(o K0rdentOptions) []unstructured.Unstructured {
	templateName := "instance-operator-" + dnsLabelVersion(o.ChartVersion)
	repo := unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1",
		"kind":       "HelmRepository",
		"metadata": map[string]any{
			"name":      "instance-operator",
			"namespace": o.Namespace,
			"labels":    map[string]any{"k0rdent.mirantis.com/managed": "true"},
		},
		"spec": map[string]any{
			"type":     "oci",
			"url":      o.ChartRepository,
			"interval": "10m0s",
		},
	}}
	template := unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k0rdent.mirantis.com/v1beta1",
		"kind":       "ServiceTemplate",
		"metadata":   map[string]any{"name": templateName, "namespace": o.Namespace},
		"spec": map[string]any{
			"k8sConstraint": o.KubeConstraint,
			"helm": map[string]any{
				"chartSpec": map[string]any{
					"chart":    "instance-operator",
					"version":  o.ChartVersion,
					"interval": "10m0s",
					"sourceRef": map[string]any{
						"kind": "HelmRepository",
						"name": "instance-operator",
					},
				},
			},
		},
	}}
	service := unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k0rdent.mirantis.com/v1beta1",
		"kind":       "MultiClusterService",
		"metadata":   map[string]any{"name": "instance-operator"},
		"spec": map[string]any{
			"clusterSelector": map[string]any{
				"matchLabels": map[string]any{"k0rdent.ai/compute": "true"},
			},
			"serviceSpec": map[string]any{
				"services": []any{map[string]any{
					"template":  templateName,
					"name":      "instance-operator",
					"namespace": "instance-operator-system",
					// The chart's values; the KubeVirt provider on GPU clusters.
					"values": "provider: kubevirt\n",
				}},
			},
		},
	}}
	return []unstructured.Unstructured{repo, template, service}
}

// WriteK0rdent writes K0rdentObjects into dir, one file each, and beside
// them config/k0rdent-health of the module at root: the health rule with
// which k0rdent's service state reports Instances.
func WriteK0rdent(root, dir string, o K0rdentOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	health, err := Kustomize(filepath.Join(root, "config", "k0rdent-health"))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := EncodeObjects(&buf, health); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "health-rules.yaml"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("failed to write health-rules.yaml: %w", err)
	}
	files := []string{"helmrepository.yaml", "servicetemplate.yaml", "multiclusterservice.yaml"}
	for i, obj := range K0rdentObjects(o) {
		f, err := os.Create(filepath.Join(dir, files[i]))
		if err != nil {
			return err
		}
		err = EncodeObjects(f, []unstructured.Unstructured{obj})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("failed to write %s: %w", files[i], err)
		}
	}
	return nil
}

// dnsLabelVersion makes a version fit an object name: 0.1.0-dev+abc becomes
// 0-1-0-dev-abc, as k0rdent's own template names spell versions.
func dnsLabelVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, v)
}
