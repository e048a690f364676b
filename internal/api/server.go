package api

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// OpenAPIDocument is the OpenAPI document of exactly what the server
// implements, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPIDocument []byte

// Server is the REST facade, run by the manager as a Runnable.
type Server struct {
	opts Options
	mgr  manager.Manager
	// kubeClient is the manager's client: it reads from the informer cache
	// and writes to the API server.
	kubeClient client.Client
	live       client.Reader // reads from the API server
	// instanceStore is the instance informer's store, read without a copy on
	// the GET path; nil when the cache does not expose it (then cache reads).
	instanceStore toolscache.Indexer
	authn         authenticator.Request
	authz         authorizer.Authorizer
	rate          *rateLimiter
	guard         *authGuard
	inFlight      inFlight
	base          logr.Logger

	ready     atomic.Bool
	listening chan struct{}
	addr      string
}

var _ manager.LeaderElectionRunnable = (*Server)(nil)

// AddToManager adds the REST API to mgr: its cache indexes and informers, and
// the server itself as a Runnable that runs on every replica.
func AddToManager(mgr manager.Manager, opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Namespace{}, namespaceScopeIndex, indexNamespaceScope); err != nil {
		return nil, fmt.Errorf("failed to index namespaces by region and project: %w", err)
	}
	// Ask for the informers now, so they sync with the cache before the
	// server reports ready instead of on the first request.
	if _, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{}, cache.BlockUntilSynced(false)); err != nil {
		return nil, fmt.Errorf("failed to get the namespace informer: %w", err)
	}
	instances, err := mgr.GetCache().GetInformer(ctx, &computev1alpha1.Instance{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("failed to get the instance informer: %w", err)
	}
	s := &Server{
		opts:       opts,
		mgr:        mgr,
		kubeClient: mgr.GetClient(),
		live:       mgr.GetAPIReader(),
		rate:       newRateLimiter(opts.RateLimit, opts.RateBurst),
		guard:      newAuthGuard(opts.AuthFailureRate, opts.AuthFailureBurst, opts.AuthnCacheTTL),
		inFlight:   newInFlight(opts.MaxRequestsInFlight),
		base:       ctrl.Log.WithName("api"),
		listening:  make(chan struct{}),
	}
	if withIndexer, ok := instances.(interface{ GetIndexer() toolscache.Indexer }); ok {
		s.instanceStore = withIndexer.GetIndexer()
	}
	// The manager's own readiness probe reports the API's too.
	if err := mgr.AddReadyzCheck("api", func(*http.Request) error {
		if !s.ready.Load() {
			return errors.New("the REST API is not serving yet")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("failed to add the API's readiness check: %w", err)
	}
	if err := mgr.Add(s); err != nil {
		return nil, fmt.Errorf("failed to add the API server to the manager: %w", err)
	}
	return s, nil
}

// NeedLeaderElection is false: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

// Addr waits until the server listens and returns its address.
func (s *Server) Addr(ctx context.Context) (string, error) {
	select {
	case <-s.listening:
		return s.addr, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(s.mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("failed to create a clientset: %w", err)
	}
	if s.authn, err = newAuthenticator(ctx, &s.opts, cs); err != nil {
		return err
	}
	if s.authz, err = newAuthorizer(&s.opts, cs); err != nil {
		return err
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if !s.opts.EnableHTTP2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.opts.BindAddress, err)
	}
	if s.opts.TLSCertFile != "" {
		watcher, err := certwatcher.New(s.opts.TLSCertFile, s.opts.TLSKeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("failed to load the API's TLS certificate: %w", err)
		}
		go func() {
			if err := watcher.Start(ctx); err != nil {
				s.base.Error(err, "the TLS certificate watcher stopped")
			}
		}()
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: watcher.GetCertificate}
		if s.opts.EnableHTTP2 {
			tlsConfig.NextProtos = []string{"h2", "http/1.1"}
		} else {
			tlsConfig.NextProtos = []string{"http/1.1"}
		}
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.addr = ln.Addr().String()
	close(s.listening)

	go func() {
		if s.mgr.GetCache().WaitForCacheSync(ctx) {
			s.ready.Store(true)
		}
	}()

	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	s.base.Info("serving the REST API", "address", s.addr, "tls", s.opts.TLSCertFile != "")
	select {
	case err := <-errCh:
		return fmt.Errorf("the API server stopped: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("failed to shut the API server down: %w", err)
	}
	return nil
}

// Handler is the server's whole HTTP handler. It dispatches on the raw path
// itself: http.ServeMux would answer unclean paths ("..") with a redirect
// instead of the envelope.
func (s *Server) Handler() http.Handler {
	probe := func(w http.ResponseWriter, r *http.Request, ok bool, notOK string) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, newError(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "method "+truncate(r.Method, 16)+" is not allowed on "+r.URL.Path+"; allowed: GET", nil))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(notOK))
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
	dispatch := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path := r.URL.Path; {
		case path == "/healthz":
			setRouteLabel(r, path)
			probe(w, r, true, "")
		case path == "/readyz":
			setRouteLabel(r, path)
			probe(w, r, s.ready.Load(), "the cache has not synced")
		case path == "/openapi.json":
			setRouteLabel(r, path)
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeError(w, newError(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "method "+truncate(r.Method, 16)+" is not allowed on /openapi.json; allowed: GET", nil))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(OpenAPIDocument)
		case strings.HasPrefix(path, "/v1/"):
			s.inFlight.serve(w, r, s.serveAPI)
		default:
			writeError(w, notFoundRoute(r))
		}
	})
	return s.withRequestID(s.withAccessLog(s.withRecover(dispatch)))
}

