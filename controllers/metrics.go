package controllers

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

// Outcomes of a provider call, the outcome label of the call histogram.
const (
	outcomeOK      = "ok"
	outcomeError   = "error"
	outcomeTimeout = "timeout"
)

// The operator's Prometheus metrics, served on the manager's metrics endpoint.
var (
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
		Help:    "Latency of provider calls, by provider, operation and outcome (ok, error, timeout).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	}, []string{"provider", "operation", "outcome"})
	providerCallErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "instance_operator_provider_call_errors_total",
		Help: "Failed provider calls, by provider, operation and class (transient, permanent, timeout).",
	}, []string{"provider", "operation", "class"})
	// instances is computed from the informer cache at each scrape.
	instances = &instanceCollector{}
)

func init() {
	metrics.Registry.MustRegister(lifecycleTransitions, timeToRunning,
		providerCallDuration, providerCallErrors, instances)
}

// observeCall records a provider call's latency and outcome and, if it
// failed, its error class. NotFound is an answer, not a failure.
func observeCall(providerName, operation string, started time.Time, err error) {
	outcome := outcomeOK
	class := ""
	switch {
	case err == nil || errors.Is(err, provider.ErrNotFound):
	case errors.Is(err, context.DeadlineExceeded):
		outcome, class = outcomeTimeout, "timeout"
	default:
		outcome, class = outcomeError, "transient"
		if _, ok := provider.AsPermanent(err); ok {
			class = "permanent"
		}
	}
	providerCallDuration.WithLabelValues(providerName, operation, outcome).Observe(time.Since(started).Seconds())
	if class != "" {
		providerCallErrors.WithLabelValues(providerName, operation, class).Inc()
	}
}

var (
	instancesDesc = prometheus.NewDesc("instance_operator_instances",
		"Instances by lifecycle status (None before the first status), as the informer cache holds them now.",
		[]string{"status"}, nil)
	conditionsDesc = prometheus.NewDesc("instance_operator_instance_conditions",
		"Instances by condition type, status and reason, as the informer cache holds them now.",
		[]string{"type", "status", "reason"}, nil)
	stalledDesc = prometheus.NewDesc("instance_operator_instance_stalled_seconds",
		"Seconds since each Stalled instance became Stalled, by namespace, name and reason; only stalled instances appear.",
		[]string{"namespace", "name", "reason"}, nil)
	waitingDesc = prometheus.NewDesc("instance_operator_instance_waiting_for_capacity_seconds",
		"Seconds each instance waiting for capacity has been Reconciling, by namespace and name; only waiting instances appear.",
		[]string{"namespace", "name"}, nil)
)

// instanceSource is where the collector reads instances: the manager's cache,
// once this replica leads, so that only one replica reports them and a sum
// over replicas counts each instance once.
type instanceSource struct {
	reader  client.Reader
	elected <-chan struct{}
}

// instanceCollector reports the instances by state from the cache at scrape
// time, so that a restart or a missed delete cannot make the counts drift,
// and the reconcile path pays nothing for them.
type instanceCollector struct {
	source atomic.Pointer[instanceSource]
}

func (c *instanceCollector) use(reader client.Reader, elected <-chan struct{}) {
	c.source.Store(&instanceSource{reader: reader, elected: elected})
}

func (c *instanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	ch <- conditionsDesc
	ch <- stalledDesc
	ch <- waitingDesc
}

func (c *instanceCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	select {
	case <-src.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list computev1alpha1.InstanceList
	// Read-only, so the cache's objects are not copied.
	if err := src.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(instancesDesc, err)
		return
	}
	now := time.Now()
	byStatus := make(map[string]int, len(computev1alpha1.LifecycleStatuses)+1)
	for _, s := range computev1alpha1.LifecycleStatuses {
		byStatus[string(s)] = 0
	}
	type condKey struct{ typ, status, reason string }
	byCondition := map[condKey]int{}
	for i := range list.Items {
		inst := &list.Items[i]
		s := string(inst.Status.Lifecycle.Status)
		if s == "" {
			s = "None"
		}
		byStatus[s]++
		for _, cond := range inst.Status.Conditions {
			byCondition[condKey{cond.Type, string(cond.Status), cond.Reason}]++
		}
		if st := meta.FindStatusCondition(inst.Status.Conditions, computev1alpha1.ConditionStalled); st != nil && st.Status == metav1.ConditionTrue {
			ch <- prometheus.MustNewConstMetric(stalledDesc, prometheus.GaugeValue,
				since(now, st.LastTransitionTime), inst.Namespace, inst.Name, st.Reason)
		}
		if rc := meta.FindStatusCondition(inst.Status.Conditions, computev1alpha1.ConditionReconciling); rc != nil &&
			rc.Status == metav1.ConditionTrue && rc.Reason == computev1alpha1.ReasonWaitingForCapacity {
			ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue,
				since(now, rc.LastTransitionTime), inst.Namespace, inst.Name)
		}
	}
	for s, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), s)
	}
	for k, n := range byCondition {
		ch <- prometheus.MustNewConstMetric(conditionsDesc, prometheus.GaugeValue, float64(n), k.typ, k.status, k.reason)
	}
}

func since(now time.Time, t metav1.Time) float64 {
	return max(now.Sub(t.Time).Seconds(), 0)
}
