package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// ReasonQuotaExceeded is the reason of a create refused by a project's
// ResourceQuota (the API contract's QUOTA_EXCEEDED, with 403).
const ReasonQuotaExceeded = "QUOTA_EXCEEDED"

// quotaMessage is how kube-apiserver's ResourceQuota admission words a refusal.
var quotaMessage = regexp.MustCompile(`exceeded quota: ([^,]+), requested: [^,]*, used: [^,]*, limited: (.*)$`)

// fromForbidden translates kube-apiserver's Forbidden (a ResourceQuota, a
// namespace being deleted, an admission policy's denial) into a 403 that
// says why, in the project's words instead of the namespace's; nil when err
// is not a Forbidden.
func (op *operation) fromForbidden(err error) *apiError {
	var status apierrors.APIStatus
	if !apierrors.IsForbidden(err) || !errors.As(err, &status) {
		return nil
	}
	why := status.Status().Message
	// "instances.compute.k0rdent.ai \"x\" is forbidden: <why>"
	if _, after, ok := strings.Cut(why, " is forbidden: "); ok {
		why = after
	}
	scope := fmt.Sprintf("project %q of region %q", op.rt.project, op.rt.region)
	if op.ns != "" {
		why = strings.ReplaceAll(why, "namespace "+op.ns, scope)
		why = strings.ReplaceAll(why, op.ns, scope)
	}
	why = strings.ReplaceAll(apiMessage(why), "namespace", "project")
	md := map[string]string{"region": op.rt.region, "project": op.rt.project}
	if m := quotaMessage.FindStringSubmatch(why); m != nil {
		md["quota"], md["limit"] = m[1], m[2]
		return newError(http.StatusForbidden, ReasonQuotaExceeded,
			fmt.Sprintf("quota %q of %s is exhausted: limited: %s", m[1], scope, m[2]), md)
	}
	md["cause"] = why
	return newError(http.StatusForbidden, ReasonPermissionDenied, "permission denied: "+why, md)
}
