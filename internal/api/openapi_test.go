package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIMatchesServer: the document describes exactly what the server
// serves: every operation it lists is routed, and every method it does not
// list on a path is 405.
func TestOpenAPIMatchesServer(t *testing.T) {
	fill := strings.NewReplacer("{region}", region, "{project}", project, "{id}", "no-such-instance")
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	if len(spec.Paths.Map()) != 9 {
		t.Errorf("the document has %d paths, want 9", len(spec.Paths.Map()))
	}
	for template, item := range spec.Paths.Map() {
		path := fill.Replace(template)
		for _, method := range methods {
			var body any
			if method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut {
				body = `{}`
			}
			r := call(t, method, path, tokens["stranger"], body)
			documented := item.GetOperation(method) != nil
			switch {
			case documented && r.StatusCode == http.StatusMethodNotAllowed:
				t.Errorf("%s %s is documented but answered 405", method, template)
			case documented && r.StatusCode == http.StatusNotFound && strings.Contains(string(r.body), ReasonRouteNotFound):
				t.Errorf("%s %s is documented but not routed", method, template)
			case !documented && r.StatusCode != http.StatusMethodNotAllowed:
				t.Errorf("%s %s is not documented but answered %d", method, template, r.StatusCode)
			}
		}
	}
}

// TestRouteTableIsTheDocument: the route table and openapi.json name the
// same operations: each entry's operationId on its method and path
// template, and every operation of the document in the table.
func TestRouteTableIsTheDocument(t *testing.T) {
	inTable := map[string]bool{}
	for _, e := range routeTable {
		if e.operationID == "" {
			continue // HEAD of a probe: served, not documented apart
		}
		inTable[e.method+" "+e.template] = true
		item := spec.Paths.Value(e.template)
		if item == nil {
			t.Errorf("%s %s: the document has no such path", e.method, e.template)
			continue
		}
		op := item.GetOperation(e.method)
		if op == nil || op.OperationID != e.operationID {
			t.Errorf("%s %s: the document's operation is %+v, want operationId %s", e.method, e.template, op, e.operationID)
		}
		if strings.HasPrefix(e.template, "/v1/") == e.public() {
			t.Errorf("%s %s: verb %q; API operations need one, the probes and the document none", e.method, e.template, e.verb)
		}
	}
	for template, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			if !inTable[method+" "+template] {
				t.Errorf("%s %s is documented but not in the route table", method, template)
			}
		}
	}
}
