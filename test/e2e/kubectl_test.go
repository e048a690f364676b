package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

const ns = devstack.SampleNamespace

func waitFor(t *testing.T, resource, condition string) {
	t.Helper()
	kubectl(t, "", "wait", "-n", ns, resource, "--for="+condition, "--timeout=120s")
}

// TestKubectlLifecycle drives the sample and a new instance with the built
// kubectl only: apply, wait for Ready, the table, stop and start, delete.
func TestKubectlLifecycle(t *testing.T) {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Applying the samples again is what a GitOps pipeline does: a no-op.
	out := kubectl(t, "", "apply", "-k", filepath.Join(root, "config", "samples"))
	if !strings.Contains(out, "instance.compute.k0rdent.ai/"+devstack.SampleInstance) {
		t.Fatalf("kubectl apply -k config/samples did not mention the sample:\n%s", out)
	}
	waitFor(t, "instance/"+devstack.SampleInstance, "condition=Ready")

	table := kubectl(t, "", "get", "instances", "-n", ns, devstack.SampleInstance)
	header, row := splitTable(t, table)
	for col, want := range map[string]string{"NAME": devstack.SampleInstance, "STATUS": "RUNNING", "TYPE": "g1-xlarge", "READY": "True"} {
		if got := cell(header, row, col); got != want {
			t.Errorf("column %s = %q, want %q\n%s", col, got, want, table)
		}
	}
	if ip := cell(header, row, "IP"); strings.Count(ip, ".") != 3 {
		t.Errorf("column IP = %q, want an IPv4 address\n%s", ip, table)
	}
	if cell(header, row, "HOSTNAME") == "" {
		t.Errorf("column HOSTNAME is empty\n%s", table)
	}

	t.Run("stop and start by patching powerState", func(t *testing.T) {
		kubectl(t, "", "patch", "instance", devstack.SampleInstance, "-n", ns, "--type=merge", "-p", `{"spec":{"powerState":"Stopped"}}`)
		waitFor(t, "instance/"+devstack.SampleInstance, "jsonpath={.status.lifecycle.status}=TERMINATED")
		waitFor(t, "instance/"+devstack.SampleInstance, "condition=Ready")
		kubectl(t, "", "patch", "instance", devstack.SampleInstance, "-n", ns, "--type=merge", "-p", `{"spec":{"powerState":"Running"}}`)
		waitFor(t, "instance/"+devstack.SampleInstance, "jsonpath={.status.lifecycle.status}=RUNNING")
		waitFor(t, "instance/"+devstack.SampleInstance, "condition=Ready")
	})

	t.Run("apply, wait and delete a new instance", func(t *testing.T) {
		manifest := `apiVersion: compute.k0rdent.ai/v1alpha1
kind: Instance
metadata:
  name: e2e-kubectl
  namespace: ` + ns + `
spec:
  type: /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge
  disks:
  - sizeGb: 20
    source: /v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3
    boot: true
`
		kubectl(t, manifest, "apply", "-f", "-")
		waitFor(t, "instance/e2e-kubectl", "condition=Ready")
		if status := kubectl(t, "", "get", "instance", "e2e-kubectl", "-n", ns, "-o", "jsonpath={.status.lifecycle.status}"); status != "RUNNING" {
			t.Errorf("lifecycle = %q, want RUNNING", status)
		}
		kubectl(t, "", "delete", "instance", "e2e-kubectl", "-n", ns, "--wait=true", "--timeout=120s")
		if out, err := kubectlErr("", "get", "instance", "e2e-kubectl", "-n", ns); err == nil || !strings.Contains(out, "NotFound") {
			t.Errorf("the instance is still there after kubectl delete: %v\n%s", err, out)
		}
	})
}

func splitTable(t *testing.T, table string) (header, row string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row:\n%s", table)
	}
	return lines[0], lines[1]
}

// cell cuts a kubectl table's row at the header's column starts.
func cell(header, row, column string) string {
	start := strings.Index(header, column)
	if start < 0 || start >= len(row) {
		return ""
	}
	end := len(row)
	if next := strings.IndexFunc(header[start+len(column):], func(r rune) bool { return r != ' ' }); next >= 0 {
		end = min(end, start+len(column)+next)
	}
	return strings.TrimSpace(row[start:end])
}
