package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

// TestCRDBoundsAreTheConstants: the generated CRD's schema carries the
// numbers and patterns of bounds.go, which the REST API checks its requests
// against; a marker changed without its constant (or the other way round)
// fails here, so each bound has one value.
func TestCRDBoundsAreTheConstants(t *testing.T) {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "compute.k0rdent.ai_instances.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	version := dig(t, crd, "spec", "versions").([]any)[0].(map[string]any)
	spec := dig(t, version, "schema", "openAPIV3Schema", "properties", "spec", "properties").(map[string]any)
	prop := func(path ...string) map[string]any {
		t.Helper()
		return dig(t, spec, path...).(map[string]any)
	}
	for _, c := range []struct {
		name  string
		field map[string]any
		key   string
		want  any
	}{
		{"displayName maxLength", prop("displayName"), "maxLength", computev1alpha1.MaxDisplayNameLength},
		{"displayName pattern", prop("displayName"), "pattern", computev1alpha1.SingleLineTextPattern},
		{"description maxLength", prop("description"), "maxLength", computev1alpha1.MaxDescriptionLength},
		{"description pattern", prop("description"), "pattern", computev1alpha1.MultiLineTextPattern},
		{"type maxLength", prop("type"), "maxLength", computev1alpha1.MaxURILength},
		{"hostname maxLength", prop("hostname"), "maxLength", computev1alpha1.MaxHostnameLength},
		{"instanceMetadata maxItems", prop("instanceMetadata"), "maxItems", computev1alpha1.MaxInstanceMetadataItems},
		{"instanceMetadata key maxLength", prop("instanceMetadata", "items", "properties", "key"), "maxLength", computev1alpha1.MaxMetadataKeyLength},
		{"instanceMetadata value maxLength", prop("instanceMetadata", "items", "properties", "value"), "maxLength", computev1alpha1.MaxMetadataValueLength},
		{"instanceMetadata value pattern", prop("instanceMetadata", "items", "properties", "value"), "pattern", computev1alpha1.MultiLineTextPattern},
		{"disks maxItems", prop("disks"), "maxItems", computev1alpha1.MaxDisks},
		{"disk source maxLength", prop("disks", "items", "properties", "source"), "maxLength", computev1alpha1.MaxURILength},
		{"nics maxItems", prop("nics"), "maxItems", computev1alpha1.MaxNICs},
		{"nic network maxLength", prop("nics", "items", "properties", "network"), "maxLength", computev1alpha1.MaxURILength},
		{"nic subnet maxLength", prop("nics", "items", "properties", "subnet"), "maxLength", computev1alpha1.MaxURILength},
		{"gpus maxItems", prop("gpus"), "maxItems", computev1alpha1.MaxGPUs},
		{"gpu type maxLength", prop("gpus", "items", "properties", "type"), "maxLength", computev1alpha1.MaxURILength},
	} {
		got := c.field[c.key]
		if f, ok := got.(float64); ok {
			got = int(f)
		}
		if got != c.want {
			t.Errorf("%s: the CRD says %v, bounds.go %v", c.name, got, c.want)
		}
	}
	rules := prop("disks", "items", "properties", "source")["x-kubernetes-validations"].([]any)
	wantRule := "self.matches('" + computev1alpha1.DiskSourcePattern + "')"
	if rule := rules[0].(map[string]any)["rule"]; rule != wantRule {
		t.Errorf("the disk source's rule is %v, want %s", rule, wantRule)
	}
	sum := prop("instanceMetadata")["x-kubernetes-validations"].([]any)[0].(map[string]any)["rule"].(string)
	if !strings.HasSuffix(sum, ".sum() <= 262144") || computev1alpha1.MaxInstanceMetadataBytes != 262144 {
		t.Errorf("the instanceMetadata total rule %q does not bound it at MaxInstanceMetadataBytes (%d)", sum, computev1alpha1.MaxInstanceMetadataBytes)
	}
}

func dig(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var cur any = m
	for _, p := range path {
		next, ok := cur.(map[string]any)[p]
		if !ok {
			t.Fatalf("the CRD has no %s", strings.Join(path, "."))
		}
		cur = next
	}
	return cur
}
