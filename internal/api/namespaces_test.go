package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// TestProjectMovesToAnotherNamespace: the namespace remembered for a
// project is forgotten when the labels move the project elsewhere.
func TestProjectMovesToAnotherNamespace(t *testing.T) {
	ctx := context.Background()
	const movingProject = "project-moving"
	if err := createProjectNamespace("moving-a", region, movingProject); err != nil {
		t.Fatal(err)
	}
	in := seedInstance("instance-moving")
	in.Namespace = "moving-a"
	createWithStatus(t, in, runningStatus())
	path := "/v1/regions/" + region + "/projects/" + movingProject + "/compute/instances/instance-moving"
	waitFor(t, "the instance is served in its project", func() bool {
		return call(t, http.MethodGet, path, tokens["admin"], nil).StatusCode == http.StatusOK
	})

	var a corev1.Namespace
	if err := env.Client.Get(ctx, clientKey("moving-a"), &a); err != nil {
		t.Fatal(err)
	}
	a.Labels[computev1alpha1.ProjectLabel] = "project-moved-away"
	if err := env.Client.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := createProjectNamespace("moving-b", region, movingProject); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, name := range []string{"moving-a", "moving-b"} {
			_ = env.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
	})
	waitFor(t, "the project is served from its new namespace, which has no such instance", func() bool {
		return call(t, http.MethodGet, path, tokens["admin"], nil).StatusCode == http.StatusNotFound
	})
	moved := "/v1/regions/" + region + "/projects/project-moved-away/compute/instances/instance-moving"
	waitFor(t, "the instance is served in the project its namespace now names", func() bool {
		return call(t, http.MethodGet, moved, tokens["admin"], nil).StatusCode == http.StatusOK
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDecisionKeyTellsQuestionsApart: every field of the question is in the
// key, and no two different questions share one.
func TestDecisionKeyTellsQuestionsApart(t *testing.T) {
	base := func() authorizer.AttributesRecord {
		return authorizer.AttributesRecord{
			User: &user.DefaultInfo{Name: "alice", UID: "u1", Groups: []string{"g1", "system:authenticated"},
				Extra: map[string][]string{"b": {"1"}, "a": {"2", "3"}}},
			Verb: "get", Namespace: "ns", APIGroup: "compute.k0rdent.ai", APIVersion: "v1alpha1", Resource: "instances",
			Name: "x", ResourceRequest: true,
		}
	}
	withUser := func(f func(u *user.DefaultInfo)) authorizer.AttributesRecord {
		a := base()
		u := *a.User.(*user.DefaultInfo)
		f(&u)
		a.User = &u
		return a
	}
	same := base()
	same.User = &user.DefaultInfo{Name: "alice", UID: "u1", Groups: []string{"g1", "system:authenticated"},
		Extra: map[string][]string{"a": {"2", "3"}, "b": {"1"}}}
	if decisionKey(base()) != decisionKey(same) {
		t.Error("the same question has two keys")
	}
	variants := map[string]authorizer.AttributesRecord{
		"name":              withUser(func(u *user.DefaultInfo) { u.Name = "alicE" }),
		"name into a group": withUser(func(u *user.DefaultInfo) { u.Name = "aliceg1"; u.Groups = []string{"system:authenticated"} }),
		"uid":               withUser(func(u *user.DefaultInfo) { u.UID = "u2" }),
		"a group fewer":     withUser(func(u *user.DefaultInfo) { u.Groups = []string{"system:authenticated"} }),
		"extra value":       withUser(func(u *user.DefaultInfo) { u.Extra = map[string][]string{"b": {"1"}, "a": {"2"}} }),
		"extra moved":       withUser(func(u *user.DefaultInfo) { u.Extra = map[string][]string{"b": {"1", "2"}, "a": {"3"}} }),
	}
	for name, f := range map[string]func(*authorizer.AttributesRecord){
		"verb":      func(a *authorizer.AttributesRecord) { a.Verb = "delete" },
		"namespace": func(a *authorizer.AttributesRecord) { a.Namespace = "" },
		"object":    func(a *authorizer.AttributesRecord) { a.Name = "" },
		"resource":  func(a *authorizer.AttributesRecord) { a.Resource = "instancesx" },
		"kind":      func(a *authorizer.AttributesRecord) { a.ResourceRequest = false },
	} {
		a := base()
		f(&a)
		variants[name] = a
	}
	seen := map[string]string{decisionKey(base()): "base"}
	for name, a := range variants {
		k := decisionKey(a)
		if other, dup := seen[k]; dup {
			t.Errorf("%s has the key of %s", name, other)
		}
		seen[k] = name
	}
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
