// Command crd-gen writes KubeVirt's CustomResourceDefinitions, with the
// OpenAPI validation virt-operator installs on a cluster, and the part of
// virt-api's ValidatingWebhookConfiguration that virt-api-webhook serves, as
// YAML files for envtest.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	yamlv3 "gopkg.in/yaml.v3"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
	sigsyaml "sigs.k8s.io/yaml"
)

// servedWebhooks are the webhooks of virt-api that virt-api-webhook serves;
// its handlers and these names must change together.
var servedWebhooks = []string{
	"virtualmachine-validator.kubevirt.io",
	"kubevirt-crd-status-validator.kubevirt.io",
	"virtualmachineinstancetype-validator.instancetype.kubevirt.io",
	"virtualmachineclusterinstancetype-validator.instancetype.kubevirt.io",
}

func main() {
	out := flag.String("out", "", "folder to write crds/ and webhooks/ into")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "crd-gen: --out is required")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "crd-gen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	crds := map[string]func() (*extv1.CustomResourceDefinition, error){
		"kubevirt.io_virtualmachines.yaml":                                 components.NewVirtualMachineCrd,
		"kubevirt.io_virtualmachineinstances.yaml":                         components.NewVirtualMachineInstanceCrd,
		"instancetype.kubevirt.io_virtualmachineinstancetypes.yaml":        components.NewVirtualMachineInstancetypeCrd,
		"instancetype.kubevirt.io_virtualmachineclusterinstancetypes.yaml": components.NewVirtualMachineClusterInstancetypeCrd,
		"instancetype.kubevirt.io_virtualmachinepreferences.yaml":          components.NewVirtualMachinePreferenceCrd,
		"instancetype.kubevirt.io_virtualmachineclusterpreferences.yaml":   components.NewVirtualMachineClusterPreferenceCrd,
	}
	for name, newCRD := range crds {
		crd, err := newCRD()
		if err != nil {
			return fmt.Errorf("failed to generate %s: %w", name, err)
		}
		if err := write(filepath.Join(out, "crds", name), crd); err != nil {
			return err
		}
	}

	// The namespace only names virt-api's Service, which envtest replaces
	// with the URL of the test's server.
	whc := components.NewVirtAPIValidatingWebhookConfiguration("kubevirt")
	whc.Webhooks = slices.DeleteFunc(whc.Webhooks, func(w admissionregistrationv1.ValidatingWebhook) bool {
		return !slices.Contains(servedWebhooks, w.Name)
	})
	if len(whc.Webhooks) != len(servedWebhooks) {
		return fmt.Errorf("failed to find all of %v in virt-api's webhooks, found %d", servedWebhooks, len(whc.Webhooks))
	}
	return write(filepath.Join(out, "webhooks", "virt-api-validating.yaml"), whc)
}

// write marshals obj as KubeVirt's resource-generator does (no status, no
// creation timestamp) and replaces path atomically, so that an interrupted
// run never leaves a half file that the cache would keep. It encodes with
// yaml.v3, not with the resource-generator's marshaller (go-yaml v2 through
// sigs.k8s.io/yaml): that one folds some single-quoted descriptions of the
// VirtualMachine CRD without their closing quote, e.g. `'DataVolumeContentType
// options: "kubevirt", "archive"'`, and then cannot read its own output.
func write(path string, obj any) error {
	data, err := encode(obj)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to create a file for %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// encode returns obj's YAML and checks that it reads back as the same object.
func encode(obj any) ([]byte, error) {
	want, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var u map[string]any
	if err := json.Unmarshal(want, &u); err != nil {
		return nil, err
	}
	delete(u, "status")
	if meta, ok := u["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	if want, err = json.Marshal(u); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(u); err != nil {
		return nil, err
	}
	got, err := sigsyaml.YAMLToJSON(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("failed to read back the YAML written: %w", err)
	}
	if !jsonEqual(want, got) {
		return nil, errors.New("the YAML written does not read back as the object")
	}
	return out.Bytes(), nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
