package simulated

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// Name is the provider's name, recorded in status.machine.provider.
const Name = "simulated"

// phaseGone is the pseudo phase a deleted machine reaches when it disappears.
const phaseGone provider.Phase = "Gone"

// step is a phase a machine enters next, and how long it stays there; the
// last step of a plan is where the machine rests.
type step struct {
	Phase provider.Phase `json:"phase"`
	For   time.Duration  `json:"for,omitempty"`
}

// machine is a machine of the simulated cloud, as stored in its state file.
type machine struct {
	ID        string `json:"id"`
	Token     string `json:"token"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	// Type is the instance type's name, GPUs the GPU counts by type name.
	Type     string                         `json:"type"`
	Zone     string                         `json:"zone,omitempty"`
	GPUs     map[string]int                 `json:"gpus,omitempty"`
	Hostname string                         `json:"hostname"`
	NICs     []computev1alpha1.NICStatus    `json:"nics"`
	Metadata []computev1alpha1.MetadataItem `json:"metadata,omitempty"`

	Phase provider.Phase `json:"phase"`
	// Allocated is true once the machine holds its capacity; it holds it until deleted.
	Allocated bool `json:"allocated"`
	// Until is when the current phase ends; zero for a resting phase, and for
	// PROVISIONING until capacity is found.
	Until time.Time `json:"until,omitzero"`
	// Then are the phases that follow, in order.
	Then []step `json:"then,omitempty"`
	// Waiting says what an unallocated machine waits for.
	Waiting   string    `json:"waiting,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Cloud is the simulated cloud. It is safe for concurrent use.
type Cloud struct {
	clock clock.Clock
	store *store

	mu        sync.Mutex
	cfg       Config
	dice      *mrand.Rand
	byID      map[string]*machine
	byToken   map[string]*machine
	typesUsed map[string]int
	gpusUsed  map[string]int
	networks  map[string]*network
}

var _ provider.Provider = (*Cloud)(nil)

// New opens a simulated cloud, loading the machines of cfg.StateDir.
func New(cfg Config) (*Cloud, error) {
	if err := cfg.Faults.validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	st, err := openStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	c := &Cloud{
		clock: cfg.Clock, store: st, cfg: cfg,
		dice:      mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byID:      map[string]*machine{},
		byToken:   map[string]*machine{},
		typesUsed: map[string]int{},
		gpusUsed:  map[string]int{},
		networks:  map[string]*network{},
	}
	machines, err := st.load()
	if err != nil {
		return nil, err
	}
	for _, m := range machines {
		c.index(m)
	}
	return c, nil
}

func (c *Cloud) index(m *machine) {
	c.byID[m.ID] = m
	c.byToken[m.Token] = m
	if m.Allocated {
		c.typesUsed[m.Type]++
		for g, n := range m.GPUs {
			c.gpusUsed[g] += n
		}
	}
	for _, nic := range m.NICs {
		net := c.network(nic.Network, nic.Subnet)
		net.take(nic.IPv4Address, m.ID)
		net.take(nic.IPv6Address, m.ID)
	}
}

// Name implements provider.Provider.
func (c *Cloud) Name() string { return Name }

// Observe implements provider.Provider.
func (c *Cloud) Observe(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	return c.call(ctx, func() (*provider.Machine, error) {
		m := c.lookup(inst)
		if m == nil {
			return nil, notFound(inst)
		}
		now := c.clock.Now()
		if c.roll(c.cfg.Faults.LossRate) {
			if err := c.remove(m); err != nil {
				return nil, err
			}
			return nil, notFound(inst)
		}
		if m.Phase == provider.PhaseRunning && c.roll(c.cfg.Faults.HostFailureRate) {
			c.failHost(m, now)
		}
		if gone, err := c.advance(m, now); err != nil || gone {
			if err != nil {
				return nil, err
			}
			return nil, notFound(inst)
		}
		return c.view(m, now), nil
	})
}

// Create implements provider.Provider.
func (c *Cloud) Create(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	return c.call(ctx, func() (*provider.Machine, error) {
		token := inst.Status.Machine.CreateToken
		if token == "" {
			return nil, fmt.Errorf("simulated: create of %s/%s has no create token", inst.Namespace, inst.Name)
		}
		now := c.clock.Now()
		if m := c.byToken[token]; m != nil {
			if _, err := c.advance(m, now); err != nil {
				return nil, err
			}
			return c.view(m, now), nil
		}
		m, err := c.newMachine(inst, token, now)
		if err != nil {
			return nil, err
		}
		if _, err := c.advance(m, now); err != nil {
			_ = c.remove(m)
			return nil, err
		}
		return c.view(m, now), nil
	})
}

// Update implements provider.Provider.
func (c *Cloud) Update(ctx context.Context, inst *computev1alpha1.Instance) error {
	_, err := c.call(ctx, func() (*provider.Machine, error) {
		m := c.lookup(inst)
		if m == nil || m.Phase == provider.PhaseDeleting {
			return nil, notFound(inst)
		}
		m.Metadata = append([]computev1alpha1.MetadataItem(nil), inst.Spec.InstanceMetadata...)
		return nil, c.store.save(m)
	})
	return err
}

// SetPower implements provider.Provider.
func (c *Cloud) SetPower(ctx context.Context, inst *computev1alpha1.Instance, action provider.PowerAction) error {
	_, err := c.call(ctx, func() (*provider.Machine, error) {
		m := c.lookup(inst)
		if m == nil {
			return nil, notFound(inst)
		}
		now := c.clock.Now()
		if gone, err := c.advance(m, now); err != nil || gone {
			if err != nil {
				return nil, err
			}
			return nil, notFound(inst)
		}
		l := c.cfg.Latencies
		var (
			done    []provider.Phase // phases where the action is already done or under way
			from    []provider.Phase // phases the action starts from
			through step
			to      provider.Phase
		)
		switch action {
		case provider.PowerStart:
			done = []provider.Phase{provider.PhaseProvisioning, provider.PhaseStaging, provider.PhaseRunning}
			from, through, to = []provider.Phase{provider.PhaseStopped}, step{provider.PhaseStaging, l.Boot}, provider.PhaseRunning
		case provider.PowerStop:
			done = []provider.Phase{provider.PhaseStopping, provider.PhaseStopped}
			from = []provider.Phase{provider.PhaseRunning, provider.PhaseStaging, provider.PhaseSuspended, provider.PhaseRepairing}
			through, to = step{provider.PhaseStopping, l.Stop}, provider.PhaseStopped
		case provider.PowerSuspend:
			done = []provider.Phase{provider.PhaseSuspending, provider.PhaseSuspended}
			from, through, to = []provider.Phase{provider.PhaseRunning}, step{provider.PhaseSuspending, l.Suspend}, provider.PhaseSuspended
		case provider.PowerResume:
			done = []provider.Phase{provider.PhaseStaging, provider.PhaseRunning}
			from, through, to = []provider.Phase{provider.PhaseSuspended}, step{provider.PhaseStaging, l.Resume}, provider.PhaseRunning
		default:
			return nil, provider.Permanent("UnknownPowerAction", "the simulated cloud has no power action %q", action)
		}
		switch {
		case slices.Contains(done, m.Phase):
			return nil, nil
		case !slices.Contains(from, m.Phase):
			return nil, fmt.Errorf("simulated: cannot %s machine %s while it is %s", strings.ToLower(string(action)), m.ID, m.Phase)
		}
		c.plan(m, now, through, step{Phase: to})
		_, err := c.advance(m, now)
		return nil, err
	})
	return err
}

// Delete implements provider.Provider.
func (c *Cloud) Delete(ctx context.Context, inst *computev1alpha1.Instance) error {
	_, err := c.call(ctx, func() (*provider.Machine, error) {
		m := c.lookup(inst)
		if m == nil || m.Phase == provider.PhaseDeleting {
			return nil, nil
		}
		now := c.clock.Now()
		c.plan(m, now, step{provider.PhaseDeleting, c.cfg.Latencies.Delete}, step{Phase: phaseGone})
		_, err := c.advance(m, now)
		return nil, err
	})
	return err
}

// call runs op under the cloud's lock with the configured faults around it.
func (c *Cloud) call(ctx context.Context, op func() (*provider.Machine, error)) (*provider.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if err := ctx.Err(); err != nil {
		// The caller gave up while the call waited for the cloud: acting now
		// would make a machine (or delete one) that nobody hears of.
		c.mu.Unlock()
		return nil, err
	}
	if c.roll(c.cfg.Faults.TransientErrorRate) {
		c.mu.Unlock()
		return nil, fmt.Errorf("simulated: injected transient error: the service is unavailable, try again")
	}
	slow, delay := c.roll(c.cfg.Faults.SlowCallRate), c.cfg.Faults.SlowCallDelay
	m, err := op()
	if c.store.needsCompaction(len(c.byID)) {
		if cerr := c.store.compact(c.all()); cerr != nil && err == nil {
			m, err = nil, cerr
		}
	}
	c.mu.Unlock()
	if slow {
		t := c.clock.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C():
		case <-ctx.Done():
			return nil, fmt.Errorf("simulated: injected slow call, the caller gave up: %w", ctx.Err())
		}
	}
	return m, err
}

