package controllers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// The operator's Prometheus metrics, served on the manager's metrics endpoint.
var (
	instancesByStatus = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "instance_operator_instances",
		Help: "Instances by lifecycle status, as this operator last reconciled them.",
	}, []string{"status"})
	lifecycleTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "instance_operator_lifecycle_transitions_total",
		Help: "Lifecycle status changes of instances, by the status left and the status entered.",
	}, []string{"from", "to"})
	timeToRunning = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "instance_operator_time_to_running_seconds",
		Help:    "Time from an instance's creation to its first RUNNING.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
	})
	providerCallDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "instance_operator_provider_call_duration_seconds",
		Help:    "Latency of provider calls, by provider and operation.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	}, []string{"provider", "operation"})
	providerCallErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "instance_operator_provider_call_errors_total",
		Help: "Failed provider calls, by provider, operation and class (transient, permanent, timeout).",
	}, []string{"provider", "operation", "class"})
)

func init() {
	metrics.Registry.MustRegister(instancesByStatus, lifecycleTransitions, timeToRunning,
		providerCallDuration, providerCallErrors)
	for _, s := range computev1alpha1.LifecycleStatuses {
		instancesByStatus.WithLabelValues(string(s)).Set(0)
	}
}

// statusCounts keeps the lifecycle status of every instance reconciled, so
// that the per-status gauge costs O(1) per reconcile rather than a list.
var statusCounts = struct {
	sync.Mutex
	of map[types.NamespacedName]computev1alpha1.LifecycleStatus
}{of: map[types.NamespacedName]computev1alpha1.LifecycleStatus{}}

// countStatus records the instance's current status; "" forgets the instance.
func countStatus(key types.NamespacedName, status computev1alpha1.LifecycleStatus) {
	statusCounts.Lock()
	defer statusCounts.Unlock()
	old, known := statusCounts.of[key]
	if known && old == status {
		return
	}
	if known && old != "" {
		instancesByStatus.WithLabelValues(string(old)).Dec()
	}
	if status == "" {
		delete(statusCounts.of, key)
		return
	}
	statusCounts.of[key] = status
	instancesByStatus.WithLabelValues(string(status)).Inc()
}

// observeCall records a provider call's latency and, if it failed, its error class.
func observeCall(providerName, operation string, started time.Time, err error) {
	providerCallDuration.WithLabelValues(providerName, operation).Observe(time.Since(started).Seconds())
	if err == nil || errors.Is(err, provider.ErrNotFound) {
		return
	}
	class := "transient"
	if _, ok := provider.AsPermanent(err); ok {
		class = "permanent"
	} else if errors.Is(err, context.DeadlineExceeded) {
		class = "timeout"
	}
	providerCallErrors.WithLabelValues(providerName, operation, class).Inc()
}
