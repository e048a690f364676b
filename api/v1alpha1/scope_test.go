package v1alpha1

import (
	"slices"
	"testing"
)

func TestOutsideScope(t *testing.T) {
	const (
		zonal   = "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-small"
		own     = "/v1/regions/us-texas-1/projects/project-a/compute/networks/net-1"
		other   = "/v1/regions/us-texas-1/projects/project-b/compute/networks/net-1"
		abroad  = "/v1/regions/eu-west-1/zones/eu1-a/instance-types/g1-small"
		volume  = "/v1/regions/us-texas-1/projects/project-b/compute/volumes/data"
		ownType = "/v1/regions/us-texas-1/projects/project-a/compute/instance-types/mine"
	)
	spec := InstanceSpec{Type: zonal, NICs: []NIC{{Network: own}, {Subnet: other}}, Disks: []Disk{{Source: volume}}}
	for _, tc := range []struct {
		name, region, project string
		spec                  InstanceSpec
		want                  []string
	}{
		{"mapped: another project's subnet and volume", "us-texas-1", "project-a", spec, []string{volume, other}},
		{"mapped: all in scope", "us-texas-1", "project-a", InstanceSpec{Type: ownType, NICs: []NIC{{Network: own}}}, nil},
		{"mapped: another region's type", "us-texas-1", "project-a", InstanceSpec{Type: abroad}, []string{abroad}},
		{"unmapped: region-scoped URIs of any region", "", "", InstanceSpec{Type: abroad}, nil},
		{"unmapped: every project-scoped URI", "", "", spec, []string{volume, own, other}},
		{"region only: every project-scoped URI", "us-texas-1", "", InstanceSpec{Type: ownType}, []string{ownType}},
		{"project only: every project-scoped URI", "", "project-a", InstanceSpec{Type: zonal, NICs: []NIC{{Network: own}}}, []string{own}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.spec.OutsideScope(tc.region, tc.project); !slices.Equal(got, tc.want) {
				t.Errorf("OutsideScope(%q, %q) = %q, want %q", tc.region, tc.project, got, tc.want)
			}
		})
	}
}
