package v1alpha1

import "strings"

// OutsideScope returns the URIs of the spec (type, disk sources, NIC
// networks and subnets, GPU types) that are not in the scope of a namespace
// labelled region and project: a URI of another region, when region is set,
// and any project-scoped URI (/v1/regions/{region}/projects/{project}/...)
// but those of region and project. A namespace mapped to no project (region
// or project "") holds no project-scoped URI: another project's network or
// volume must never reach a machine because a namespace lacks its labels.
// The admission policy instance-tenancy.compute.k0rdent.ai holds the same
// rule at create.
func (s *InstanceSpec) OutsideScope(region, project string) []string {
	var out []string
	check := func(uri string) {
		parts := strings.Split(uri, "/")
		if !strings.HasPrefix(uri, "/v1/regions/") || len(parts) < 4 {
			return
		}
		inRegion := region == "" || parts[3] == region
		projectScoped := len(parts) >= 6 && parts[4] == "projects"
		inProject := !projectScoped || (region != "" && project != "" && parts[3] == region && parts[5] == project)
		if !inRegion || !inProject {
			out = append(out, uri)
		}
	}
	check(s.Type)
	for _, d := range s.Disks {
		check(d.Source)
	}
	for _, n := range s.NICs {
		check(n.Network)
		check(n.Subnet)
	}
	for _, g := range s.GPUs {
		check(g.Type)
	}
	return out
}
