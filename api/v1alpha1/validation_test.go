package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

const validationNamespace = "validation"

// sampleManifest is config/samples' instance, the seed's example, as a map
// that each case changes in one place, the way a user edits a manifest.
func sampleManifest(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "samples", "compute_v1alpha1_instance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(validationNamespace)
	u.SetName(name)
	return u
}

func minimalManifest(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "compute.k0rdent.ai/v1alpha1",
		"kind":       "Instance",
		"metadata":   map[string]any{"name": name, "namespace": validationNamespace},
		"spec":       map[string]any{"type": "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small"},
	}}
	return u
}

func ensureNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// set replaces the value at a path of nested map keys and list indexes.
func set(obj map[string]any, value any, path ...any) {
	var cur any = obj
	for i, key := range path {
		last := i == len(path)-1
		switch k := key.(type) {
		case string:
			m := cur.(map[string]any)
			if last {
				if value == nil {
					delete(m, k)
				} else {
					m[k] = value
				}
				return
			}
			if _, ok := m[k]; !ok {
				m[k] = map[string]any{}
			}
			cur = m[k]
		case int:
			l := cur.([]any)
			if last {
				l[k] = value
				return
			}
			cur = l[k]
		}
	}
}

func TestSampleAndMinimalInstancesAreAccepted(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, ctx, validationNamespace)
	for _, u := range []*unstructured.Unstructured{sampleManifest(t, "accepted-sample"), minimalManifest("accepted-minimal")} {
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("create %s: %v", u.GetName(), err)
		}
		got := &computev1alpha1.Instance{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.PowerState != computev1alpha1.PowerStateRunning {
			t.Errorf("%s: powerState defaulted to %q, want Running", u.GetName(), got.Spec.PowerState)
		}
		if got.Spec.DeletionPolicy != computev1alpha1.DeletionPolicyDelete {
			t.Errorf("%s: deletionPolicy defaulted to %q, want Delete", u.GetName(), got.Spec.DeletionPolicy)
		}
	}
	got := &computev1alpha1.Instance{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: validationNamespace, Name: "accepted-sample"}, got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.InstanceMetadata) != 1 || strings.Count(got.Spec.InstanceMetadata[0].Value, "ssh-ed25519") != 2 {
		t.Errorf("sample's ssh-keys did not survive the round trip: %+v", got.Spec.InstanceMetadata)
	}
	if len(got.Spec.Disks) != 1 || !got.Spec.Disks[0].Boot || got.Spec.Disks[0].Mode != computev1alpha1.DiskModeReadWrite {
		t.Errorf("sample's boot disk did not survive the round trip: %+v", got.Spec.Disks)
	}
}

func TestDiskModeDefaultsToReadWrite(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, ctx, validationNamespace)
	u := minimalManifest("default-mode")
	set(u.Object, []any{map[string]any{"sizeGb": int64(10)}}, "spec", "disks")
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	got := &computev1alpha1.Instance{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Disks[0].Mode != computev1alpha1.DiskModeReadWrite {
		t.Errorf("disk mode defaulted to %q, want READ_WRITE", got.Spec.Disks[0].Mode)
	}
}

