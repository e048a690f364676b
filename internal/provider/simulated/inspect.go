package simulated

import (
	"fmt"
	"sort"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// MachineInfo is what an operator of the simulated cloud sees of a machine.
type MachineInfo struct {
	ID, Token       string
	Namespace, Name string
	Phase           provider.Phase
	Hostname        string
	NICs            []computev1alpha1.NICStatus
	Metadata        []computev1alpha1.MetadataItem
}

// Machines lists the cloud's machines, by namespace and name.
func (c *Cloud) Machines() []MachineInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]MachineInfo, 0, len(c.byID))
	for _, m := range c.byID {
		out = append(out, MachineInfo{
			ID: m.ID, Token: m.Token, Namespace: m.Namespace, Name: m.Name, Phase: m.Phase,
			Hostname: m.Hostname, NICs: append([]computev1alpha1.NICStatus(nil), m.NICs...),
			Metadata: append([]computev1alpha1.MetadataItem(nil), m.Metadata...),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// FailHost makes the host of running machine id fail now: the machine goes
// to REPAIRING, then back to RUNNING.
func (c *Cloud) FailHost(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byID[id]
	if m == nil || m.Phase != provider.PhaseRunning {
		return fmt.Errorf("simulated: no running machine %s", id)
	}
	c.failHost(m, c.clock.Now())
	return c.store.save(m)
}

// Lose makes machine id disappear out of band, as if the cloud lost it.
func (c *Cloud) Lose(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byID[id]
	if m == nil {
		return fmt.Errorf("simulated: no machine %s", id)
	}
	return c.remove(m)
}

// Faults returns the fault rates in force.
func (c *Cloud) Faults() Faults {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Faults
}

// SetFaults changes the fault rates from now on.
func (c *Cloud) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.Faults = f
	return nil
}

// SetCapacity changes how many machines of instance type name fit; machines
// waiting for it get it when next observed.
func (c *Cloud) SetCapacity(name string, machines int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	types := make(map[string]int, len(c.cfg.InstanceTypes)+1)
	for k, v := range c.cfg.InstanceTypes {
		types[k] = v
	}
	types[name] = machines
	c.cfg.InstanceTypes = types
}
