// Command manager runs the instance-operator: the Instance controllers and
// the REST API, each switched on or off by flag, in one controller-runtime
// manager.
package main

import (
	"flag"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/api"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(computev1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr       string
		probeAddr         string
		enableLeaderElec  bool
		enableControllers bool
		enableAPI         bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443",
		"Address of the Prometheus metrics endpoint; 0 turns it off.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the health probes.")
	flag.BoolVar(&enableLeaderElec, "leader-elect", false,
		"Elect a leader among replicas so that only one runs the controllers.")
	flag.BoolVar(&enableControllers, "enable-controllers", true,
		"Run the Instance controllers (leader-elected when --leader-elect is set).")
	flag.BoolVar(&enableAPI, "enable-api", true,
		"Serve the REST API (not leader-gated, so API replicas scale out).")
	// Each part binds its own flags here.
	apiOpts := api.BindFlags(flag.CommandLine)

	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                enableLeaderElec,
		LeaderElectionID:              "instance-operator.compute.k0rdent.ai",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "failed to create the manager")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "failed to add the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "failed to add the readiness check")
		os.Exit(1)
	}

	if enableControllers {
		// The controllers are set up here.
	}
	if enableAPI {
		if _, err := api.AddToManager(mgr, *apiOpts); err != nil {
			setupLog.Error(err, "failed to set up the REST API")
			os.Exit(1)
		}
	}

	setupLog.Info("starting the manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "the manager stopped with an error")
		os.Exit(1)
	}
}
