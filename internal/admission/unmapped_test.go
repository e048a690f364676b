package admission_test

import (
	"context"
	"testing"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// TestUnmappedNamespaceHoldsNoProjectURI: the namespace "admission" has no
// mapping labels; an Instance there naming any project's network, subnet or
// volume is refused at create (even by the cluster admin: scope is not a
// right), while one naming only the public catalog is made.
func TestUnmappedNamespaceHoldsNoProjectURI(t *testing.T) {
	ctx := context.Background()
	for name, m := range map[string]func(*computev1alpha1.Instance){
		"network": func(in *computev1alpha1.Instance) {
			in.Spec.NICs = []computev1alpha1.NIC{{Network: projectB + "/networks/net-1"}}
		},
		"subnet": func(in *computev1alpha1.Instance) {
			in.Spec.NICs = []computev1alpha1.NIC{{Subnet: projectA + "/subnets/sub-1"}}
		},
		"volume": func(in *computev1alpha1.Instance) {
			in.Spec.Disks = []computev1alpha1.Disk{{Source: projectB + "/volumes/data", SizeGb: 10}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			in := instance("unmapped-" + name)
			m(in)
			refused(t, env.Client.Create(ctx, in), false, "the namespace is not mapped to a project")
		})
	}
	if err := env.Client.Create(ctx, instance("unmapped-catalog")); err != nil {
		t.Fatalf("an instance of the public catalog in an unmapped namespace: %v", err)
	}
}
