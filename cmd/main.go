// Command manager runs the instance-operator: the Instance controllers and
// the REST API, each switched on or off by flag, in one controller-runtime
// manager.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/api"
	"github.com/k0rdent-ai/instance-operator/internal/metricsserving"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/kubevirt"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/simcloud"
	"github.com/k0rdent-ai/instance-operator/internal/version"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(computev1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		probeAddr         string
		pprofAddr         string
		enableLeaderElec  bool
		enableControllers bool
		enableAPI         bool
	)
	metricsFlags := metricsserving.BindFlags(flag.CommandLine)
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0",
		"Address of Go's pprof endpoints (/debug/pprof/) for profiling; 0 turns them off.")
	flag.BoolVar(&enableLeaderElec, "leader-elect", false,
		"Elect a leader among replicas so that only one runs the controllers.")
	var leaseDuration, renewDeadline, retryPeriod time.Duration
	var leaderElectionNamespace string
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader election Lease; empty is the pod's own (required out of a cluster).")
	// Why these and not controller-runtime's 15s/10s/2s: the leader steps
	// down (and the process exits) when it cannot renew within the renew
	// deadline, so 15s rides out a kube-apiserver restart of ~10s without
	// restarting the manager and re-listing every Instance; a standby takes
	// over at most lease duration + retry period (~22s) after a leader dies
	// without releasing, and within a retry period (2s) after a graceful
	// stop, which releases the Lease. Reconciles are idempotent by create
	// token, so the gap costs latency, never a duplicate; the REST API is
	// served by every replica and has no gap.
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 20*time.Second,
		"How long a standby waits after the leader's last renewal before it takes over.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 15*time.Second,
		"How long the leader keeps trying to renew before it steps down; must be less than the lease duration.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second,
		"How often candidates try to acquire or renew the Lease.")
	flag.BoolVar(&enableControllers, "enable-controllers", true,
		"Run the Instance controllers (leader-elected when --leader-elect is set).")
	flag.BoolVar(&enableAPI, "enable-api", true,
		"Serve the REST API (not leader-gated, so API replicas scale out).")
	// Each part binds its own flags here.
	var (
		providerName    string
		kubevirtCatalog string
		simURL          string
		kubeAPIQPS      float64
		kubeAPIBurst    int
	)
	flag.StringVar(&providerName, "provider", simulated.Name,
		"The cloud that runs the machines: simulated (for development and tests) or kubevirt.")
	flag.StringVar(&kubevirtCatalog, "kubevirt-catalog", "",
		"With --provider=kubevirt, a catalog file of instance types and images; empty for the built-in one.")
	flag.StringVar(&simURL, "sim-url", "",
		"With --provider=simulated, the URL of the simulated cloud's service (cmd/simcloud), shared by every replica; "+
			"empty runs the cloud inside this process with the --sim-* flags.")
	simClient := simcloud.DefaultClientOptions()
	flag.StringVar(&simClient.TokenFile, "sim-token-file", "",
		"With --sim-url, a file holding the bearer token the simulated cloud authenticates this manager by "+
			"(a projected service-account token with the cloud's audience; re-read when it rotates).")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 200, "Queries per second the manager may send to the kube-apiserver.")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 400, "Burst of queries the manager may send to the kube-apiserver.")
	reconcilerOpts := controllers.DefaultOptions()
	reconcilerOpts.BindFlags(flag.CommandLine)
	simCfg := simulated.DefaultConfig()
	// The simulated cloud keeps its machines on disk by default, so that a
	// restarted operator neither loses nor duplicates them.
	simCfg.StateDir = filepath.Join(os.TempDir(), "instance-operator-simulated")
	simCfg.BindFlags(flag.CommandLine)
	apiOpts := api.DefaultOptions()
	apiOpts.BindFlags(flag.CommandLine)

	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	printVersion := flag.Bool("version", false, "Print the version, commit and commit date, and exit.")
	flag.Parse()
	if *printVersion {
		fmt.Println(version.String())
		return
	}

	// The log (one access-log line per API request among it) goes through a
	// buffer flushed every logFlushInterval and on exit, so a request does
	// not wait for a write system call; a crash that skips the flush
	// (SIGKILL, an OOM kill) loses at most that interval's lines. A Go
	// panic's own report is written by the runtime, unbuffered.
	logSink = &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(os.Stderr), Size: 256 << 10, FlushInterval: logFlushInterval}
	zapOpts.DestWriter = logSink
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")
	setupLog.Info("starting instance-operator", "version", version.Version, "commit", version.Commit, "date", version.Date)

	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(kubeAPIQPS), kubeAPIBurst
	// One bad-token guard for the REST API and the metrics port: a flood
	// on either spends the same budgets of TokenReviews.
	tokenGuard, err := api.NewTokenGuard(restConfig, apiOpts)
	if err != nil {
		setupLog.Error(err, "failed to set up the token guard")
		exit(1)
	}
	metricsFlags.Guard, apiOpts.Guard = tokenGuard, tokenGuard
	if providerName == kubevirt.Name {
		utilruntime.Must(kubevirt.AddToScheme(scheme))
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		// Nothing reads managedFields; at 10,000 instances they are the
		// largest part of the cache.
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                       metricsFlags.Options(),
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                enableLeaderElec,
		LeaderElectionID:              "instance-operator.compute.k0rdent.ai",
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		// The Lease says which process leads (its identity is a random
		// UUID), for `kubectl get lease` and the failover checks.
		LeaderElectionLabels: holderLabels(),
	})
	if err != nil {
		setupLog.Error(err, "failed to create the manager")
		exit(1)
	}
	if err := mgr.Add(tokenGuard); err != nil {
		setupLog.Error(err, "failed to add the token guard")
		exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "failed to add the health check")
		exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "failed to add the readiness check")
		exit(1)
	}

	if enableControllers {
		prov, err := newProvider(mgr, providerName, simURL, simClient, simCfg, kubevirtCatalog)
		if err != nil {
			setupLog.Error(err, "failed to set up the provider", "provider", providerName)
			exit(1)
		}
		r := &controllers.InstanceReconciler{Provider: prov, Options: reconcilerOpts}
		if err := r.SetupWithManager(mgr); err != nil {
			setupLog.Error(err, "failed to set up the Instance controller")
			exit(1)
		}
	}
	if enableAPI {
		if _, err := api.AddToManager(mgr, apiOpts); err != nil {
			setupLog.Error(err, "failed to set up the REST API")
			exit(1)
		}
	}

	setupLog.Info("starting the manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "the manager stopped with an error")
		exit(1)
	}
	exit(0)
}

