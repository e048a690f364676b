package simcloud

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

const typeURI = "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"

func instance(name string) *computev1alpha1.Instance {
	inst := &computev1alpha1.Instance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       computev1alpha1.InstanceSpec{Type: typeURI},
	}
	inst.Status.Machine.CreateToken = provider.CreateToken(inst)
	return inst
}

// service is a simulated cloud served over a real HTTP listener, with the
// requests it received counted by path.
type service struct {
	cloud  *simulated.Cloud
	client *Client // as the controllers
	admin  *Client // as the cloud's operator
	url    string
	dir    string

	mu    sync.Mutex
	calls map[string]int
}

func (s *service) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

func newService(t *testing.T, tune func(*simulated.Config)) *service {
	t.Helper()
	cfg := simulated.DefaultConfig()
	cfg.Latencies, cfg.Seed, cfg.StateDir = simulated.Latencies{}, 1, t.TempDir()
	if tune != nil {
		tune(&cfg)
	}
	cloud, err := simulated.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &service{cloud: cloud, calls: map[string]int{}, dir: t.TempDir()}
	h := NewServer(cloud, logr.Discard(), 1, testAccess()).Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[r.URL.Path]++
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	opts := DefaultClientOptions()
	opts.RetryDelay = time.Millisecond
	opts.TokenFile = s.tokenFile(t, "caller", callerToken)
	if s.client, err = NewClient(srv.URL, opts); err != nil {
		t.Fatal(err)
	}
	opts.TokenFile = s.tokenFile(t, "admin", adminToken)
	if s.admin, err = NewClient(srv.URL, opts); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *service) tokenFile(t *testing.T, name, token string) string {
	t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientDrivesAMachineThroughTheService(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	inst := instance("web")
	inst.Spec.InstanceMetadata = []computev1alpha1.MetadataItem{{Key: "ssh-keys", Value: "admin:ssh-ed25519 AAAA"}}

	m, err := s.client.Create(ctx, inst)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	inst.Status.Machine.ID = m.ID
	if m, err = s.client.Observe(ctx, inst); err != nil || m.Phase != provider.PhaseRunning || len(m.NICs) != 1 || m.Hostname == "" {
		t.Fatalf("Observe after create = %+v, %v; want Running with a NIC and a hostname", m, err)
	}
	inst.Spec.InstanceMetadata[0].Value = "admin:ssh-ed25519 BBBB"
	if err := s.client.Update(ctx, inst); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.client.SetPower(ctx, inst, provider.PowerStop); err != nil {
		t.Fatalf("SetPower(Stop): %v", err)
	}
	if m, err = s.client.Observe(ctx, inst); err != nil || m.Phase != provider.PhaseStopped {
		t.Fatalf("Observe after stop = %+v, %v; want Stopped", m, err)
	}
	if got := s.cloud.Machines(); len(got) != 1 || got[0].Metadata[0].Value != "admin:ssh-ed25519 BBBB" {
		t.Fatalf("the cloud's machines = %+v, want %s with the updated metadata", got, m.ID)
	}
	machines, err := s.admin.Machines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(machines) != 1 || machines[0].ID != m.ID || machines[0].Metadata[0].Key != "ssh-keys" || machines[0].Metadata[0].Value != Redacted {
		t.Fatalf("the service's listing = %+v, want %s with its metadata key and the value redacted", machines, m.ID)
	}
	if err := s.client.Delete(ctx, inst); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.client.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Observe after delete: err = %v, want ErrNotFound", err)
	}
}

func TestRefusalsKeepTheirKindOverTheWire(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	bad := instance("bad")
	bad.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/no-such-type"
	_, err := s.client.Create(ctx, bad)
	if p, ok := provider.AsPermanent(err); !ok || p.Reason != "UnknownInstanceType" {
		t.Errorf("Create of an unknown type: err = %v, want a PermanentError UnknownInstanceType", err)
	}
	if _, err := s.client.Observe(ctx, instance("never-created")); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Observe of no machine: err = %v, want ErrNotFound", err)
	}
	if err := s.admin.SetFaults(ctx, simulated.Faults{TransientErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = s.client.Observe(ctx, instance("never-created"))
	if err == nil || errors.Is(err, provider.ErrNotFound) || errors.Is(err, errNoAnswer) {
		t.Errorf("Observe under injected transient errors: err = %v, want a transient error", err)
	}
	if s.count(pathObserve) != 2 {
		t.Errorf("%d observe calls, want 2: an answered transient error is the reconciler's to retry", s.count(pathObserve))
	}
}

// TestDroppedConnectionsRetryOnlyIdempotentCalls: with every reply dropped
// after the cloud acted, Create is tried Attempts times and still makes one
// machine (its create token), Update is tried once; once replies flow again
// Create answers with that same machine.
func TestDroppedConnectionsRetryOnlyIdempotentCalls(t *testing.T) {
	s := newService(t, nil)
	ctx := context.Background()
	if err := s.admin.SetFaults(ctx, simulated.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	inst := instance("dropped")
	if _, err := s.client.Create(ctx, inst); !errors.Is(err, errNoAnswer) {
		t.Fatalf("Create with every reply dropped: err = %v, want no answer", err)
	}
	if got, want := s.count(pathCreate), DefaultClientOptions().Attempts; got != want {
		t.Errorf("%d create calls, want %d", got, want)
	}
	if err := s.client.Update(ctx, inst); !errors.Is(err, errNoAnswer) {
		t.Fatalf("Update with every reply dropped: err = %v, want no answer", err)
	}
	if got := s.count(pathUpdate); got != 1 {
		t.Errorf("%d update calls, want 1: Update is not retried", got)
	}
	machines := s.cloud.Machines()
	if len(machines) != 1 {
		t.Fatalf("the cloud holds %d machines after dropped creates, want 1: %+v", len(machines), machines)
	}
	if err := s.admin.SetFaults(ctx, simulated.Faults{}); err != nil {
		t.Fatal(err)
	}
	m, err := s.client.Create(ctx, inst)
	if err != nil || m.ID != machines[0].ID {
		t.Fatalf("Create once replies flow = %+v, %v; want machine %s", m, err, machines[0].ID)
	}
}

func TestCallsEndAtTheirDeadline(t *testing.T) {
	s := newService(t, func(cfg *simulated.Config) {
		cfg.Faults = simulated.Faults{SlowCallRate: 1, SlowCallDelay: time.Minute}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := s.client.Observe(ctx, instance("slow"))
	if err == nil || time.Since(began) > 5*time.Second {
		t.Fatalf("Observe of a slow call = %v after %s; want an error at the 300ms deadline", err, time.Since(began))
	}
	if got := s.count(pathObserve); got != 1 {
		t.Errorf("%d observe calls, want 1: a call past its deadline is not retried", got)
	}
}

func TestUnreachableCloudFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	_ = ln.Close()
	c, err := NewClient(url, DefaultClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = c.Observe(context.Background(), instance("x"))
	if !errors.Is(err, errNoAnswer) || time.Since(began) > 5*time.Second {
		t.Fatalf("Observe of an unreachable cloud = %v after %s; want no answer, fast", err, time.Since(began))
	}
}

func TestNewClientRefusesAURLWithoutScheme(t *testing.T) {
	if _, err := NewClient("simcloud:9090", DefaultClientOptions()); err == nil {
		t.Fatal("NewClient(simcloud:9090) succeeded, want an error naming the missing scheme")
	}
}
