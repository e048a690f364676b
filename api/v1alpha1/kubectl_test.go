package v1alpha1_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

// TestKubectlApplySamples applies config/samples with the built kubectl, as a
// user would, and checks the instance landed in the namespace of its region
// and project.
func TestKubectlApplySamples(t *testing.T) {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := env.Kubectl(t, "", "apply", "-k", filepath.Join(root, "config", "samples"))
	if err != nil {
		t.Fatalf("kubectl apply -k config/samples: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "instance.compute.k0rdent.ai/instance-d4e5f6 created") {
		t.Errorf("kubectl apply did not report the instance created:\n%s", out)
	}
	out, errOut, err = env.Kubectl(t, "", "get", "namespaces", "-l", "k0rdent.ai/region=us-texas-1,k0rdent.ai/project=project-x9y8z7", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "namespace/us-texas-1-project-x9y8z7" {
		t.Errorf("sample namespace not found by its region and project labels: %v\n%s%s", err, out, errOut)
	}
}

// TestKubectlApplyRefusesBadManifest checks that what kubectl prints for a bad
// manifest tells a person what is wrong.
func TestKubectlApplyRefusesBadManifest(t *testing.T) {
	ensureNamespace(t, context.Background(), "kubectl-bad")
	manifest := `apiVersion: compute.k0rdent.ai/v1alpha1
kind: Instance
metadata:
  name: bad-type
  namespace: kubectl-bad
spec:
  type: g1-xlarge
  disks:
  - sizeGb: 10
    interface: IDE
`
	// The API server checks CEL rules only once the schema's own checks pass,
	// so each manifest carries one kind of mistake.
	for _, tc := range []struct{ from, to, field, message string }{
		{"interface: IDE", "interface: NVME", "spec.type",
			"type must be an instance type URI such as /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"},
		{"type: g1-xlarge", "type: /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge", "spec.disks[0].interface",
			`Unsupported value: "IDE": supported values: "SCSI", "NVME"`},
	} {
		out, errOut, err := env.Kubectl(t, strings.Replace(manifest, tc.from, tc.to, 1), "apply", "-f", "-")
		if err == nil {
			t.Fatalf("kubectl apply accepted a bad manifest:\n%s", out)
		}
		if !strings.Contains(errOut, tc.field+": ") || !strings.Contains(errOut, tc.message) {
			t.Errorf("kubectl's error lacks %q with %q:\n%s", tc.field, tc.message, errOut)
		}
	}

	unknownField := strings.Replace(manifest, "type: g1-xlarge", "type: /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge\n  colour: blue", 1)
	unknownField = strings.Replace(unknownField, "interface: IDE", "interface: NVME", 1)
	_, errOut, err := env.Kubectl(t, unknownField, "apply", "-f", "-")
	if err == nil || !strings.Contains(errOut, `unknown field "spec.colour"`) {
		t.Errorf("kubectl apply of an unknown field: err=%v, want it refused naming spec.colour:\n%s", err, errOut)
	}
}

// TestKubectlGetColumns checks the columns of `kubectl get instances` and of
// `kubectl get inst -o wide`, with a status as the controller writes it.
func TestKubectlGetColumns(t *testing.T) {
	ctx := context.Background()
	const ns = "printer"
	ensureNamespace(t, ctx, ns)
	u := sampleManifest(t, "printed")
	u.SetNamespace(ns)
	if err := env.Client.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	inst := &computev1alpha1.Instance{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(u), inst); err != nil {
		t.Fatal(err)
	}
	inst.Status.Lifecycle = computev1alpha1.Lifecycle{Status: computev1alpha1.LifecycleRunning, StatusMessage: "The instance is running."}
	inst.Status.InstanceTypeName = computev1alpha1.TypeName(inst.Spec.Type)
	inst.Status.Zone = computev1alpha1.ZoneOf(inst.Spec.Type)
	inst.Status.Hostname = "printed"
	inst.Status.GPUSummary = "1x h100-80gb"
	inst.Status.NICs = []computev1alpha1.NICStatus{{IPv4Address: "10.0.0.7", IPv6Address: "fd00::7"}}
	meta.SetStatusCondition(&inst.Status.Conditions, metav1.Condition{
		Type: computev1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: computev1alpha1.ReasonRunning, Message: "The instance is running.",
	})
	if err := env.Client.Status().Update(ctx, inst); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := env.Kubectl(t, "", "get", "instances", "-n", ns)
	if err != nil {
		t.Fatalf("kubectl get instances: %v\n%s", err, errOut)
	}
	assertTable(t, out,
		[]string{"NAME", "STATUS", "TYPE", "HOSTNAME", "IP", "READY", "AGE"},
		[]string{"printed", "RUNNING", "g1-xlarge", "printed", "10.0.0.7", "True"})

	out, errOut, err = env.Kubectl(t, "", "get", "inst", "-n", ns, "-o", "wide")
	if err != nil {
		t.Fatalf("kubectl get inst -o wide: %v\n%s", err, errOut)
	}
	assertTable(t, out,
		[]string{"NAME", "STATUS", "TYPE", "HOSTNAME", "IP", "READY", "AGE", "ZONE", "GPUS"},
		[]string{"printed", "RUNNING", "g1-xlarge", "printed", "10.0.0.7", "True", "", "us1-a", "1x h100-80gb"})

	// The categories bring instances into `kubectl get k0rdent` and `kubectl get compute`.
	for _, category := range []string{"k0rdent", "compute"} {
		out, errOut, err = env.Kubectl(t, "", "get", category, "-n", ns, "-o", "name")
		if err != nil || !strings.Contains(out, "instance.compute.k0rdent.ai/printed") {
			t.Errorf("kubectl get %s does not list the instance: %v\n%s%s", category, err, out, errOut)
		}
	}
}

// assertTable checks a kubectl table's header and its one row. Columns are
// cut at the header's column starts, because a cell may hold spaces. An
// empty wanted cell is not checked (AGE).
func assertTable(t *testing.T, out string, header, row []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != strings.Join(header, " ") {
		t.Fatalf("header = %q, want %q", got, header)
	}
	starts := make([]int, len(header))
	for i, h := range header {
		starts[i] = strings.Index(lines[0], h)
	}
	for i, want := range row {
		end := len(lines[1])
		if i+1 < len(starts) {
			end = min(starts[i+1], end)
		}
		got := ""
		if starts[i] < len(lines[1]) {
			got = strings.TrimSpace(lines[1][starts[i]:end])
		}
		if want != "" && got != want {
			t.Errorf("column %s = %q, want %q\n%s", header[i], got, want, out)
		}
	}
}
