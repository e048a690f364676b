// Command simcloud serves the simulated cloud over HTTP, as a real cloud is
// reached: the manager's `simulated` provider calls it with --sim-url. It
// keeps its machines in a journal under --sim-state-dir, so a restarted
// service (or a rescheduled pod with its volume) finds them again; every
// manager replica shares this one cloud. Capacity, catalog and faults are
// set by the --sim-* flags at start and by PUT /v1/faults and
// PUT /v1/capacity while it runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

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
	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	printVersion := flag.Bool("version", false, "Print the version, commit and commit date, and exit.")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.String())
		return nil
	}
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithName("simcloud")

	cloud, err := simulated.New(cfg)
	if err != nil {
		return fmt.Errorf("failed to open the simulated cloud: %w", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", *addr, err)
	}
	log.Info("serving the simulated cloud", "address", ln.Addr().String(), "stateDir", cfg.StateDir,
		"machines", len(cloud.Machines()), "faults", cloud.Faults(), "version", version.Version)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return simcloud.NewServer(cloud, log, cfg.Seed).Serve(ctx, ln)
}
