package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k0rdent-ai/instance-operator/internal/simcloud"
)

// TestDeleteNamespaceLeavesNoMachines: on the stack `make run` starts,
// `kubectl delete namespace` of a project with instances completes
// (kube-controller-manager deletes its Instances, the operator finalizes
// them) and the simulated cloud's service is left with none of their
// machines.
func TestDeleteNamespaceLeavesNoMachines(t *testing.T) {
	const project = "e2e-ns-delete"
	namespace := "us-texas-1-" + project
	var manifest strings.Builder
	fmt.Fprintf(&manifest, `apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels:
    k0rdent.ai/region: us-texas-1
    k0rdent.ai/project: %s
`, namespace, project)
	names := []string{"gone-1", "gone-2", "gone-3"}
	for _, name := range names {
		fmt.Fprintf(&manifest, `---
apiVersion: compute.k0rdent.ai/v1alpha1
kind: Instance
metadata:
  name: %s
  namespace: %s
spec:
  type: /v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge
  disks:
  - sizeGb: 20
    source: /v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3
    boot: true
`, name, namespace)
	}
	kubectl(t, manifest.String(), "apply", "-f", "-")
	for _, name := range names {
		kubectl(t, "", "wait", "-n", namespace, "instance/"+name, "--for=condition=Ready", "--timeout=120s")
	}

	if stack.simcloudURL == "" {
		t.Fatal("devstack never said where the simulated cloud serves")
	}
	// The cloud's operator's token, which devstack writes beside the deployer's.
	opts := simcloud.DefaultClientOptions()
	opts.TokenFile = filepath.Join(stack.dataDir, "simcloud-admin-token")
	cloud, err := simcloud.NewClient(stack.simcloudURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	machinesOf := func() []string {
		t.Helper()
		machines, err := cloud.Machines(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range machines {
			if m.Namespace == namespace {
				out = append(out, fmt.Sprintf("%s (%s, %s)", m.Name, m.ID, m.Phase))
			}
		}
		return out
	}
	if got := machinesOf(); len(got) != len(names) {
		t.Fatalf("the cloud holds %v for the namespace, want one machine for each of %v", got, names)
	}

	kubectl(t, "", "delete", "namespace", namespace, "--wait=true", "--timeout=120s")
	if out, err := kubectlErr("", "get", "namespace", namespace); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("the namespace is still there after kubectl delete: %v\n%s", err, out)
	}
	if got := machinesOf(); len(got) != 0 {
		t.Errorf("the cloud still holds machines of the deleted namespace: %v", got)
	}
}
