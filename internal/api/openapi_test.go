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
