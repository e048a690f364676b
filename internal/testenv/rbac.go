package testenv

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// UserBoundTo is a kube-apiserver user, named user, that holds nothing but
// the named ClusterRoles of objs (a rendering of config/), so a test can
// prove those roles are enough for what it then does as that user. The roles
// are copied under names of the test's and removed with the bindings when
// the test ends. kube-apiserver learns of new bindings through an informer:
// wait for the first allowed request before counting a refusal.
func (e *Env) UserBoundTo(t testing.TB, user string, objs []unstructured.Unstructured, roles ...string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	for _, name := range roles {
		role := &rbacv1.ClusterRole{}
		for _, u := range objs {
			if u.GetKind() == "ClusterRole" && u.GetName() == name {
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, role); err != nil {
					t.Fatal(err)
				}
			}
		}
		if len(role.Rules) == 0 {
			t.Fatalf("no ClusterRole %s with rules in the rendering", name)
		}
		role.ObjectMeta = metav1.ObjectMeta{Name: "test:" + user + ":" + name}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}
		for _, obj := range []client.Object{role, binding} {
			if err := e.Client.Create(ctx, obj); err != nil {
				t.Fatalf("failed to create %s: %v", obj.GetName(), err)
			}
			t.Cleanup(func() { _ = e.Client.Delete(context.Background(), obj) })
		}
	}
	authn, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return authn.Config()
}