// logFlushInterval bounds how long a log line waits in the buffer.
const logFlushInterval = 200 * time.Millisecond

// logSink is the log's buffer; nil before the logger is set up.
var logSink *zapcore.BufferedWriteSyncer

// exit flushes the log and ends the process with code.
func exit(code int) {
	if logSink != nil {
		_ = logSink.Stop()
	}
	os.Exit(code)
}

// newProvider builds the provider that --provider names.
func newProvider(mgr ctrl.Manager, name, simURL string, simClient simcloud.ClientOptions, simCfg simulated.Config, kubevirtCatalog string) (provider.Provider, error) {
	switch name {
	case simulated.Name:
		if simURL != "" {
			return simcloud.NewClient(simURL, simClient)
		}
		return simulated.New(simCfg)
	case kubevirt.Name:
		return kubevirt.NewForManager(mgr, kubevirtCatalog)
	}
	return nil, fmt.Errorf("unknown provider %q: use %s or %s", name, simulated.Name, kubevirt.Name)
}

// holderLabels name the process that holds the leader Lease: its host (the
// pod's name in a cluster) and its process id.
func holderLabels() map[string]string {
	host, _ := os.Hostname()
	host = strings.Trim(labelUnsafe.ReplaceAllString(host, "-"), "-._")
	if len(host) > 63 {
		host = strings.Trim(host[:63], "-._")
	}
	return map[string]string{
		"compute.k0rdent.ai/holder-host": host,
		"compute.k0rdent.ai/holder-pid":  strconv.Itoa(os.Getpid()),
	}
}

// labelUnsafe matches what a label value may not hold.
var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)