// roll returns true with probability rate. The caller holds c.mu.
func (c *Cloud) roll(rate float64) bool {
	return rate > 0 && c.dice.Float64() < rate
}

func (c *Cloud) lookup(inst *computev1alpha1.Instance) *machine {
	if id := inst.Status.Machine.ID; id != "" {
		return c.byID[id]
	}
	if token := inst.Status.Machine.CreateToken; token != "" {
		return c.byToken[token]
	}
	return nil
}

func notFound(inst *computev1alpha1.Instance) error {
	return fmt.Errorf("simulated: no machine for instance %s/%s: %w", inst.Namespace, inst.Name, provider.ErrNotFound)
}

// newMachine validates the request, reserves the machine's addresses and
// stores it, PROVISIONING. The caller holds c.mu.
func (c *Cloud) newMachine(inst *computev1alpha1.Instance, token string, now time.Time) (*machine, error) {
	typeName := computev1alpha1.TypeName(inst.Spec.Type)
	if _, ok := c.cfg.InstanceTypes[typeName]; !ok {
		return nil, provider.Permanent("UnknownInstanceType",
			"instance type %q does not exist in the simulated cloud; it offers %s", typeName, names(c.cfg.InstanceTypes))
	}
	if len(c.cfg.Images) > 0 {
		for _, d := range inst.Spec.Disks {
			if !strings.Contains(d.Source, "/compute/images/") {
				continue
			}
			if image := computev1alpha1.TypeName(d.Source); !slices.Contains(c.cfg.Images, image) {
				return nil, provider.Permanent("UnknownImage",
					"image %q does not exist in the simulated cloud; it offers %s", image, strings.Join(c.cfg.Images, ", "))
			}
		}
	}
	gpus := map[string]int{}
	for _, g := range inst.Spec.GPUs {
		name := computev1alpha1.TypeName(g.Type)
		total, ok := c.cfg.GPUs[name]
		if !ok {
			return nil, provider.Permanent("UnknownGPUType",
				"GPU type %q does not exist in the simulated cloud; it offers %s", name, names(c.cfg.GPUs))
		}
		gpus[name] += int(g.Count)
		if gpus[name] > total {
			return nil, provider.Permanent("ExceedsCapacity",
				"the instance asks for %d %s GPUs and the simulated cloud has only %d", gpus[name], name, total)
		}
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	m := &machine{
		ID: id, Token: token, Namespace: inst.Namespace, Name: inst.Name, UID: string(inst.UID),
		Type: typeName, Zone: computev1alpha1.ZoneOf(inst.Spec.Type), GPUs: gpus,
		Hostname: inst.EffectiveHostname(),
		Metadata: append([]computev1alpha1.MetadataItem(nil), inst.Spec.InstanceMetadata...),
		Phase:    provider.PhaseProvisioning, CreatedAt: now,
		Then: []step{{provider.PhaseStaging, c.cfg.Latencies.Boot}, {Phase: provider.PhaseRunning}},
	}
	if len(m.GPUs) == 0 {
		m.GPUs = nil
	}
	nics := inst.Spec.NICs
	if len(nics) == 0 {
		nics = []computev1alpha1.NIC{{}}
	}
	for _, nic := range nics {
		key := nic.Network
		if key == "" && nic.Subnet == "" {
			key = "default/" + inst.Namespace
		}
		net := c.network(key, nic.Subnet)
		assigned := computev1alpha1.NICStatus{Network: nic.Network, Subnet: nic.Subnet, VLAN: nic.VLAN}
		if assigned.IPv4Address, err = net.assign(nic.IPv4Address, false, id); err == nil {
			assigned.IPv6Address, err = net.assign(nic.IPv6Address, true, id)
		}
		if err != nil {
			c.releaseAddresses(m)
			return nil, err
		}
		// Remember the network key for a default NIC, so a restart finds it.
		if assigned.Network == "" && assigned.Subnet == "" {
			assigned.Network = key
		}
		m.NICs = append(m.NICs, assigned)
	}
	if err := c.store.save(m); err != nil {
		c.releaseAddresses(m)
		return nil, err
	}
	c.byID[m.ID] = m
	c.byToken[m.Token] = m
	return m, nil
}

// plan starts a new course for m from now. The caller holds c.mu.
func (c *Cloud) plan(m *machine, now time.Time, first step, then ...step) {
	m.Phase, m.Until, m.Then = first.Phase, now.Add(first.For), then
}

// advance moves m through every step whose time has come, allocating
// capacity for a PROVISIONING machine first, and stores it when it changed.
// It reports whether the machine is gone. The caller holds c.mu.
func (c *Cloud) advance(m *machine, now time.Time) (bool, error) {
	changed := false
	for {
		if m.Phase == provider.PhaseProvisioning && !m.Allocated {
			waiting := c.allocate(m)
			if waiting != "" {
				if waiting != m.Waiting {
					m.Waiting, changed = waiting, true
				}
				break
			}
			m.Allocated, m.Waiting, m.Until, changed = true, "", now.Add(c.cfg.Latencies.Allocate), true
		}
		if len(m.Then) == 0 || m.Until.IsZero() || now.Before(m.Until) {
			break
		}
		next, start := m.Then[0], m.Until
		m.Phase, m.Then, m.Until, changed = next.Phase, m.Then[1:], time.Time{}, true
		if len(m.Then) > 0 {
			m.Until = start.Add(next.For)
		}
		if m.Phase == phaseGone {
			return true, c.remove(m)
		}
	}
	if !changed {
		return false, nil
	}
	return false, c.store.save(m)
}

// allocate takes capacity for m, or says what it waits for. The caller holds c.mu.
func (c *Cloud) allocate(m *machine) string {
	if limit := c.cfg.InstanceTypes[m.Type]; c.typesUsed[m.Type] >= limit {
		return fmt.Sprintf("waiting for capacity: all %d %s machines of the cloud are in use", limit, m.Type)
	}
	for _, g := range slices.Sorted(maps.Keys(m.GPUs)) {
		total := c.cfg.GPUs[g]
		if free := total - c.gpusUsed[g]; free < m.GPUs[g] {
			return fmt.Sprintf("waiting for capacity: %d %s GPUs needed, %d of %d free", m.GPUs[g], g, max(free, 0), total)
		}
	}
	c.typesUsed[m.Type]++
	for g, n := range m.GPUs {
		c.gpusUsed[g] += n
	}
	return ""
}

// all lists the cloud's machines. The caller holds c.mu.
func (c *Cloud) all() []*machine {
	out := make([]*machine, 0, len(c.byID))
	for _, m := range c.byID {
		out = append(out, m)
	}
	return out
}

// remove deletes m from the cloud and frees what it held. The caller holds c.mu.
func (c *Cloud) remove(m *machine) error {
	delete(c.byID, m.ID)
	delete(c.byToken, m.Token)
	if m.Allocated {
		c.typesUsed[m.Type]--
		for g, n := range m.GPUs {
			c.gpusUsed[g] -= n
		}
		m.Allocated = false
	}
	c.releaseAddresses(m)
	return c.store.remove(m.ID)
}

func (c *Cloud) releaseAddresses(m *machine) {
	for _, nic := range m.NICs {
		net := c.network(nic.Network, nic.Subnet)
		net.release(nic.IPv4Address, m.ID)
		net.release(nic.IPv6Address, m.ID)
	}
}

// failHost sends a running machine to REPAIRING. The caller holds c.mu.
func (c *Cloud) failHost(m *machine, now time.Time) {
	c.plan(m, now, step{provider.PhaseRepairing, c.cfg.Latencies.Repair}, step{Phase: provider.PhaseRunning})
}

// view is the machine as the provider interface reports it.
func (c *Cloud) view(m *machine, now time.Time) *provider.Machine {
	out := &provider.Machine{
		ID: m.ID, Phase: m.Phase, Hostname: m.Hostname,
		WaitingForCapacity: m.Waiting != "",
		NICs:               append([]computev1alpha1.NICStatus(nil), m.NICs...),
	}
	for i := range out.NICs {
		if strings.HasPrefix(out.NICs[i].Network, "default/") {
			out.NICs[i].Network = ""
		}
	}
	if !m.Until.IsZero() {
		out.NextChangeIn = max(m.Until.Sub(now), 0)
	}
	switch m.Phase {
	case provider.PhaseProvisioning:
		out.Message = m.Waiting
		if out.Message == "" {
			out.Message = fmt.Sprintf("allocating a %s machine%s", m.Type, inZone(m.Zone))
		}
	case provider.PhaseStaging:
		out.Message = fmt.Sprintf("resources allocated; booting machine %s", m.ID)
	case provider.PhaseRunning:
		out.Message = fmt.Sprintf("machine %s is running", m.ID)
	case provider.PhaseStopping:
		out.Message = fmt.Sprintf("machine %s is shutting down", m.ID)
	case provider.PhaseStopped:
		out.Message = fmt.Sprintf("machine %s is stopped", m.ID)
	case provider.PhaseSuspending:
		out.Message = fmt.Sprintf("saving the memory of machine %s", m.ID)
	case provider.PhaseSuspended:
		out.Message = fmt.Sprintf("machine %s is suspended", m.ID)
	case provider.PhaseRepairing:
		out.Message = fmt.Sprintf("the host of machine %s failed; the machine is being restarted on a healthy host", m.ID)
	case provider.PhaseDeleting:
		out.Message = fmt.Sprintf("machine %s is being deleted", m.ID)
	}
	return out
}

func inZone(zone string) string {
	if zone == "" {
		return ""
	}
	return " in zone " + zone
}

func newID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("failed to make a machine id: %w", err)
	}
	return "vm-" + hex.EncodeToString(b), nil
}

func names(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}
