package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// queryParams are the query parameters each operation understands, by
// operationId; any other, or one that cannot be parsed, is a 400: a
// parameter the API ignored would be one the caller believes was applied
// (a dryRun that creates, a pageToken that restarts the listing).
var queryParams = map[string][]string{
	"listInstances":  {"pageSize", "pageToken"},
	"createInstance": {paramDryRun},
}

// paramDryRun asks a create to be validated only (AIP-163's validate-only,
// spelled as kube-apiserver spells it): dryRun=All.
const (
	paramDryRun = "dryRun"
	dryRunAll   = "All"
)

// parseQuery reads the request's query into op.query, refusing what the
// operation does not understand. A request without a query (every GET of
// one instance, as clients send it) costs nothing here.
func (op *operation) parseQuery() *apiError {
	raw := op.r.URL.RawQuery
	if raw == "" || op.entry.public() {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return malformedQuery(raw, err)
	}
	allowed := queryParams[op.entry.operationID]
	for k := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return queryError(k, fmt.Sprintf("unknown query parameter %q; %s takes none", truncate(k, 64), op.entry.operationID))
			}
			return queryError(k, fmt.Sprintf("unknown query parameter %q; %s takes %s", truncate(k, 64), op.entry.operationID, strings.Join(allowed, ", ")))
		}
	}
	if vs, ok := q[paramDryRun]; ok && (len(vs) != 1 || vs[0] != dryRunAll) {
		return queryError(paramDryRun, fmt.Sprintf("dryRun must be %q (validate only, create nothing), not %q", dryRunAll, truncate(vs[0], 32)))
	}
	op.query = q
	return nil
}

func queryError(param, description string) *apiError {
	e := newError(http.StatusBadRequest, ReasonInvalidArgument, description, nil)
	if param != "" {
		e.metadata = map[string]string{"parameter": truncate(param, 64)}
		e.violations = []FieldViolation{{Field: truncate(param, 64), Description: description}}
	}
	return e
}

// dryRun reports whether the request asked to be validated only.
func (op *operation) dryRun() bool {
	_, ok := op.query[paramDryRun]
	return ok
}

// malformedQuery is the 400 of a query string url.ParseQuery refuses (a bad
// %-escape, a ';'), which url.Values would have dropped silently. A bad
// pageSize or pageToken is told with the reason the contract gives it.
func malformedQuery(raw string, err error) *apiError {
	for _, pair := range strings.Split(raw, "&") {
		key, value, _ := strings.Cut(pair, "=")
		k, kerr := url.QueryUnescape(key)
		_, verr := url.QueryUnescape(value)
		if kerr == nil && verr == nil && !strings.Contains(pair, ";") {
			continue
		}
		switch k {
		case "pageToken":
			return newError(http.StatusBadRequest, ReasonInvalidPageToken, "pageToken is not a token this API returned", nil)
		case "pageSize":
			return newError(http.StatusBadRequest, ReasonInvalidPageSize,
				fmt.Sprintf("pageSize must be an integer from 1 to %d", maxPageSize), nil)
		}
		break
	}
	return queryError("", "the query string is malformed: "+truncate(strings.TrimPrefix(err.Error(), "invalid "), 128))
}

// validateCreate is a create with dryRun=All: kube-apiserver validates and
// admits the instance as it would store it (schema, CEL rules, admission
// policies, quota) and stores nothing; the answer is 200 with the instance
// that would have been made, without a Location.
func (op *operation) validateCreate(in *computev1alpha1.Instance) error {
	if err := op.s.kubeClient.Create(op.r.Context(), in, client.DryRunAll); err != nil {
		return err
	}
	out := toAPI(op.rt.region, op.rt.project, in)
	out.Lifecycle.StatusMessage = "validated only (dryRun=All): nothing was created"
	op.writeJSON(http.StatusOK, out, "")
	return nil
}
