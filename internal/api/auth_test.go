package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/k0rdent-ai/instance-operator/internal/oidcissuer"
)

// TestServiceAccountRBAC: real service-account tokens (TokenRequest, checked
// by TokenReview) and real RoleBindings to the shipped ClusterRoles.
func TestServiceAccountRBAC(t *testing.T) {
	createWithStatus(t, seedInstance("instance-rbac"), runningStatus())

	t.Run("viewer reads", func(t *testing.T) {
		r := call(t, http.MethodGet, instancePath("instance-rbac"), tokens["viewer"], nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		r = call(t, http.MethodGet, collectionPath, tokens["viewer"], nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("list status = %d: %s", r.StatusCode, r.body)
		}
	})
	t.Run("viewer cannot create, patch, delete or stop", func(t *testing.T) {
		r := call(t, http.MethodPost, collectionPath, tokens["viewer"], map[string]any{"type": seedInstance("x").Spec.Type})
		e := r.envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		if md := e.Error.Details[0]["metadata"].(map[string]any); md["permission"] != "compute.instances.create" {
			t.Errorf("metadata = %v", md)
		}
		call(t, http.MethodPatch, instancePath("instance-rbac"), tokens["viewer"], map[string]any{"displayName": "x"}).
			envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		call(t, http.MethodDelete, instancePath("instance-rbac"), tokens["viewer"], nil).
			envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		call(t, http.MethodPost, instancePath("instance-rbac")+":stop", tokens["viewer"], nil).
			envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	})
	t.Run("deployer may patch", func(t *testing.T) {
		r := call(t, http.MethodPatch, instancePath("instance-rbac"), tokens["deployer"], map[string]any{"displayName": "by deployer"})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
	})
	t.Run("stranger gets 403 for existing and missing alike", func(t *testing.T) {
		for _, path := range []string{
			instancePath("instance-rbac"),
			instancePath("no-such-instance"),
			instancePath("Bad_ID"),
			"/v1/regions/" + region + "/projects/no-such-project/compute/instances/instance-rbac",
			"/v1/regions/no-such-region/projects/" + project + "/compute/instances",
			"/v1/regions/%2e%2e/projects/%2e%2e/compute/instances/x",
		} {
			e := call(t, http.MethodGet, path, tokens["stranger"], nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
			if strings.Contains(e.Error.Message, "not found") {
				t.Errorf("%s: 403 message tells of existence: %s", path, e.Error.Message)
			}
		}
		call(t, http.MethodDelete, instancePath("no-such-instance"), tokens["stranger"], nil).
			envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	})
	t.Run("viewer gets 404 for a missing instance", func(t *testing.T) {
		e := call(t, http.MethodGet, instancePath("no-such-instance"), tokens["viewer"], nil).
			envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
		want := `instance "no-such-instance" not found in project "project-x9y8z7" of region "us-texas-1"`
		if e.Error.Message != want {
			t.Errorf("message = %q, want %q", e.Error.Message, want)
		}
		call(t, http.MethodGet, instancePath("Bad_ID"), tokens["viewer"], nil).
			envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
	})
	t.Run("a missing project is 403 to a project viewer and 404 to a cluster-wide admin", func(t *testing.T) {
		path := "/v1/regions/" + region + "/projects/no-such-project/compute/instances/instance-rbac"
		call(t, http.MethodGet, path, tokens["viewer"], nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
		call(t, http.MethodGet, path, tokens["admin"], nil).envelope(t, http.StatusNotFound, ReasonProjectNotFound)
	})
}

// TestUnauthenticated: a missing or invalid token is 401 with WWW-Authenticate and the envelope.
func TestUnauthenticated(t *testing.T) {
	for name, header := range map[string]string{
		"none":    "",
		"empty":   "Bearer ",
		"garbage": "Bearer not-a-token",
		"basic":   "Basic YWRtaW46YWRtaW4=",
		"huge":    "Bearer " + strings.Repeat("x", 64<<10),
		"bad jwt": "Bearer eyJ!!.eyJ??.sig",
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, http.MethodGet, instancePath("instance-x"), "", nil, "Authorization", header)
			r.envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)
			if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
}

// TestOIDC: JWTs from a real in-test issuer (discovery + JWKS over HTTPS).
func TestOIDC(t *testing.T) {
	createWithStatus(t, seedInstance("instance-oidc"), runningStatus())
	if err := bindRole(context.Background(), projectNS, "Group", "oidc:compute-team", "compute.viewer"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mut func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": issuer.URL(), "aud": oidcClientID, "sub": "alice",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
			"groups": []string{"compute-team"},
		}
		if mut != nil {
			mut(c)
		}
		return c
	}
	key1 := issuer.Key("key-1")
	path := instancePath("instance-oidc")

	// The authenticator fetches discovery and JWKS in the background; the
	// first valid token may be refused until it has them.
	valid := oidcissuer.SignRS256(claims(nil), "key-1", key1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := call(t, http.MethodGet, path, valid, nil)
		if r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a valid OIDC token is still refused: %d %s", r.StatusCode, r.body)
		}
		time.Sleep(100 * time.Millisecond)
		// A refused token is cached as refused: mint a fresh one.
		valid = oidcissuer.SignRS256(claims(func(c map[string]any) { c["jti"] = time.Now().String() }), "key-1", key1)
	}

	t.Run("a deployer group creates; the creator is the prefixed user", func(t *testing.T) {
		if err := bindRole(context.Background(), projectNS, "Group", "oidc:compute-deployers", "compute.deployer"); err != nil {
			t.Fatal(err)
		}
		tok := oidcissuer.SignRS256(claims(func(c map[string]any) { c["sub"] = "carol"; c["groups"] = []string{"compute-deployers"} }), "key-1", key1)
		cleanupInstance(t, "made-by-oidc")
		// kube-apiserver's RBAC learns of the new binding by its informer.
		r := call(t, http.MethodPost, collectionPath, tok, map[string]any{"id": "made-by-oidc", "type": typeURI})
		for deadline := time.Now().Add(10 * time.Second); r.StatusCode == http.StatusForbidden && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			r = call(t, http.MethodPost, collectionPath, tok, map[string]any{"id": "made-by-oidc", "type": typeURI})
		}
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		res, err := getResource(t, "made-by-oidc")
		if err != nil {
			t.Fatal(err)
		}
		if by := res.Annotations["compute.k0rdent.ai/created-by"]; by != "oidc:carol" {
			t.Errorf("created-by = %q", by)
		}
	})
	t.Run("an issuer cannot assert the cluster's own groups", func(t *testing.T) {
		tok := oidcissuer.SignRS256(claims(func(c map[string]any) { c["sub"] = "mallory"; c["groups"] = []string{"system:masters"} }), "key-1", key1)
		call(t, http.MethodGet, path, tok, nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	})
	t.Run("group without a binding is denied", func(t *testing.T) {
		tok := oidcissuer.SignRS256(claims(func(c map[string]any) { c["sub"] = "bob"; c["groups"] = []string{"other-team"} }), "key-1", key1)
		call(t, http.MethodGet, path, tok, nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	})

	other, err := oidcissuer.New()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rogue, err := issuer.AddKey("rogue-unpublished")
	if err != nil {
		t.Fatal(err)
	}
	issuer.RemoveKey("rogue-unpublished")

	for name, tok := range map[string]string{
		"expired":         oidcissuer.SignRS256(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "key-1", key1),
		"not yet valid":   oidcissuer.SignRS256(claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), "key-1", key1),
		"wrong audience":  oidcissuer.SignRS256(claims(func(c map[string]any) { c["aud"] = "someone-else" }), "key-1", key1),
		"wrong issuer":    oidcissuer.SignRS256(claims(func(c map[string]any) { c["iss"] = other.URL() }), "key-1", other.Key("key-1")),
		"bad signature":   tamper(oidcissuer.SignRS256(claims(nil), "key-1", key1)),
		"unknown key":     oidcissuer.SignRS256(claims(nil), "rogue-unpublished", rogue),
		"alg none":        oidcissuer.SignNone(claims(nil)),
		"signed by other": oidcissuer.SignRS256(claims(nil), "key-1", other.Key("key-1")),
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, http.MethodGet, path, tok, nil)
			r.envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)
		})
	}

	t.Run("key rotated out", func(t *testing.T) {
		key2, err := issuer.AddKey("key-2")
		if err != nil {
			t.Fatal(err)
		}
		// key-2 is new to the verifier: it refetches the JWKS and accepts it.
		tok2 := oidcissuer.SignRS256(claims(func(c map[string]any) { c["jti"] = "rotated-in" }), "key-2", key2)
		if r := call(t, http.MethodGet, path, tok2, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("a token of the new key is refused: %d %s", r.StatusCode, r.body)
		}
		issuer.RemoveKey("key-1")
		t.Cleanup(func() { issuer.PublishKey("key-1", key1) })
		// A token signed by the retired key, never seen before: the verifier's
		// key set no longer holds key-1 once it refetched, so it is refused.
		old := oidcissuer.SignRS256(claims(func(c map[string]any) { c["jti"] = "after-rotation" }), "key-1", key1)
		// Force a refetch: a token with a kid the cached set lacks.
		key3, err := issuer.AddKey("key-3")
		if err != nil {
			t.Fatal(err)
		}
		tok3 := oidcissuer.SignRS256(claims(func(c map[string]any) { c["jti"] = "key-3" }), "key-3", key3)
		if r := call(t, http.MethodGet, path, tok3, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("a token of key-3 is refused: %d %s", r.StatusCode, r.body)
		}
		call(t, http.MethodGet, path, old, nil).envelope(t, http.StatusUnauthorized, ReasonUnauthenticated)
	})
}

