package api

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

const sshKeys = "admin:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJeaD1heScpzmiypsUSb0T3lkmg2d/onGkPviaZ2Rtgc admin@hostname\nguest:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBYgtXDI3X7eELjQ+D+qbJGqgfa+OqvY7jo/EuLv1ECd guest@hostname\n"

// seedInstance is the seed page's example instance as a resource.
func seedInstance(name string) *computev1alpha1.Instance {
	return &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: projectNS,
			Labels: map[string]string{"property1": "string", "property2": "string", "app.kubernetes.io/managed-by": "argocd"},
		},
		Spec: computev1alpha1.InstanceSpec{
			DisplayName:      "string",
			Description:      "string",
			Type:             "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge",
			InstanceMetadata: []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: sshKeys}},
			Disks: []computev1alpha1.Disk{{
				SizeGb: 100, Interface: computev1alpha1.DiskInterfaceSCSI, Boot: true,
				Source: "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3",
				Type:   computev1alpha1.DiskTypePersistent, Mode: computev1alpha1.DiskModeReadOnly,
			}},
			NICs: []computev1alpha1.NIC{{
				Network: "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/network-g7h8i9",
				Subnet:  "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/subnets/subnet-a1b2c3",
				VLAN:    100,
			}},
			GPUs: []computev1alpha1.GPU{{Type: "/v1/regions/us-texas-1/zones/us1-a/gpu-types/h100-80gb", Count: 8}},
		},
	}
}

// createWithStatus creates in and writes its status the way the reconciler does.
func createWithStatus(t testing.TB, in *computev1alpha1.Instance, status computev1alpha1.InstanceStatus) *computev1alpha1.Instance {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, in); err != nil {
		t.Fatalf("failed to create %s: %v", in.Name, err)
	}
	in.Status = status
	if err := env.Client.Status().Update(ctx, in); err != nil {
		t.Fatalf("failed to write the status of %s: %v", in.Name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), in) })
	return in
}

func instancePath(id string) string {
	return "/v1/regions/" + region + "/projects/" + project + "/compute/instances/" + id
}

const collectionPath = "/v1/regions/" + region + "/projects/" + project + "/compute/instances"

