// Command simcloud serves the simulated cloud over HTTP, as a real cloud is
// reached: the manager's `simulated` provider calls it with --sim-url. It
// keeps its machines in a journal under --sim-state-dir, so a restarted
// service (or a rescheduled pod with its volume) finds them again; every
// manager replica shares this one cloud. Capacity, catalog and faults are
// set by the --sim-* flags at start and by PUT /v1/faults and
// PUT /v1/capacity while it runs.
//
// Every route but /healthz needs a bearer token that kube-apiserver's
// TokenReview accepts for --audience: the controllers' service account
// (--caller-service-accounts) makes the provider calls, an admin's
// (--admin-service-accounts) sets faults and capacity, and either lists
// the machines, without their instanceMetadata values. The cloud's own
// kube-apiserver credential (in a cluster, its service account, bound to
// system:auth-delegator) creates the TokenReviews.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/simcloud"
	"github.com/k0rdent-ai/instance-operator/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "simcloud:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := simulated.DefaultConfig()
	cfg.StateDir = "/var/lib/simcloud"
	cfg.BindFlags(flag.CommandLine)
	addr := flag.String("bind-address", ":9090", "Where the simulated cloud listens, host:port.")
	healthAddr := flag.String("health-bind-address", "", "Where /healthz alone is also served, host:port, so a NetworkPolicy can open it to the kubelet and keep the cloud's port to its callers; empty: none.")
	audience := flag.String("audience", simcloud.DefaultAudience, "The audience a caller's service-account token must be minted for.")
	callers := flag.String("caller-service-accounts", "", "Comma-separated <namespace>/<name> of the service accounts that make provider calls (the controllers').")
	admins := flag.String("admin-service-accounts", "", "Comma-separated <namespace>/<name> of the service accounts that may set faults and capacity and fail hosts.")
	cacheTTL := flag.Duration("token-cache-ttl", 10*time.Second, "How long a TokenReview's answer is cached: a revoked token works for at most this long.")
	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	printVersion := flag.Bool("version", false, "Print the version, commit and commit date, and exit.")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.String())
		return nil
	}
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithName("simcloud")

	access, err := accessFor(*audience, *callers, *admins, *cacheTTL)
	if err != nil {
		return err
	}
	cloud, err := simulated.New(cfg)
	if err != nil {
		return fmt.Errorf("failed to open the simulated cloud: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *addr, err)
	}
	log.Info("serving the simulated cloud", "address", ln.Addr().String(), "stateDir", cfg.StateDir,
		"machines", len(cloud.Machines()), "faults", cloud.Faults(), "version", version.Version,
		"audience", *audience, "callers", access.Callers, "admins", access.Admins)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *healthAddr != "" {
		if err := serveHealth(ctx, *healthAddr); err != nil {
			return err
		}
	}
	return simcloud.NewServer(cloud, log, cfg.Seed, access).Serve(ctx, ln)
}

// serveHealth answers GET /healthz on addr until ctx ends.
func serveHealth(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+simcloud.PathHealth, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

// accessFor authenticates by TokenReview with the kube-apiserver of
// --kubeconfig, $KUBECONFIG or the pod's service account, and admits the
// service accounts named.
func accessFor(audience, callers, admins string, cacheTTL time.Duration) (simcloud.Access, error) {
	var access simcloud.Access
	var err error
	if access.Callers, err = serviceAccountUsers(callers); err != nil {
		return access, fmt.Errorf("bad --caller-service-accounts: %w", err)
	}
	if access.Admins, err = serviceAccountUsers(admins); err != nil {
		return access, fmt.Errorf("bad --admin-service-accounts: %w", err)
	}
	if len(access.Callers) == 0 {
		return access, fmt.Errorf("--caller-service-accounts names nobody: no controller could call the cloud")
	}
	kube, err := ctrlconfig.GetConfig()
	if err != nil {
		return access, fmt.Errorf("failed to find a kube-apiserver for TokenReviews: %w", err)
	}
	if access.Authenticator, err = simcloud.NewTokenReviewAuthenticator(kube, audience, cacheTTL); err != nil {
		return access, err
	}
	return access, nil
}

// serviceAccountUsers turns "ns/name,ns/name" into the users'
// names as TokenReview reports them.
func serviceAccountUsers(list string) ([]string, error) {
	var out []string
	for _, sa := range strings.Split(list, ",") {
		if sa = strings.TrimSpace(sa); sa == "" {
			continue
		}
		ns, name, ok := strings.Cut(sa, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("%q is not <namespace>/<name>", sa)
		}
		out = append(out, serviceaccount.MakeUsername(ns, name))
	}
	return out, nil
}