// tamper flips a character of the signature.
func tamper(jwt string) string {
	i := strings.LastIndexByte(jwt, '.') + 5
	c := byte('A')
	if jwt[i] == 'A' {
		c = 'B'
	}
	return jwt[:i] + string(c) + jwt[i+1:]
}

// TestResourceNameGrant: a role limited to one instance by resourceNames
// reads that instance and no other.
func TestResourceNameGrant(t *testing.T) {
	ctx := context.Background()
	createWithStatus(t, seedInstance("instance-named-a"), runningStatus())
	createWithStatus(t, seedInstance("instance-named-b"), runningStatus())
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "one-instance", Namespace: saNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "one-instance", Namespace: projectNS},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"compute.k0rdent.ai"}, Resources: []string{"instances"},
			Verbs: []string{"get"}, ResourceNames: []string{"instance-named-a"}}},
	}
	if err := env.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "one-instance", Namespace: projectNS},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "one-instance"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "one-instance", Namespace: saNS}},
	}
	if err := env.Client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(saNS).CreateToken(ctx, "one-instance", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	if r := call(t, http.MethodGet, instancePath("instance-named-a"), token, nil); r.StatusCode != http.StatusOK {
		t.Fatalf("the granted instance = %d: %s", r.StatusCode, r.body)
	}
	call(t, http.MethodGet, instancePath("instance-named-b"), token, nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
	call(t, http.MethodGet, collectionPath, token, nil).envelope(t, http.StatusForbidden, ReasonPermissionDenied)
}