// TestGetSeed is the seed page: GET of an instance answers exactly the
// documented body, every field from the resource.
func TestGetSeed(t *testing.T) {
	if srv.instanceStore == nil {
		t.Error("the GET path has no direct access to the instance informer's store")
	}
	updated := metav1.NewTime(time.Date(2026, 11, 27, 14, 15, 22, 0, time.UTC))
	in := createWithStatus(t, seedInstance("instance-d4e5f6"), computev1alpha1.InstanceStatus{
		Lifecycle: computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleProvisioning, StatusMessage: "allocating resources"},
		Hostname:  "instance-d4e5f6",
		NICs: []computev1alpha1.NICStatus{{
			Network:     "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/network-g7h8i9",
			Subnet:      "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/subnets/subnet-a1b2c3",
			IPv4Address: "10.0.0.7", IPv6Address: "fd00::7", VLAN: 100,
		}},
		UpdatedAt: &updated,
	})

	// The informer cache is eventually consistent: wait until it holds this
	// very instance (a previous run's may linger for a moment).
	var r response
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = call(t, http.MethodGet, instancePath("instance-d4e5f6"), tokens["viewer"], nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, body %s", r.StatusCode, r.body)
		}
		var got Instance
		r.json(t, &got)
		if got.UID == string(in.UID) && got.Lifecycle.StatusMessage == "allocating resources" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never served this instance: %s", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := `{
  "selfLink": "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/instance-d4e5f6",
  "uid": "` + string(in.UID) + `",
  "id": "instance-d4e5f6",
  "displayName": "string",
  "description": "string",
  "labels": {"property1": "string", "property2": "string"},
  "type": "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge",
  "instanceMetadata": [{"key": "ssh-keys", "value": ` + jsonString(sshKeys) + `}],
  "hostname": "instance-d4e5f6",
  "lifecycle": {"status": "PROVISIONING", "statusMessage": "allocating resources"},
  "disks": [{"sizeGb": 100, "interface": "SCSI", "source": "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3", "boot": true, "type": "PERSISTENT", "mode": "READ_ONLY"}],
  "nics": [{"network": "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/networks/network-g7h8i9", "subnet": "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/subnets/subnet-a1b2c3", "ipv4Address": "10.0.0.7", "ipv6Address": "fd00::7", "vlan": 100}],
  "gpus": [{"type": "/v1/regions/us-texas-1/zones/us1-a/gpu-types/h100-80gb", "count": 8}],
  "createdAt": "` + in.CreationTimestamp.UTC().Format(time.RFC3339) + `",
  "updatedAt": "2026-11-27T14:15:22Z"
}`
	assertJSONEqual(t, r.body, want)
	assertKeyOrder(t, r.body, []string{"selfLink", "uid", "id", "displayName", "description", "labels", "type",
		"instanceMetadata", "hostname", "lifecycle", "disks", "nics", "gpus", "createdAt", "updatedAt"})
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// TestGetReflectsStatusChanges: the reconciler's status writes reach the
// API's answer through the informer cache.
func TestGetReflectsStatusChanges(t *testing.T) {
	in := createWithStatus(t, seedInstance("instance-status"), computev1alpha1.InstanceStatus{
		Lifecycle: computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleStaging, StatusMessage: "booting"},
	})
	in.Status.Lifecycle = computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleRunning, StatusMessage: "running"}
	if err := env.Client.Status().Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got Instance
		r := call(t, http.MethodGet, instancePath(in.Name), tokens["viewer"], nil)
		r.json(t, &got)
		if got.Lifecycle.Status == computev1alpha1.LifecycleRunning {
			if got.Lifecycle.StatusMessage != "running" {
				t.Errorf("statusMessage = %q", got.Lifecycle.StatusMessage)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lifecycle stayed %s", got.Lifecycle.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGetHostnameBeforeTheReconciler: before status.hostname is written, GET
// answers the host name the machine will get: spec.hostname, or the
// instance's name when absent ("generated when absent" in the contract).
func TestGetHostnameBeforeTheReconciler(t *testing.T) {
	named := seedInstance("instance-named")
	named.Spec.Hostname = "db.example"
	for _, c := range []struct {
		in   *computev1alpha1.Instance
		want string
	}{
		{seedInstance("instance-unnamed"), "instance-unnamed"},
		{named, "db.example"},
	} {
		createWithStatus(t, c.in, computev1alpha1.InstanceStatus{})
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := call(t, http.MethodGet, instancePath(c.in.Name), tokens["viewer"], nil)
			if r.StatusCode == http.StatusOK {
				var got Instance
				r.json(t, &got)
				if got.Hostname != c.want {
					t.Errorf("%s: hostname %q, want %q", c.in.Name, got.Hostname, c.want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the cache never served the instance: %d %s", c.in.Name, r.StatusCode, r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	gb, _ := json.MarshalIndent(g, "", "  ")
	wb, _ := json.MarshalIndent(w, "", "  ")
	if string(gb) != string(wb) {
		t.Fatalf("body differs\n got: %s\nwant: %s", gb, wb)
	}
}

// assertKeyOrder checks the top-level keys come in the contract's order.
func assertKeyOrder(t *testing.T, body []byte, want []string) {
	t.Helper()
	dec := json.NewDecoder(bytesReader(body))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != len(want) {
		t.Fatalf("keys = %v, want %v", keys, want)
	}
	for i := range keys {
		if keys[i] != want[i] {
			t.Fatalf("keys = %v, want %v", keys, want)
		}
	}
}

func runningStatus() computev1alpha1.InstanceStatus {
	return computev1alpha1.InstanceStatus{
		Lifecycle: computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleRunning, StatusMessage: "the machine is up"},
		Hostname:  "host-1",
	}
}
