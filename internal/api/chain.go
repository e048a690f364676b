package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// middleware is one step of the request path: it answers the request itself
// and stops, or passes it on to next.
type middleware func(next http.Handler) http.Handler

// handlerChain is the request path, outermost first, in the manner of
// k8s.io/apiserver's DefaultBuildHandlerChain. Each step is a small
// wrapper that can be read and tested alone; each learns something about
// the request into its operation for the steps after it.
//
// The route is matched before authentication, as kube-apiserver resolves
// its RequestInfo first: the access log and the metrics label a 401 with
// its route template, and the probes and the document pass without a
// token. A 404 or 405 tells an anonymous caller no more than /openapi.json.
func (s *Server) handlerChain() []middleware {
	return []middleware{
		s.withRequestID,      // X-Request-Id echoed or made; the operation begins
		s.withAccessLog,      // one log line and the metrics, whoever answers
		s.withRecover,        // a panic is a 500 envelope
		s.withRoute,          // the route table: 404, 405 with Allow
		s.withInFlight,       // API operations at once: 503 with Retry-After past the bound
		s.withDeadline,       // RequestTimeout bounds an operation's work
		s.withAuthentication, // bearer token: 401; an address whose tokens keep failing, or with too many being reviewed: 429 before review
		s.withPrincipalShare, // requests in flight per principal: 429 past its share
		s.withRateLimit,      // per principal: 429 with Retry-After
		s.withNamespace,      // region and project name one namespace
		s.withAuthorization,  // SubjectAccessReview of the route's verb: 403, permission before existence
		s.withProject,        // the project exists: 404, or 500 for a project claimed twice
		s.withProjectShare,   // requests in flight per project: 429 past its share
		s.withBodyDeadline,   // the body's own read deadline: 408 past it
	}
}

// Handler is the server's whole HTTP handler: the chain, then the route's
// operation. It dispatches on the raw path itself: http.ServeMux would
// answer unclean paths ("..") with a redirect instead of the envelope.
func (s *Server) Handler() http.Handler {
	return buildChain(http.HandlerFunc(s.serveOperation), s.handlerChain())
}

// buildChain wraps h in steps, the first step outermost.
func buildChain(h http.Handler, steps []middleware) http.Handler {
	for i := len(steps) - 1; i >= 0; i-- {
		h = steps[i](h)
	}
	return h
}

// operation is one request being served: what the chain's steps learn about
// it, in the order they learn it.
type operation struct {
	s *Server
	// id is the request ID.
	id string
	// label is the route template of the access log and the metrics.
	label string
	entry *routeEntry
	rt    route
	user  *authenticator.Response
	ns    string
	// nsConflict is set when more than one namespace claims the project.
	nsConflict *errScopeConflict
	// query is the parsed query string, nil when there is none.
	query url.Values
	// w and r are what the operation's handler was given.
	w http.ResponseWriter
	r *http.Request
}

type ctxKey int

const operationKey ctxKey = iota

// opOf is the request's operation, begun by withRequestID; a step tested
// without it gets one of its own.
func (s *Server) opOf(r *http.Request) *operation {
	if op, ok := r.Context().Value(operationKey).(*operation); ok {
		return op
	}
	return &operation{s: s, label: "other"}
}

func (op *operation) log() logr.Logger {
	return op.s.base.WithValues("requestID", op.id)
}

func (op *operation) userName() string {
	if op.user == nil {
		return ""
	}
	return op.user.User.GetName()
}

// serveOperation is the end of the chain: the route's own handler.
func (s *Server) serveOperation(w http.ResponseWriter, r *http.Request) {
	op := s.opOf(r)
	op.w, op.r = w, r
	if err := op.parseQuery(); err != nil {
		op.fail(w, err)
		return
	}
	if err := op.entry.serve(op); err != nil {
		op.fail(w, err)
	}
}

// validRequestID accepts a client's request ID of up to 128 visible ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// requestIDPrefix makes this process's request IDs unlike another's; a
// counter makes them unlike each other, without reading the system's
// randomness for each request.
var (
	requestIDPrefix = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	requestIDCounter atomic.Uint64
)

// newRequestID is 32 hex digits: the process's prefix and a counter.
func newRequestID() string {
	b := make([]byte, 0, 32)
	b = append(b, requestIDPrefix...)
	n := requestIDCounter.Add(1)
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, "0123456789abcdef"[(n>>uint(shift))&0xf])
	}
	return string(b)
}

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		op := &operation{s: s, id: id, label: "other"}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operationKey, op)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