// TestCreateValidation applies one bad manifest per rule of the schema and
// checks that the real kube-apiserver refuses it with a message naming the field.
func TestCreateValidation(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, ctx, validationNamespace)
	bootDisk := func(boot bool) map[string]any {
		return map[string]any{"sizeGb": int64(10), "boot": boot}
	}
	cases := []struct {
		name string
		edit func(u *unstructured.Unstructured)
		// wantField and wantMessage must both appear in the API server's error.
		wantField, wantMessage string
	}{
		{"id starts with a digit", func(u *unstructured.Unstructured) { u.SetName("1instance") },
			"metadata.name", "metadata.name is the instance id"},
		{"id has a dot", func(u *unstructured.Unstructured) { u.SetName("instance.one") },
			"metadata.name", "metadata.name is the instance id"},
		{"id longer than 63", func(u *unstructured.Unstructured) { u.SetName("i" + strings.Repeat("a", 63)) },
			"metadata.name", "metadata.name is the instance id"},
		{"id ends with a dash", func(u *unstructured.Unstructured) { u.SetName("instance-") },
			"metadata.name", "metadata.name is the instance id"},
		{"type missing", func(u *unstructured.Unstructured) { set(u.Object, nil, "spec", "type") },
			"spec.type", "Required value"},
		{"type not a URI", func(u *unstructured.Unstructured) { set(u.Object, "g1-xlarge", "spec", "type") },
			"spec.type", "type must be an instance type URI"},
		{"type of another resource", func(u *unstructured.Unstructured) {
			set(u.Object, "/v1/regions/us-texas-1/compute/images/ubuntu", "spec", "type")
		}, "spec.type", "type must be an instance type URI"},
		{"hostname with underscore", func(u *unstructured.Unstructured) { set(u.Object, "web_1", "spec", "hostname") },
			"spec.hostname", "hostname must be an RFC 1035 name"},
		{"hostname starting with a digit", func(u *unstructured.Unstructured) { set(u.Object, "1web", "spec", "hostname") },
			"spec.hostname", "hostname must be an RFC 1035 name"},
		{"hostname label over 63", func(u *unstructured.Unstructured) {
			set(u.Object, "h"+strings.Repeat("a", 63)+".example", "spec", "hostname")
		}, "spec.hostname", "hostname must be an RFC 1035 name"},
		{"metadata key with a space", func(u *unstructured.Unstructured) {
			set(u.Object, "ssh keys", "spec", "instanceMetadata", 0, "key")
		}, "spec.instanceMetadata[0].key", "should match"},
		{"metadata key of 128 bytes", func(u *unstructured.Unstructured) {
			set(u.Object, strings.Repeat("k", 128), "spec", "instanceMetadata", 0, "key")
		}, "spec.instanceMetadata[0].key", "may not be more than 127"},
		{"metadata keys not unique", func(u *unstructured.Unstructured) {
			set(u.Object, []any{
				map[string]any{"key": "startup-script", "value": "a"},
				map[string]any{"key": "startup-script", "value": "b"},
			}, "spec", "instanceMetadata")
		}, "spec.instanceMetadata[1]", "Duplicate value"},
		{"disk interface unknown", func(u *unstructured.Unstructured) { set(u.Object, "IDE", "spec", "disks", 0, "interface") },
			"spec.disks[0].interface", `supported values: "SCSI", "NVME"`},
		{"disk type unknown", func(u *unstructured.Unstructured) { set(u.Object, "SSD", "spec", "disks", 0, "type") },
			"spec.disks[0].type", `supported values: "PERSISTENT", "TEMPORARY"`},
		{"disk mode unknown", func(u *unstructured.Unstructured) { set(u.Object, "RW", "spec", "disks", 0, "mode") },
			"spec.disks[0].mode", `supported values: "READ_ONLY", "READ_WRITE"`},
		{"disk size zero", func(u *unstructured.Unstructured) { set(u.Object, int64(0), "spec", "disks", 0, "sizeGb") },
			"spec.disks[0].sizeGb", "should be greater than or equal to 1"},
		{"disk source not a URI", func(u *unstructured.Unstructured) { set(u.Object, "ubuntu-24.04", "spec", "disks", 0, "source") },
			"spec.disks[0].source", "source must be an image URI"},
		{"disk source with a project on an image", func(u *unstructured.Unstructured) {
			set(u.Object, "/v1/regions/us-texas-1/projects/p/compute/images/ubuntu", "spec", "disks", 0, "source")
		}, "spec.disks[0].source", "source must be an image URI"},
		{"disk with neither source nor size", func(u *unstructured.Unstructured) {
			set(u.Object, []any{map[string]any{"boot": true}}, "spec", "disks")
		}, "spec.disks[0]", "a disk needs a source, a sizeGb, or both"},
		{"two boot disks", func(u *unstructured.Unstructured) {
			set(u.Object, []any{bootDisk(true), bootDisk(true)}, "spec", "disks")
		}, "spec.disks", "at most one disk may have boot: true"},
		{"nic network not a URI", func(u *unstructured.Unstructured) { set(u.Object, "default", "spec", "nics", 0, "network") },
			"spec.nics[0].network", "network must be a network URI"},
		{"nic subnet not a URI", func(u *unstructured.Unstructured) { set(u.Object, "http://example.com", "spec", "nics", 0, "subnet") },
			"spec.nics[0].subnet", "subnet must be a subnet URI"},
		{"nic ipv4 not an address", func(u *unstructured.Unstructured) { set(u.Object, "10.0.0.300", "spec", "nics", 0, "ipv4Address") },
			"spec.nics[0].ipv4Address", "ipv4"},
		{"nic ipv6 not an address", func(u *unstructured.Unstructured) { set(u.Object, "fd00::zz", "spec", "nics", 0, "ipv6Address") },
			"spec.nics[0].ipv6Address", "ipv6"},
		{"nic vlan out of range", func(u *unstructured.Unstructured) { set(u.Object, int64(4095), "spec", "nics", 0, "vlan") },
			"spec.nics[0].vlan", "should be less than or equal to 4094"},
		{"gpu type not a URI", func(u *unstructured.Unstructured) { set(u.Object, "http://example.com", "spec", "gpus", 0, "type") },
			"spec.gpus[0].type", "type must be a GPU type URI"},
		{"gpu type missing", func(u *unstructured.Unstructured) { set(u.Object, nil, "spec", "gpus", 0, "type") },
			"spec.gpus[0].type", "Required value"},
		{"gpu count zero", func(u *unstructured.Unstructured) { set(u.Object, int64(0), "spec", "gpus", 0, "count") },
			"spec.gpus[0].count", "should be greater than or equal to 1"},
		{"power state unknown", func(u *unstructured.Unstructured) { set(u.Object, "On", "spec", "powerState") },
			"spec.powerState", `supported values: "Running", "Stopped", "Suspended"`},
		{"deletion policy unknown", func(u *unstructured.Unstructured) { set(u.Object, "Keep", "spec", "deletionPolicy") },
			"spec.deletionPolicy", `supported values: "Delete", "Orphan"`},
		{"display name too long", func(u *unstructured.Unstructured) { set(u.Object, strings.Repeat("x", 257), "spec", "displayName") },
			"spec.displayName", "may not be more than 256"},
		{"display name with a line break", func(u *unstructured.Unstructured) { set(u.Object, "a\nb", "spec", "displayName") },
			"spec.displayName", "should match"},
		{"description with NUL", func(u *unstructured.Unstructured) { set(u.Object, "a\x00b", "spec", "description") },
			"spec.description", "should match"},
		{"metadata value with an escape", func(u *unstructured.Unstructured) {
			set(u.Object, "echo \x1b[2J", "spec", "instanceMetadata", 0, "value")
		}, "spec.instanceMetadata[0].value", "should match"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := sampleManifest(t, fmt.Sprintf("bad-%02d", i))
			tc.edit(u)
			err := env.Client.Create(ctx, u)
			if err == nil {
				t.Fatalf("the API server accepted the manifest; want it refused on %s", tc.wantField)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantField) || !strings.Contains(err.Error(), tc.wantMessage) {
				t.Errorf("error does not name %q with %q:\n%v", tc.wantField, tc.wantMessage, err)
			}
		})
	}
}

