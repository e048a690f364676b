package simulated

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
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

func newCloud(t *testing.T, cfg Config) *Cloud {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testConfig(clock *clocktesting.FakeClock, dir string) Config {
	cfg := DefaultConfig()
	cfg.Clock, cfg.StateDir, cfg.Seed = clock, dir, 1
	cfg.Latencies = Latencies{Allocate: time.Minute, Boot: time.Minute, Stop: time.Minute, Suspend: time.Minute,
		Resume: time.Minute, Delete: time.Minute, Repair: time.Minute}
	return cfg
}

func mustPhase(t *testing.T, c *Cloud, inst *computev1alpha1.Instance, want provider.Phase) *provider.Machine {
	t.Helper()
	m, err := c.Observe(context.Background(), inst)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if m.Phase != want {
		t.Fatalf("phase = %s (%s), want %s", m.Phase, m.Message, want)
	}
	return m
}

func TestLifecycleFollowsLatencies(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	c := newCloud(t, testConfig(clock, ""))
	ctx := context.Background()
	inst := instance("a")
	m, err := c.Create(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if m.Phase != provider.PhaseProvisioning || m.NextChangeIn != time.Minute {
		t.Fatalf("after create: %s, next change in %s", m.Phase, m.NextChangeIn)
	}
	inst.Status.Machine.ID = m.ID
	clock.Step(time.Minute)
	mustPhase(t, c, inst, provider.PhaseStaging)
	clock.Step(time.Minute)
	mustPhase(t, c, inst, provider.PhaseRunning)

	steps := []struct {
		action      provider.PowerAction
		via, restAt provider.Phase
	}{
		{provider.PowerSuspend, provider.PhaseSuspending, provider.PhaseSuspended},
		{provider.PowerResume, provider.PhaseStaging, provider.PhaseRunning},
		{provider.PowerStop, provider.PhaseStopping, provider.PhaseStopped},
		{provider.PowerStart, provider.PhaseStaging, provider.PhaseRunning},
	}
	for _, s := range steps {
		if err := c.SetPower(ctx, inst, s.action); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
		if err := c.SetPower(ctx, inst, s.action); err != nil {
			t.Fatalf("%s again is not idempotent: %v", s.action, err)
		}
		mustPhase(t, c, inst, s.via)
		clock.Step(time.Minute)
		mustPhase(t, c, inst, s.restAt)
	}
	if err := c.SetPower(ctx, inst, provider.PowerResume); err != nil {
		t.Fatalf("resume of a running machine is a no-op, got %v", err)
	}
	if err := c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	mustPhase(t, c, inst, provider.PhaseDeleting)
	clock.Step(time.Minute)
	if _, err := c.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, inst); err != nil {
		t.Fatalf("delete of a gone machine: %v", err)
	}
}

func TestCreateIsIdempotentAcrossRestarts(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	dir := t.TempDir()
	ctx := context.Background()
	c := newCloud(t, testConfig(clock, dir))
	inst := instance("a")
	first, err := c.Create(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Create(ctx, inst)
	if err != nil || again.ID != first.ID {
		t.Fatalf("second create: %v, id %s, want %s", err, again.ID, first.ID)
	}

	restarted := newCloud(t, testConfig(clock, dir))
	after, err := restarted.Create(ctx, inst)
	if err != nil || after.ID != first.ID {
		t.Fatalf("create after restart: %v, id %s, want %s", err, after.ID, first.ID)
	}
	if n := len(restarted.Machines()); n != 1 {
		t.Fatalf("%d machines after restart, want 1", n)
	}
	if after.NICs[0].IPv4Address != first.NICs[0].IPv4Address {
		t.Fatalf("address changed across restart: %s, then %s", first.NICs[0].IPv4Address, after.NICs[0].IPv4Address)
	}
	// The restarted cloud knows the address is taken.
	other := instance("b")
	other.Spec.NICs = []computev1alpha1.NIC{{IPv4Address: first.NICs[0].IPv4Address}}
	if _, err := restarted.Create(ctx, other); !isPermanent(err, "AddressInUse") {
		t.Fatalf("taking a held address after restart: %v, want AddressInUse", err)
	}
	clock.Step(2 * time.Minute)
	inst.Status.Machine.ID = first.ID
	mustPhase(t, restarted, inst, provider.PhaseRunning)
}

func isPermanent(err error, reason string) bool {
	p, ok := provider.AsPermanent(err)
	return ok && (reason == "" || p.Reason == reason)
}

func TestRefusals(t *testing.T) {
	cfg := testConfig(clocktesting.NewFakeClock(time.Now()), "")
	cfg.Images = []string{"ubuntu-24.04-20260202-3"}
	c := newCloud(t, cfg)
	cases := map[string]func(*computev1alpha1.Instance){
		"UnknownInstanceType": func(i *computev1alpha1.Instance) {
			i.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/no-such-type"
		},
		"UnknownImage": func(i *computev1alpha1.Instance) {
			i.Spec.Disks = []computev1alpha1.Disk{{Source: "/v1/regions/us-texas-1/compute/images/no-such-image", Boot: true}}
		},
		"UnknownGPUType": func(i *computev1alpha1.Instance) {
			i.Spec.GPUs = []computev1alpha1.GPU{{Type: "/v1/regions/us-texas-1/gpu-types/no-such-gpu", Count: 1}}
		},
		"ExceedsCapacity": func(i *computev1alpha1.Instance) {
			i.Spec.GPUs = []computev1alpha1.GPU{{Type: "/v1/regions/us-texas-1/gpu-types/h100-80gb", Count: 64}, {Type: "/v1/regions/us-texas-1/zones/us1-a/gpu-types/h100-80gb", Count: 64}}
			c.cfg.GPUs = map[string]int{"h100-80gb": 100}
		},
	}
	for reason, mutate := range cases {
		t.Run(reason, func(t *testing.T) {
			inst := instance(reason)
			mutate(inst)
			if _, err := c.Create(context.Background(), inst); !isPermanent(err, reason) {
				t.Fatalf("create: %v, want a permanent %s", err, reason)
			}
		})
	}
	if n := len(c.Machines()); n != 0 {
		t.Fatalf("refused creates left %d machines", n)
	}
}

func TestCapacityWaitsAndFrees(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	cfg := testConfig(clock, "")
	cfg.Latencies = Latencies{}
	cfg.InstanceTypes = map[string]int{"g1-xlarge": 1}
	c := newCloud(t, cfg)
	ctx := context.Background()
	a, b := instance("a"), instance("b")
	ma, err := c.Create(ctx, a)
	if err != nil || ma.Phase != provider.PhaseRunning {
		t.Fatalf("first machine: %v %v", err, ma)
	}
	a.Status.Machine.ID = ma.ID
	mb, err := c.Create(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if mb.Phase != provider.PhaseProvisioning || !mb.WaitingForCapacity || mb.Message != "waiting for capacity: all 1 g1-xlarge machines of the cloud are in use" {
		t.Fatalf("second machine: %+v", mb)
	}
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	mustPhase(t, c, b, provider.PhaseRunning)
}

func TestAddressesAreUniquePerNetwork(t *testing.T) {
	c := newCloud(t, testConfig(clocktesting.NewFakeClock(time.Now()), ""))
	net := "/v1/regions/us-texas-1/projects/p/compute/networks/n1"
	seen := map[string]bool{}
	for i := range 300 {
		inst := instance("i" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		inst.Spec.NICs = []computev1alpha1.NIC{{Network: net}, {}}
		m, err := c.Create(context.Background(), inst)
		if err != nil {
			t.Fatal(err)
		}
		for _, nic := range m.NICs {
			for _, a := range []string{nic.IPv4Address, nic.IPv6Address} {
				if a == "" || seen[nic.Network+a] {
					t.Fatalf("address %q on network %q given twice or empty", a, nic.Network)
				}
				seen[nic.Network+a] = true
			}
		}
		if m.Hostname != inst.Name {
			t.Fatalf("generated hostname %q, want %q", m.Hostname, inst.Name)
		}
	}
	asked := instance("asked")
	asked.Spec.Hostname = "db.example"
	asked.Spec.NICs = []computev1alpha1.NIC{{Network: net, IPv4Address: "10.99.1.2", IPv6Address: "fd00::1:2"}}
	m, err := c.Create(context.Background(), asked)
	if err != nil || m.NICs[0].IPv4Address != "10.99.1.2" || m.NICs[0].IPv6Address != "fd00::1:2" || m.Hostname != "db.example" {
		t.Fatalf("requested addresses and hostname: %v %+v", err, m)
	}
}

func TestInjectedFaults(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	cfg := testConfig(clock, "")
	cfg.Latencies = Latencies{Repair: time.Minute}
	c := newCloud(t, cfg)
	ctx := context.Background()
	inst := instance("a")

	_ = c.SetFaults(Faults{TransientErrorRate: 1})
	if _, err := c.Create(ctx, inst); err == nil || isPermanent(err, "") || errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("create with transient error rate 1: %v", err)
	}
	if len(c.Machines()) != 0 {
		t.Fatal("a transient error created a machine")
	}

	// A slow call acts, then outlives its caller's timeout.
	_ = c.SetFaults(Faults{SlowCallRate: 1, SlowCallDelay: time.Hour})
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.Create(short, inst); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow create: %v, want a deadline error", err)
	}
	_ = c.SetFaults(Faults{})
	m, err := c.Create(ctx, inst)
	if err != nil || len(c.Machines()) != 1 {
		t.Fatalf("retried create: %v, %d machines, want 1", err, len(c.Machines()))
	}
	inst.Status.Machine.ID = m.ID

	_ = c.SetFaults(Faults{HostFailureRate: 1})
	mustPhase(t, c, inst, provider.PhaseRepairing)
	_ = c.SetFaults(Faults{})
	clock.Step(time.Minute)
	mustPhase(t, c, inst, provider.PhaseRunning)

	_ = c.SetFaults(Faults{LossRate: 1})
	if _, err := c.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("observe with loss rate 1: %v, want ErrNotFound", err)
	}
	if len(c.Machines()) != 0 {
		t.Fatal("the lost machine is still there")
	}
	if err := c.SetFaults(Faults{LossRate: 2}); err == nil {
		t.Fatal("a rate of 2 was accepted")
	}
}
