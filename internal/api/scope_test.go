package api

import (
	"testing"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

func TestScopeOf(t *testing.T) {
	for _, tc := range []struct {
		uri, region, project string
		ok                   bool
	}{
		{"/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge", "us-texas-1", "", true},
		{"/v1/regions/us-texas-1/compute/images/ubuntu", "us-texas-1", "", true},
		{"/v1/regions/us-texas-1/projects/p1/compute/networks/n1", "us-texas-1", "p1", true},
		{"/v1/regions/us-texas-1/projects/p1/compute/instance-types/custom", "us-texas-1", "p1", true},
		{"/v1/regions/", "", "", false},
		{"g1-xlarge", "", "", false},
		{"", "", "", false},
	} {
		region, project, ok := scopeOf(tc.uri)
		if region != tc.region || project != tc.project || ok != tc.ok {
			t.Errorf("scopeOf(%q) = %q, %q, %v; want %q, %q, %v", tc.uri, region, project, ok, tc.region, tc.project, tc.ok)
		}
	}
}

func TestCheckScopeAcceptsTheRequestsOwnScope(t *testing.T) {
	req := &CreateRequest{
		Type:  "/v1/regions/r1/zones/z/instance-types/t",
		Disks: []computev1alpha1.Disk{{Source: "/v1/regions/r1/compute/images/i"}},
		NICs:  []computev1alpha1.NIC{{Network: "/v1/regions/r1/projects/p1/compute/networks/n", Subnet: "/v1/regions/r1/projects/p1/compute/subnets/s"}},
		GPUs:  []computev1alpha1.GPU{{Type: "/v1/regions/r1/gpu-types/g", Count: 1}},
	}
	if err := checkScope(req, "r1", "p1"); err != nil {
		t.Fatalf("own scope refused: %v", err)
	}
}
