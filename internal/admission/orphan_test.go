package admission_test

import (
	"context"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// kubectlAs runs the real kubectl as user (impersonated by the envtest
// admin, as `kubectl --as` does for anyone allowed to impersonate).
func kubectlAs(t *testing.T, user string, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := env.Kubectl(t, "", append([]string{"--as", user, "--as-group", "system:authenticated"}, args...)...)
	return out + errOut, err
}

// kubectlRefused fails unless kubectl failed with a message containing want.
func kubectlRefused(t *testing.T, out string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("kubectl succeeded: %s; want refused with %q", out, want)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("kubectl refused with %q; want it to say %q", out, want)
	}
}

// TestDeployerCannotTurnDeletionIntoOrphan: the sequence that once left a
// machine running with no Instance (pause, delete, strip the finalizer),
// through kubectl as a user holding compute.deployer. Pausing is refused;
// without a pause, a delete followed at once by stripping the finalizer
// (racing the operator) is refused by every patch type and by server-side
// apply under another field manager, dry-run or not, so the Instance, and
// the machine it tracks, stay until the operator deletes the machine.
// compute.admin holds both verbs.
func TestDeployerCannotTurnDeletionIntoOrphan(t *testing.T) {
	ctx := context.Background()
	as(t, tenant)
	waitTenancyEnforced(t)
	in := tenantInstance("orphan-by-finalizer")
	if err := env.Client.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !controllerutil.ContainsFinalizer(in, computev1alpha1.Finalizer) {
		t.Fatalf("kube-apiserver did not stamp the finalizer: %v", in.Finalizers)
	}
	ref := []string{"-n", tenantNS, "instance", in.Name}
	kubectl := func(args ...string) (string, error) { return kubectlAs(t, tenant, args...) }

	for _, args := range [][]string{
		{"annotate", ref[2] + "/" + ref[3], "-n", tenantNS, computev1alpha1.PausedAnnotation + "=true"},
		{"annotate", ref[2] + "/" + ref[3], "-n", tenantNS, computev1alpha1.PausedAnnotation + "=yes", "--dry-run=server"},
	} {
		out, err := kubectl(args...)
		kubectlRefused(t, out, err, "needs the verb pause")
	}

	if out, err := kubectl(append([]string{"delete", "--wait=false"}, ref...)...); err != nil {
		t.Fatalf("the deployer deleting its instance: %v: %s", err, out)
	}
	strip := [][]string{
		append([]string{"patch"}, append(ref, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)...),
		append([]string{"patch"}, append(ref, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)...),
		append([]string{"patch"}, append(ref, "--type=merge", "-p", `{"metadata":{"finalizers":[]}}`)...),
		append([]string{"patch"}, append(ref, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`, "--dry-run=server")...),
		{"annotate", ref[2] + "/" + ref[3], "-n", tenantNS, computev1alpha1.PausedAnnotation + "=true"},
	}
	for _, args := range strip {
		out, err := kubectl(args...)
		want := "needs the verb finalize"
		if args[0] == "annotate" {
			want = "needs the verb pause"
		}
		kubectlRefused(t, out, err, want)
	}
	manifest := `{"apiVersion":"compute.k0rdent.ai/v1alpha1","kind":"Instance","metadata":{"name":"` + in.Name +
		`","namespace":"` + tenantNS + `","finalizers":[]}}`
	// Server-side apply removes only the list items its manager owns: an
	// apply that owns none leaves the finalizer (and may succeed); one that
	// took it over would be refused. Either way the finalizer must stay.
	out, errOut, err := env.Kubectl(t, manifest, "--as", tenant, "--as-group", "system:authenticated",
		"apply", "--server-side", "--force-conflicts", "--field-manager=intruder", "-f", "-")
	if err != nil && !strings.Contains(out+errOut, "needs the verb finalize") {
		t.Fatalf("server-side apply failed otherwise: %v: %s%s", err, out, errOut)
	}

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(in), in); err != nil {
		t.Fatalf("the instance is gone: %v", err)
	}
	if !controllerutil.ContainsFinalizer(in, computev1alpha1.Finalizer) || in.DeletionTimestamp.IsZero() {
		t.Fatalf("the instance being deleted lost its finalizer: %v", in.Finalizers)
	}

	// compute.admin may pause and release: the rights exist, they are its.
	admin := func(args ...string) (string, error) { return kubectlAs(t, tenantAdm, args...) }
	if out, err := admin("annotate", ref[2]+"/"+ref[3], "-n", tenantNS, computev1alpha1.PausedAnnotation+"=true"); err != nil {
		t.Fatalf("compute.admin pausing: %v: %s", err, out)
	}
	if out, err := admin(append([]string{"patch"}, append(ref, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)...)...); err != nil {
		t.Fatalf("compute.admin removing the finalizer: %v: %s", err, out)
	}
}
