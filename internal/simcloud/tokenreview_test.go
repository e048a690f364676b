package simcloud

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// TestTokenReviewAdmitsOnlyTheAudienceAndTheList: against a real
// kube-apiserver, the controllers' token for the cloud's audience calls;
// the same service account's kube-apiserver token (another audience) and
// another service account's cloud-audience token are refused.
func TestTokenReviewAdmitsOnlyTheAudienceAndTheList(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("needs KUBEBUILDER_ASSETS (a kube-apiserver)")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	const ns = "instance-operator-system"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string, audiences ...string) string {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !isExists(err) {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	auth, err := NewTokenReviewAuthenticator(env.Config, DefaultAudience, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := simulated.New(simulated.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(cloud, logr.Discard(), 1, Access{Authenticator: auth,
		Callers: []string{serviceaccount.MakeUsername(ns, "controller")}}).Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	observe := func(tok string) error {
		path := filepath.Join(dir, "token")
		if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		opts := DefaultClientOptions()
		opts.TokenFile = path
		c, err := NewClient(srv.URL, opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Observe(ctx, instance("x"))
		return err
	}
	if err := observe(token("controller", DefaultAudience)); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("the controllers' cloud token: %v, want the cloud's NotFound", err)
	}
	for name, tok := range map[string]string{
		"the controllers' kube-apiserver token": token("controller"),
		"a tenant's cloud token":                token("tenant", DefaultAudience),
	} {
		if err := observe(tok); err == nil || errors.Is(err, provider.ErrNotFound) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}

func isExists(err error) bool { return apierrors.IsAlreadyExists(err) }
