package admission_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// controllersUser is the controllers' service account as config/ installs
// it; config/admission/owned_secrets_policy.yaml names it.
const controllersUser = "system:serviceaccount:instance-operator-system:instance-operator-controller-manager"

// asControllers is a client acting as the controllers' service account,
// bound to every write on Secrets, more than the shipped roles give, so
// that each refusal below is the policy's and not RBAC's.
func asControllers(t *testing.T) client.Client {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "test:secret-writer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update", "patch", "delete"}}}}
	for _, o := range []client.Object{role, clusterBinding(controllersUser, role.Name)} {
		if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controllersUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:instance-operator-system", "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secret(name string, owners ...metav1.OwnerReference) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, OwnerReferences: owners},
		Data:       map[string][]byte{"userdata": []byte("#cloud-config\n")},
	}
}

func ownedBy(in *computev1alpha1.Instance) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: computev1alpha1.GroupVersion.String(), Kind: "Instance", Name: in.Name, UID: in.UID}
}

func jsonPatch(body string) client.Patch { return client.RawPatch(types.JSONPatchType, []byte(body)) }

// refusedByPolicy fails unless err is the controller-secrets policy's refusal.
func refusedByPolicy(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "may write only the cloud-init Secret") {
		t.Errorf("%s: got %v, want the controller-secrets policy's refusal", what, err)
	}
}

// TestControllersWriteOnlyTheirInstancesCloudInitSecrets: the controllers'
// service account, even with every write on Secrets granted, may create,
// patch and delete only <instance>-cloudinit Secrets owned by that Instance
// (or its VirtualMachine, once released); a Secret of someone else's, even
// one named like a cloud-init Secret, can be neither overwritten, read
// through a patch's answer, adopted, nor deleted. Other users are unaffected.
func TestControllersWriteOnlyTheirInstancesCloudInitSecrets(t *testing.T) {
	ctx := context.Background()
	c := asControllers(t)
	web := instance("web")
	if err := env.Client.Create(ctx, web); err != nil {
		t.Fatal(err)
	}

	// The policy and the binding take effect once kube-apiserver's informer
	// and RBAC have them: wait for the first refusal of an unowned create.
	deadline := time.Now().Add(time.Minute)
	for {
		err := c.Create(ctx, secret("probe"), client.DryRunAll)
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy never refused an unowned Secret: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Someone else's Secrets, made by the cluster admin, whom the policy does not bind.
	foreign := secret("db-cloudinit")
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatalf("the admin's own Secret: %v", err)
	}
	if err := env.Client.Create(ctx, secret("api-key")); err != nil {
		t.Fatalf("the admin's own Secret: %v", err)
	}

	t.Run("create", func(t *testing.T) {
		if err := c.Create(ctx, secret("web-cloudinit", ownedBy(web))); err != nil {
			t.Fatalf("the instance's own cloud-init Secret: %v", err)
		}
		refusedByPolicy(t, "no owner", c.Create(ctx, secret("loose-cloudinit")))
		refusedByPolicy(t, "a name not the owner's", c.Create(ctx, secret("other", ownedBy(web))))
		fake := ownedBy(web)
		fake.APIVersion = "evil.example.com/v1"
		refusedByPolicy(t, "an Instance of another group", c.Create(ctx, secret("web2-cloudinit", metav1.OwnerReference{
			APIVersion: fake.APIVersion, Kind: "Instance", Name: "web2", UID: web.UID})))
	})

	t.Run("patch", func(t *testing.T) {
		got := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "web-cloudinit", Namespace: namespace}}
		if err := c.Patch(ctx, got, jsonPatch(`[{"op":"add","path":"/data/networkdata","value":"dmVyc2lvbjogMg=="}]`)); err != nil {
			t.Fatalf("patching the instance's own Secret: %v", err)
		}
		// Adopting someone else's Secret, whose answer would carry its data.
		adopt := `[{"op":"add","path":"/metadata/ownerReferences","value":[{"apiVersion":"compute.k0rdent.ai/v1alpha1","kind":"Instance","name":"db","uid":"` + string(web.UID) + `"}]}]`
		stolen := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-cloudinit", Namespace: namespace}}
		refusedByPolicy(t, "adopting a foreign Secret", c.Patch(ctx, stolen, jsonPatch(adopt)))
		refusedByPolicy(t, "patching a foreign Secret", c.Patch(ctx,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api-key", Namespace: namespace}},
			jsonPatch(`[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]`)))
		// The release of an orphaned machine: the Secret passes to its
		// VirtualMachine alone, and stays writable by the controllers.
		release := `[{"op":"replace","path":"/metadata/ownerReferences","value":[{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","name":"web","uid":"` + string(web.UID) + `"}]}]`
		if err := c.Patch(ctx, got, jsonPatch(release)); err != nil {
			t.Fatalf("passing the Secret to its VirtualMachine: %v", err)
		}
		if err := c.Patch(ctx, got, jsonPatch(`[{"op":"add","path":"/data/userdata","value":"I2Nsb3VkLWNvbmZpZwo="}]`)); err != nil {
			t.Fatalf("patching the released Secret: %v", err)
		}
		refusedByPolicy(t, "dropping every owner", c.Patch(ctx, got, jsonPatch(`[{"op":"remove","path":"/metadata/ownerReferences"}]`)))
	})

	t.Run("delete", func(t *testing.T) {
		refusedByPolicy(t, "deleting a foreign Secret", c.Delete(ctx, secret("api-key")))
		if err := c.Delete(ctx, secret("web-cloudinit")); err != nil {
			t.Fatalf("deleting the instance's own Secret: %v", err)
		}
	})

	t.Run("other users", func(t *testing.T) {
		if err := env.Client.Delete(ctx, secret("api-key")); err != nil {
			t.Errorf("the admin deleting its own Secret: %v", err)
		}
		var left corev1.Secret
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), &left)
		if err != nil || len(left.OwnerReferences) != 0 || len(left.Labels) != 0 {
			t.Errorf("the foreign Secret after the refused writes: %+v, %v", left.ObjectMeta, err)
		}
	})
}
