package api

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The API's metrics, served by the manager's metrics endpoint.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "compute_api_requests_total",
		Help: "REST API requests by route template, method and status code.",
	}, []string{"route", "method", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "compute_api_request_duration_seconds",
		Help:    "REST API request latency by route template, method and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(requestsTotal, requestDuration)
}

var knownMethods = map[string]bool{"GET": true, "POST": true, "PATCH": true, "DELETE": true, "PUT": true, "HEAD": true, "OPTIONS": true}

// series are the counter and histogram of one route, method and code.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

type seriesKey struct {
	route, method string
	code          int
}

// seriesCache keeps each label set's series: WithLabelValues checks and
// hashes the labels under a lock on every call. Routes and codes are few.
var seriesCache sync.Map // seriesKey -> series

func observe(route, method string, code int, elapsed time.Duration) {
	if !knownMethods[method] {
		method = "other"
	}
	key := seriesKey{route, method, code}
	v, ok := seriesCache.Load(key)
	if !ok {
		c := strconv.Itoa(code)
		v, _ = seriesCache.LoadOrStore(key, series{
			requests: requestsTotal.WithLabelValues(route, method, c),
			duration: requestDuration.WithLabelValues(route, method, c),
		})
	}
	ss := v.(series)
	ss.requests.Inc()
	ss.duration.Observe(elapsed.Seconds())
}
