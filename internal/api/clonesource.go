package api

import (
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// cloneSources are the kinds of disk source that the operator clones with
// its own rights (CDI checks the VM creator's, the manager's), by the URI's
// collection: the caller must be allowed get on the source itself.
var cloneSources = map[string]struct{ group, resource string }{
	"volumes":   {"", "persistentvolumeclaims"},
	"snapshots": {"snapshot.storage.k8s.io", "volumesnapshots"},
}

// authorizeDiskSources refuses a create whose disks clone a volume or a
// snapshot the caller may not read: the operator would otherwise copy it
// for them (a confused deputy). kube-apiserver's instance-tenancy policy
// checks the same for kubectl users; the REST API writes as the operator,
// so it checks its callers here, by SubjectAccessReview.
//
// The request's bounds were checked before (checkCreateBounds): at most
// MaxDisks sources, each of the CRD's shape, and a source named by several
// disks is asked about once, so a request costs at most MaxDisks reviews.
func (op *operation) authorizeDiskSources(req *CreateRequest) error {
	asked := make(map[string]bool, len(req.Disks))
	for i, d := range req.Disks {
		parts := strings.Split(d.Source, "/")
		if len(parts) < 2 || asked[d.Source] {
			continue
		}
		kind, ok := cloneSources[parts[len(parts)-2]]
		if !ok {
			continue
		}
		asked[d.Source] = true
		name := parts[len(parts)-1]
		decision, _, err := op.s.authz.Authorize(op.r.Context(), authorizer.AttributesRecord{
			User: op.user.User, Verb: "get", Namespace: op.ns, APIGroup: kind.group, APIVersion: "*",
			Resource: kind.resource, Name: name, ResourceRequest: true,
		})
		if err != nil {
			return fmt.Errorf("failed to authorize the source of disks[%d]: %w", i, err)
		}
		if decision != authorizer.DecisionAllow {
			return newError(http.StatusForbidden, ReasonPermissionDenied,
				fmt.Sprintf("permission denied: disks[%d] clones %s, which the caller may not read", i, truncate(d.Source, 256)),
				map[string]string{"permission": "get " + kind.resource, "field": fmt.Sprintf("disks[%d].source", i),
					"region": op.rt.region, "project": op.rt.project})
		}
	}
	return nil
}
