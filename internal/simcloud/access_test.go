package simcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/apiserver/pkg/authentication/user"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// Tokens of the unit tests, known to a static token authenticator (the
// envtest suite and test/reliability use kube-apiserver's TokenReview).
const (
	callerToken = "caller-token"
	adminToken  = "admin-token"
	tenantToken = "tenant-token"
)

var (
	callerUser = serviceaccount.MakeUsername("instance-operator-system", "instance-operator-controller-manager")
	adminUser  = serviceaccount.MakeUsername("instance-operator-system", "instance-operator-simcloud-admin")
)

func testAccess() Access {
	return Access{
		Authenticator: bearertoken.New(tokenfile.New(map[string]*user.DefaultInfo{
			callerToken: {Name: callerUser},
			adminToken:  {Name: adminUser},
			tenantToken: {Name: serviceaccount.MakeUsername("project-x", "deployer")},
		})),
		Callers: []string{callerUser},
		Admins:  []string{adminUser},
	}
}

// TestEachRouteAdmitsOnlyItsUsers: a stranger (no token, a wrong one) gets
// 401 everywhere; a tenant's valid token gets 403 everywhere; the
// controllers make calls and list but turn no knob; the admin turns knobs
// and lists but makes no call.
func TestEachRouteAdmitsOnlyItsUsers(t *testing.T) {
	s := newService(t, nil)
	inst := instance("victim")
	if _, err := s.client.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	call, _ := json.Marshal(callRequest{Instance: inst, Action: provider.PowerStop})
	faults, _ := json.Marshal(simulated.Faults{})
	capacity, _ := json.Marshal(CapacityRequest{InstanceType: "g1-xlarge", Machines: 3})
	routes := []struct {
		method, path string
		body         []byte
		caller       bool // the controllers may
		admin        bool // the admin may
	}{
		{http.MethodGet, PathMachines, nil, true, true},
		{http.MethodPost, pathObserve, call, true, false},
		{http.MethodPost, pathCreate, call, true, false},
		{http.MethodPost, pathUpdate, call, true, false},
		{http.MethodPost, pathSetPower, call, true, false},
		{http.MethodPost, pathDelete, call, true, false},
		{http.MethodGet, PathFaults, nil, false, true},
		{http.MethodPut, PathFaults, faults, false, true},
		{http.MethodPut, PathCapacity, capacity, false, true},
		{http.MethodPost, "/v1/machines/no-such-id/fail-host", nil, false, true},
		{http.MethodPost, "/v1/machines/no-such-id/lose", nil, false, true},
	}
	for _, r := range routes {
		for _, who := range []struct {
			name, token string
			allowed     bool
		}{
			{"nobody", "", false},
			{"a forged token", "not-a-token", false},
			{"a tenant", tenantToken, false},
			{"the controllers", callerToken, r.caller},
			{"the admin", adminToken, r.admin},
		} {
			code := send(t, s.url, r.method, r.path, who.token, r.body)
			refused := code == http.StatusUnauthorized || code == http.StatusForbidden
			if refused == who.allowed {
				t.Errorf("%s %s as %s: %d, want allowed=%v", r.method, r.path, who.name, code, who.allowed)
			}
			stranger := who.token == "" || who.token == "not-a-token"
			if stranger && code != http.StatusUnauthorized {
				t.Errorf("%s %s as %s: %d, want 401", r.method, r.path, who.name, code)
			}
		}
	}
	if got := send(t, s.url, http.MethodGet, PathHealth, "", nil); got != http.StatusOK {
		t.Errorf("GET /healthz without a token: %d, want 200 for the kubelet's probes", got)
	}
}

// TestListingNeverServesMetadataValues: whoever lists, the values of
// instanceMetadata and the create tokens stay in the cloud.
func TestListingNeverServesMetadataValues(t *testing.T) {
	s := newService(t, nil)
	inst := instance("secretive")
	const secret = "admin:ssh-ed25519 AAAA-very-secret"
	inst.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: secret}}
	if _, err := s.client.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{callerToken, adminToken} {
		body := get(t, s.url+PathMachines, token)
		if strings.Contains(body, "AAAA-very-secret") || strings.Contains(body, inst.Status.Machine.CreateToken) {
			t.Errorf("the listing holds a metadata value or a create token: %s", body)
		}
		if !strings.Contains(body, "ssh-keys") {
			t.Errorf("the listing lost the metadata's key: %s", body)
		}
	}
	// The controllers still read the machine back through Observe.
	m, err := s.client.Observe(context.Background(), inst)
	if err != nil || m == nil {
		t.Fatalf("Observe as the controllers = %+v, %v", m, err)
	}
}

// TestClientPicksUpARotatedToken: the kubelet rewrites a projected token
// before it expires; the client re-reads the file every minute and, after
// a 401 to a token it held before the call, at once (client-go's cached
// file token source: a token read during the refused call is kept, so the
// refresh comes at the next 401).
func TestClientPicksUpARotatedToken(t *testing.T) {
	s := newService(t, nil)
	path := s.tokenFile(t, "rotating", "expired-token")
	opts := DefaultClientOptions()
	opts.TokenFile = path
	c, err := NewClient(s.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Observe(context.Background(), instance("x")); err == nil || errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("Observe with an expired token: err = %v, want a refusal", err)
		}
	}
	if err := os.WriteFile(path, []byte(callerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Observe(context.Background(), instance("x")); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Observe after the token rotated: err = %v, want the cloud's NotFound", err)
	}
}

func TestServerWithoutAuthenticatorRefusesEveryone(t *testing.T) {
	cloud, err := simulated.New(simulated.Config{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := NewServer(cloud, logr.Discard(), 1, Access{Callers: []string{callerUser}}).Handler()
	req := httptest.NewRequest(http.MethodGet, PathMachines, nil)
	req.Header.Set("Authorization", "Bearer "+callerToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /v1/machines with no authenticator: %d, want 401", rec.Code)
	}
}

func send(t *testing.T, base, method, path, token string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, buf.String())
	}
	return buf.String()
}
