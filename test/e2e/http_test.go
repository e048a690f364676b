package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

const projectPath = "/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances"

var httpClient = &http.Client{Timeout: 10 * time.Second}

// call makes one request with the deployer's token and decodes the JSON answer.
func call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, stack.apiURL+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+stack.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var decoded map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &decoded); err != nil {
			t.Fatalf("%s %s answered %d with a body that is not JSON: %v\n%s", method, path, resp.StatusCode, err, data)
		}
	}
	return resp.StatusCode, decoded
}

func lifecycleStatus(body map[string]any) string {
	lc, _ := body["lifecycle"].(map[string]any)
	s, _ := lc["status"].(string)
	return s
}

// eventuallyStatus polls GET until the instance's lifecycle is want (or the
// instance is gone, for want == "gone").
func eventuallyStatus(t *testing.T, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for time.Now().Before(deadline) {
		code, body := call(t, http.MethodGet, projectPath+"/"+id, nil)
		switch {
		case want == "gone" && code == http.StatusNotFound:
			return body
		case code == http.StatusOK && lifecycleStatus(body) == want:
			return body
		}
		last = fmt.Sprintf("%d %v", code, body)
		<-tick.C
	}
	t.Fatalf("instance %s did not reach %s within 2 minutes; last answer: %s", id, want, last)
	return nil
}

// TestSeedGet is the seed page's call, with the token that `make run` writes.
func TestSeedGet(t *testing.T) {
	body := eventuallyStatus(t, devstack.SampleInstance, "RUNNING")
	for field, want := range map[string]any{
		"id":       devstack.SampleInstance,
		"selfLink": projectPath + "/" + devstack.SampleInstance,
		"type":     "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge",
	} {
		if body[field] != want {
			t.Errorf("%s = %v, want %v", field, body[field], want)
		}
	}
	for _, field := range []string{"uid", "hostname", "createdAt", "updatedAt", "instanceMetadata", "disks", "nics", "gpus", "labels"} {
		if _, ok := body[field]; !ok {
			t.Errorf("the answer lacks %q: %v", field, body)
		}
	}
	nics, _ := body["nics"].([]any)
	if len(nics) != 1 {
		t.Fatalf("nics = %v, want one", body["nics"])
	}
	if ip, _ := nics[0].(map[string]any)["ipv4Address"].(string); strings.Count(ip, ".") != 3 {
		t.Errorf("nics[0].ipv4Address = %q, want the assigned address", ip)
	}
}

// TestHTTPLifecycle lists, creates, patches, stops, starts and deletes over HTTP.
func TestHTTPLifecycle(t *testing.T) {
	code, list := call(t, http.MethodGet, projectPath, nil)
	if code != http.StatusOK {
		t.Fatalf("list: %d %v", code, list)
	}
	instances, _ := list["instances"].([]any)
	found := false
	for _, item := range instances {
		if m, _ := item.(map[string]any); m["id"] == devstack.SampleInstance {
			found = true
		}
	}
	if !found {
		t.Errorf("list does not hold the sample: %v", list)
	}

	const id = "e2e-http"
	code, created := call(t, http.MethodPost, projectPath, map[string]any{
		"id":          id,
		"displayName": "made over HTTP",
		"type":        "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge",
		"disks": []any{map[string]any{
			"sizeGb": 20, "boot": true, "source": "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3",
		}},
	})
	if code != http.StatusCreated || created["id"] != id {
		t.Fatalf("create: %d %v", code, created)
	}
	eventuallyStatus(t, id, "RUNNING")

	code, patched := call(t, http.MethodPatch, projectPath+"/"+id, map[string]any{"displayName": "renamed"})
	if code != http.StatusOK || patched["displayName"] != "renamed" {
		t.Errorf("patch: %d %v", code, patched)
	}

	for _, power := range []struct{ action, lifecycle string }{
		{"stop", "TERMINATED"}, {"start", "RUNNING"}, {"suspend", "SUSPENDED"}, {"resume", "RUNNING"},
	} {
		code, answer := call(t, http.MethodPost, projectPath+"/"+id+":"+power.action, nil)
		if code != http.StatusOK {
			t.Fatalf(":%s: %d %v", power.action, code, answer)
		}
		eventuallyStatus(t, id, power.lifecycle)
	}

	code, body := call(t, http.MethodDelete, projectPath+"/"+id, nil)
	if code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, body)
	}
	eventuallyStatus(t, id, "gone")

	code, body = call(t, http.MethodGet, projectPath+"/"+id, nil)
	if code != http.StatusNotFound {
		t.Errorf("GET after delete: %d %v", code, body)
	}
	if env, _ := body["error"].(map[string]any); env == nil || env["code"] != float64(http.StatusNotFound) {
		t.Errorf("404 without the error envelope: %v", body)
	}
}