// TestImmutableFields applies one bad update per immutable field to a stored
// sample, and checks that the mutable fields do change.
func TestImmutableFields(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, ctx, validationNamespace)
	stored := sampleManifest(t, "immutable")
	set(stored.Object, "node-1", "spec", "hostname")
	if err := env.Client.Create(ctx, stored); err != nil {
		t.Fatal(err)
	}
	noGPUs := minimalManifest("immutable-minimal")
	if err := env.Client.Create(ctx, noGPUs); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name      string
		base      *unstructured.Unstructured
		edit      func(u *unstructured.Unstructured)
		wantField string
		wantMsg   string
	}{
		{"type", stored, func(u *unstructured.Unstructured) {
			set(u.Object, "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-2xlarge", "spec", "type")
		}, "spec.type", "type is immutable"},
		{"hostname changed", stored, func(u *unstructured.Unstructured) { set(u.Object, "node-2", "spec", "hostname") },
			"spec.hostname", "hostname is immutable once set"},
		{"hostname removed", stored, func(u *unstructured.Unstructured) { set(u.Object, nil, "spec", "hostname") },
			"spec.hostname", "hostname is immutable once set"},
		{"disk size", stored, func(u *unstructured.Unstructured) { set(u.Object, int64(200), "spec", "disks", 0, "sizeGb") },
			"spec.disks", "disks are immutable"},
		{"disks removed", stored, func(u *unstructured.Unstructured) { set(u.Object, nil, "spec", "disks") },
			"spec.disks", "disks are immutable"},
		{"nic network", stored, func(u *unstructured.Unstructured) {
			set(u.Object, "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/other", "spec", "nics", 0, "network")
		}, "spec.nics", "nics are immutable"},
		{"gpu count", stored, func(u *unstructured.Unstructured) { set(u.Object, int64(2), "spec", "gpus", 0, "count") },
			"spec.gpus", "gpus are immutable"},
		{"gpus added", noGPUs, func(u *unstructured.Unstructured) {
			set(u.Object, []any{map[string]any{"type": "/v1/regions/us-texas-1/gpu-types/h100-80gb", "count": int64(1)}}, "spec", "gpus")
		}, "spec.gpus", "gpus are immutable"},
		{"nics added", noGPUs, func(u *unstructured.Unstructured) { set(u.Object, []any{map[string]any{}}, "spec", "nics") },
			"spec.nics", "nics are immutable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.base.DeepCopy()
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
				t.Fatal(err)
			}
			tc.edit(u)
			err := env.Client.Update(ctx, u)
			if err == nil {
				t.Fatalf("the API server accepted the update; want %s refused", tc.wantField)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.wantField) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("want Invalid naming %q with %q, got:\n%v", tc.wantField, tc.wantMsg, err)
			}
		})
	}

	t.Run("mutable fields change", func(t *testing.T) {
		got := &computev1alpha1.Instance{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(stored), got); err != nil {
			t.Fatal(err)
		}
		got.Spec.DisplayName = "renamed"
		got.Spec.Description = "changed"
		got.Spec.InstanceMetadata = append(got.Spec.InstanceMetadata, computev1alpha1.MetadataItem{Key: "startup-script", Value: "echo hi"})
		got.Labels["team"] = "platform"
		got.Spec.PowerState = computev1alpha1.PowerStateStopped
		got.Spec.DeletionPolicy = computev1alpha1.DeletionPolicyOrphan
		if err := env.Client.Update(ctx, got); err != nil {
			t.Fatalf("update of mutable fields refused: %v", err)
		}
		after := &computev1alpha1.Instance{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(stored), after); err != nil {
			t.Fatal(err)
		}
		if after.Spec.DisplayName != "renamed" || after.Spec.Description != "changed" ||
			len(after.Spec.InstanceMetadata) != 2 || after.Labels["team"] != "platform" ||
			after.Spec.PowerState != computev1alpha1.PowerStateStopped ||
			after.Spec.DeletionPolicy != computev1alpha1.DeletionPolicyOrphan {
			t.Errorf("mutable fields not stored: %+v labels=%v", after.Spec, after.Labels)
		}
	})

	t.Run("hostname may be set once when absent", func(t *testing.T) {
		u := noGPUs.DeepCopy()
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatal(err)
		}
		set(u.Object, "late-name", "spec", "hostname")
		if err := env.Client.Update(ctx, u); err != nil {
			t.Fatalf("setting an absent hostname refused: %v", err)
		}
	})
}
