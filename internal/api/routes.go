package api

import (
	"net/http"
	"strings"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// The path templates of the API, as openapi.json names them.
const (
	collectionTemplate = "/v1/regions/{region}/projects/{project}/compute/instances"
	instanceTemplate   = collectionTemplate + "/{id}"
)

// routeEntry is one operation: its method, path template, the RBAC verb on
// instances it needs and the function that serves it.
type routeEntry struct {
	method   string
	template string
	// operationID is the operation's operationId in openapi.json.
	operationID string
	// verb is the RBAC verb on instances; "" marks the public routes
	// (probes, the document), served with no token and no authorization.
	verb  string
	serve func(*operation) error
}

func (e *routeEntry) public() bool { return e.verb == "" }

// routeTable is every operation the server serves, and the only place that
// says which verb each needs and what serves it. The order of a template's
// methods is the order of its Allow header.
var routeTable = []routeEntry{
	{http.MethodGet, "/healthz", "healthz", "", serveHealthz},
	{http.MethodHead, "/healthz", "", "", serveHealthz},
	{http.MethodGet, "/readyz", "readyz", "", serveReadyz},
	{http.MethodHead, "/readyz", "", "", serveReadyz},
	{http.MethodGet, "/openapi.json", "openapi", "", serveOpenAPI},
	{http.MethodHead, "/openapi.json", "", "", serveOpenAPI},

	{http.MethodGet, collectionTemplate, "listInstances", "list", (*operation).list},
	{http.MethodPost, collectionTemplate, "createInstance", "create", (*operation).create},
	{http.MethodGet, instanceTemplate, "getInstance", "get", (*operation).get},
	{http.MethodPatch, instanceTemplate, "updateInstance", "patch", (*operation).patch},
	{http.MethodDelete, instanceTemplate, "deleteInstance", "delete", (*operation).delete},
	{http.MethodPost, instanceTemplate + ":" + methodStop, "stopInstance", "patch", setPowerState(computev1alpha1.PowerStateStopped)},
	{http.MethodPost, instanceTemplate + ":" + methodStart, "startInstance", "patch", setPowerState(computev1alpha1.PowerStateRunning)},
	{http.MethodPost, instanceTemplate + ":" + methodSuspend, "suspendInstance", "patch", setPowerState(computev1alpha1.PowerStateSuspended)},
	{http.MethodPost, instanceTemplate + ":" + methodResume, "resumeInstance", "patch", setPowerState(computev1alpha1.PowerStateRunning)},
}

// pathRoutes are the operations of one path template.
type pathRoutes struct {
	entries []*routeEntry
	// allow is the Allow header of a 405.
	allow string
}

func (p *pathRoutes) lookup(method string) *routeEntry {
	for _, e := range p.entries {
		if e.method == method {
			return e
		}
	}
	return nil
}

var (
	// routesByTemplate indexes routeTable by path template.
	routesByTemplate = map[string]*pathRoutes{}
	// customMethods are the colon methods of the table ("stop", ...).
	customMethods = map[string]bool{}
)

func init() {
	for i := range routeTable {
		e := &routeTable[i]
		p := routesByTemplate[e.template]
		if p == nil {
			p = &pathRoutes{}
			routesByTemplate[e.template] = p
		}
		p.entries = append(p.entries, e)
		if p.allow != "" {
			p.allow += ", "
		}
		p.allow += e.method
		if i := strings.LastIndexByte(e.template, ':'); i >= 0 {
			customMethods[e.template[i+1:]] = true
		}
	}
}

// matchPath finds the template a request path belongs to and, for the
// API's paths, its parameters; ok is false for a path of no route.
func matchPath(path string) (p *pathRoutes, template string, rt route, ok bool) {
	if strings.HasPrefix(path, "/v1/") {
		if rt, ok = parsePath(path); !ok {
			return nil, "", route{}, false
		}
		template = rt.template()
	} else {
		template = path
	}
	p, ok = routesByTemplate[template]
	return p, template, rt, ok
}

func serveHealthz(op *operation) error {
	writeProbe(op.w, true, "")
	return nil
}

func serveReadyz(op *operation) error {
	writeProbe(op.w, op.s.ready.Load(), "the cache has not synced")
	return nil
}

func writeProbe(w http.ResponseWriter, ok bool, notOK string) {
	w.Header().Set("Content-Type", "text/plain")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(notOK))
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func serveOpenAPI(op *operation) error {
	op.w.Header().Set("Content-Type", "application/json")
	_, _ = op.w.Write(OpenAPIDocument)
	return nil
}