func notFoundRoute(r *http.Request) *apiError {
	return newError(http.StatusNotFound, ReasonRouteNotFound, "no such API route: "+truncate(r.URL.Path, 256), nil)
}

// serveAPI serves every /v1/ path: route, authenticate, rate-limit, map the
// project, authorize, then run the operation.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, notFoundRoute(r))
		return
	}
	setRouteLabel(r, rt.template())
	allowed := rt.allowedMethods()
	if !slices.Contains(allowed, r.Method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, newError(http.StatusMethodNotAllowed, ReasonMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on %s; allowed: %s", truncate(r.Method, 16), rt.template(), strings.Join(allowed, ", ")), nil))
		return
	}
	user, ok := s.authenticateGuarded(w, r)
	if !ok {
		return
	}
	setUser(r, user.User.GetName())
	if retry, limited := s.rate.limit("user:" + user.User.GetName()); limited {
		writeRateLimited(w, retry)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	op := &operation{s: s, w: w, r: r.WithContext(ctx), rt: rt, user: user}
	if err := op.run(); err != nil {
		op.fail(err)
	}
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// --- middleware ---

type ctxKey int

const requestInfoKey ctxKey = iota

// requestInfo is what the access log and the metrics learn while a request is served.
type requestInfo struct {
	mu    sync.Mutex
	id    string
	route string
	user  string
}

func infoOf(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

func setRouteLabel(r *http.Request, route string) {
	ri := infoOf(r)
	ri.mu.Lock()
	ri.route = route
	ri.mu.Unlock()
}

func setUser(r *http.Request, user string) {
	ri := infoOf(r)
	ri.mu.Lock()
	ri.user = user
	ri.mu.Unlock()
}

func (s *Server) log(r *http.Request) logr.Logger {
	return s.base.WithValues("requestID", infoOf(r).id)
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

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		ri := &requestInfo{id: id, route: "other"}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey, ri)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

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
		ri := infoOf(r)
		ri.mu.Lock()
		route, user := ri.route, ri.user
		ri.mu.Unlock()
		observe(route, r.Method, rec.status, elapsed)
		s.base.Info("request", "requestID", ri.id, "method", r.Method, "path", truncate(r.URL.Path, 256),
			"route", route, "status", rec.status, "bytes", rec.bytes, "duration", elapsed.String(),
			"user", user, "remote", remoteHost(r))
	})
}

func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log(r).Error(fmt.Errorf("panic: %v", v), "the request handler panicked")
				writeError(w, internalError())
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func internalError() *apiError {
	return newError(http.StatusInternalServerError, ReasonInternal, "internal error; try again later", nil)
}
