package simulated

import (
	"context"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// TestRefusalsNameNothingOfAnotherProject: an instance that asks for an
// address another project's machine holds on a shared subnet is refused,
// and the refusal, which becomes its status message and an event, names
// neither that machine nor its project nor its instance.
func TestRefusalsNameNothingOfAnotherProject(t *testing.T) {
	c := newCloud(t, testConfig(clocktesting.NewFakeClock(time.Now()), ""))
	ctx := context.Background()
	nic := []computev1alpha1.NIC{{Subnet: "/v1/regions/us-texas-1/subnets/shared", IPv4Address: "10.9.0.7"}}
	holder := instance("holder-vm")
	holder.Namespace = "us-texas-1-project-holder"
	holder.Spec.NICs = nic
	held, err := c.Create(ctx, holder)
	if err != nil {
		t.Fatal(err)
	}
	asker := instance("asker-vm")
	asker.Namespace = "us-texas-1-project-asker"
	asker.Spec.NICs = nic
	_, err = c.Create(ctx, asker)
	perm, ok := provider.AsPermanent(err)
	if !ok || perm.Reason != "AddressInUse" {
		t.Fatalf("taking a held address: %v, want AddressInUse", err)
	}
	for _, secret := range []string{held.ID, holder.Namespace, holder.Name, "project-holder"} {
		if strings.Contains(perm.Message, secret) || strings.Contains(err.Error(), secret) {
			t.Errorf("the refusal %q names %q, which belongs to another project", perm.Message, secret)
		}
	}
	if !strings.Contains(perm.Message, "10.9.0.7") {
		t.Errorf("the refusal %q does not say which address is taken", perm.Message)
	}
}
