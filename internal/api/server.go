package api

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	// encodings keeps the API JSON of instanceStore's objects; nil encodes
	// every answer afresh.
	encodings *encodedCache
	// order keeps each namespace's instances in id order for list pages;
	// nil sorts a list read from the cache on every request.
	order *listOrder
	// scopes remembers which namespace serves a project; nil looks each up.
	scopes *scopeCache
	authn  authenticator.Request
	authz  authorizer.Authorizer
	rate   *rateLimiter
	// guard throttles addresses whose tokens keep failing, before review.
	guard *authGuard
	// inFlight bounds the API requests being served at once; the shares
	// bound those of one address (while being authenticated), one
	// principal and one project.
	inFlight        inFlight
	addressShares   *shares
	principalShares *shares
	projectShares   *shares
	base            logr.Logger

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
	namespaces, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{}, cache.BlockUntilSynced(false))
	if err != nil {
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
		inFlight:   newInFlight(opts.MaxRequestsInFlight),
		// nil shares (a bound of 0) leave the global bound alone.
		addressShares:   newShares(opts.MaxAuthenticationsInFlightPerAddress),
		principalShares: newShares(opts.MaxRequestsInFlightPerPrincipal),
		projectShares:   newShares(opts.MaxRequestsInFlightPerProject),
		base:            ctrl.Log.WithName("api"),
		listening:       make(chan struct{}),
		scopes:          newScopeCache(),
	}
	guard := opts.Guard
	if guard == nil {
		if guard, err = NewTokenGuard(mgr.GetConfig(), opts); err != nil {
			return nil, err
		}
		if err := mgr.Add(guard); err != nil {
			return nil, fmt.Errorf("failed to add the token guard to the manager: %w", err)
		}
	}
	s.guard = guard.g
	if _, err := namespaces.AddEventHandler(s.scopes.handler()); err != nil {
		return nil, fmt.Errorf("failed to watch namespaces: %w", err)
	}
	if withIndexer, ok := instances.(interface{ GetIndexer() toolscache.Indexer }); ok {
		s.instanceStore = withIndexer.GetIndexer()
		s.encodings = &encodedCache{store: s.instanceStore}
		if _, err := instances.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: s.encodings.forget}); err != nil {
			return nil, fmt.Errorf("failed to watch instance deletes: %w", err)
		}
		s.order = newListOrder(s.instanceStore)
		if _, err := instances.AddEventHandler(s.order.handler()); err != nil {
			return nil, fmt.Errorf("failed to watch instances for list order: %w", err)
		}
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
		ConnContext:       withConnectionMemo,
	}
	if !s.opts.EnableHTTP2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.opts.BindAddress, err)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case s.opts.TLSCertFile != "":
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
		tlsConfig.GetCertificate = watcher.GetCertificate
	case s.opts.TLSSelfSigned:
		cert, err := s.selfSignedCertificate(ctx, cs)
		if err != nil {
			_ = ln.Close()
			return err
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	default:
		tlsConfig = nil
	}
	if tlsConfig != nil {
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
	s.base.Info("serving the REST API", "address", s.addr, "tls", tlsConfig != nil, "selfSignedCertificate", s.opts.TLSSelfSigned)
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

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
