package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// fromForbidden translates kube-apiserver's Forbidden (a ResourceQuota, as
// fromQuota says, a namespace being deleted, an admission policy's denial)
// into a 403 that
// says why, in the project's words instead of the namespace's; nil when err
// is not a Forbidden.
func (op *operation) fromForbidden(err error) *apiError {
	var status apierrors.APIStatus
	if !apierrors.IsForbidden(err) || !errors.As(err, &status) {
		return nil
	}
	md := map[string]string{"region": op.rt.region, "project": op.rt.project}
	if ae := op.fromQuota(status.Status().Message, md); ae != nil {
		return ae
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
	md["cause"] = why
	return newError(http.StatusForbidden, ReasonPermissionDenied, "permission denied: "+why, md)
}