// Unwrap lets http.ResponseController reach the connection (the body's
// read deadline).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (s *Server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		op := s.opOf(r)
		observe(op.label, r.Method, rec.status, elapsed)
		// Checked first: the line's values would be boxed for nothing.
		if s.base.Enabled() {
			s.base.Info("request", "requestID", op.id, "method", r.Method, "path", truncate(r.URL.Path, 256),
				"route", op.label, "status", rec.status, "bytes", rec.bytes, "duration", elapsed.String(),
				"user", op.userName(), "remote", remoteHost(r))
		}
	})
}

func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // panicked as is; net/http compares it with == too
					panic(v)
				}
				s.opOf(r).log().Error(fmt.Errorf("panic: %v", v), "the request handler panicked")
				writeError(w, internalError())
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) withRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		paths, template, rt, ok := matchPath(r.URL.Path)
		if !ok {
			writeError(w, notFoundRoute(r))
			return
		}
		op.label, op.rt = template, rt
		if op.entry = paths.lookup(r.Method); op.entry == nil {
			w.Header().Set("Allow", paths.allow)
			writeError(w, newError(http.StatusMethodNotAllowed, ReasonMethodNotAllowed,
				fmt.Sprintf("method %s is not allowed on %s; allowed: %s", truncate(r.Method, 16), template, paths.allow), nil))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func notFoundRoute(r *http.Request) *apiError {
	return newError(http.StatusNotFound, ReasonRouteNotFound, "no such API route: "+truncate(r.URL.Path, 256), nil)
}

func (s *Server) withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opOf(r).entry.public() {
			next.ServeHTTP(w, r)
			return
		}
		ctx := &lazyDeadline{Context: r.Context(), deadline: time.Now().Add(s.opts.RequestTimeout)}
		defer ctx.stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// lazyDeadline is context.WithDeadline whose timer starts only when someone
// waits on it (Done or Err): a GET answered from memory never does, and a
// runtime timer per request was a tenth of such a GET's cost.
type lazyDeadline struct {
	context.Context // the parent
	deadline        time.Time

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *lazyDeadline) start() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(c.Context, c.deadline) })
}

func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *lazyDeadline) Done() <-chan struct{} {
	c.start()
	return c.ctx.Done()
}

func (c *lazyDeadline) Err() error {
	c.start()
	return c.ctx.Err()
}

// stop ends the context when the request is served; one never started
// becomes one already canceled, with no timer made for it.
func (c *lazyDeadline) stop() {
	c.once.Do(func() { c.ctx, c.cancel = canceledContext, func() {} })
	c.cancel()
}

var canceledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (s *Server) withInFlight(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opOf(r).entry.public() {
			next.ServeHTTP(w, r)
			return
		}
		s.inFlight.serve(w, r, next.ServeHTTP)
	})
}

func (s *Server) withRateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if op.user != nil {
			if retry, limited := s.rate.limit("user:" + op.user.User.GetName()); limited {
				writeRateLimited(w, retry)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withNamespace maps the project to its namespace, "" when there is none.
// What it finds is told only after authorization: permission before existence.
func (s *Server) withNamespace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if !op.entry.public() && validScope(op.rt.region) && validScope(op.rt.project) {
			ns, err := s.namespaceFor(r.Context(), op.rt.region, op.rt.project)
			var conflict *errScopeConflict
			switch {
			case errors.As(err, &conflict):
				op.nsConflict = conflict
			case err != nil:
				op.fail(w, err)
				return
			}
			op.ns = ns
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if !op.entry.public() {
			if err := op.authorize(r.Context()); err != nil {
				op.fail(w, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withProject answers for a project that maps to no namespace, or to more
// than one; a caller learns of it only when allowed the verb on instances
// in every namespace (authorize asked with namespace "").
func (s *Server) withProject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if op.entry.public() {
			next.ServeHTTP(w, r)
			return
		}
		switch {
		case op.nsConflict != nil:
			op.log().Error(op.nsConflict, "cannot map the project to one namespace", "region", op.rt.region, "project", op.rt.project)
			writeError(w, newError(http.StatusInternalServerError, ReasonProjectMappingClash,
				fmt.Sprintf("project %q of region %q is configured more than once; an administrator must resolve the conflict", op.rt.project, op.rt.region), op.scope()))
		case op.ns == "":
			writeError(w, newError(http.StatusNotFound, ReasonProjectNotFound,
				fmt.Sprintf("project %q of region %q not found", op.rt.project, op.rt.region), op.scope()))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func internalError() *apiError {
	return newError(http.StatusInternalServerError, ReasonInternal, "internal error; try again later", nil)
}
