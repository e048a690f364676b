package promql

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/api"
	"github.com/k0rdent-ai/instance-operator/internal/metricsserving"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// prometheusMade are series Prometheus makes itself rather than scrapes.
var prometheusMade = map[string]bool{"up": true}

// labelsSetOnFailure are labels whose values a healthy run does not export
// (outcome="timeout", code="503", a Stalled reason); a selector's other
// equality matchers (controller="instance", name="<lease>") must match a
// scraped series.
var labelsSetOnFailure = map[string]bool{"job": true, "namespace": true, "outcome": true, "code": true,
	"reason": true, "status": true, "type": true, "result": true}

// TestEveryMetricNamedByRulesAndDashboardIsExported runs a manager like
// cmd/main.go's (controllers, REST API, leader election) against a real
// kube-apiserver, gives it a running, a waiting and a refused instance and
// an API request, scrapes its metrics endpoint, and fails for every metric
// an alert or a dashboard panel selects that the manager does not export.
func TestEveryMetricNamedByRulesAndDashboardIsExported(t *testing.T) {
	selectors := map[string][]*parser.VectorSelector{}
	addSelectors := func(where, src string) {
		expr, err := promqlParser.ParseExpr(src)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !prometheusMade[vs.Name] {
				selectors[where] = append(selectors[where], vs)
			}
			return nil
		})
	}
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			addSelectors("alert "+r.Alert, r.Expr)
		}
	}
	for _, q := range dashboardQueries(t) {
		addSelectors(fmt.Sprintf("panel %q", q.panel), q.expr)
	}

	metricsURL := startManager(t)
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		series := scrape(t, metricsURL)
		missing = missing[:0]
		for where, sels := range selectors {
			for _, vs := range sels {
				if !exported(series, vs) {
					missing = append(missing, fmt.Sprintf("%s: %s", where, vs))
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not exported by the manager: %s", m)
	}
}

// exported reports whether a scraped series has the selector's metric name
// and every equality matcher of a label a healthy run sets.
func exported(series []labels.Labels, vs *parser.VectorSelector) bool {
	for _, s := range series {
		if s.Get(labels.MetricName) != vs.Name {
			continue
		}
		ok := true
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName || labelsSetOnFailure[m.Name] || m.Type != labels.MatchEqual {
				continue
			}
			ok = ok && s.Get(m.Name) == m.Value
		}
		if ok {
			return true
		}
	}
	return false
}

// scrape reads the manager's metrics as series, histograms and summaries
// split into the _bucket, _count and _sum series Prometheus stores.
func scrape(t *testing.T, url string) []labels.Labels {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s: %s", resp.Status, body)
	}
	textParser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := textParser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out []labels.Labels
	for name, f := range families {
		for _, m := range f.GetMetric() {
			b := labels.NewBuilder(labels.EmptyLabels())
			for _, l := range m.GetLabel() {
				b.Set(l.GetName(), l.GetValue())
			}
			names := []string{name}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				names = []string{name + "_bucket", name + "_count", name + "_sum"}
			case dto.MetricType_SUMMARY:
				names = []string{name, name + "_count", name + "_sum"}
			}
			for _, n := range names {
				b.Set(labels.MetricName, n)
				out = append(out, b.Labels())
			}
		}
	}
	return out
}

// startManager starts the operator's manager over a simulated cloud with
// room for one g1-xlarge, creates a running, a waiting and a refused
// instance, calls the REST API once, and returns the metrics URL.
func startManager(t *testing.T) string {
	t.Helper()
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	cfg := simulated.DefaultConfig()
	cfg.Latencies = simulated.Latencies{}
	cfg.InstanceTypes = map[string]int{"g1-xlarge": 1}
	cfg.StateDir = t.TempDir()
	cloud, err := simulated.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr, apiAddr := freeAddress(t), freeAddress(t)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                  env.Scheme,
		Metrics:                 metricsserving.Flags{BindAddress: metricsAddr}.Options(),
		HealthProbeBindAddress:  "0",
		LeaderElection:          true,
		LeaderElectionID:        "instance-operator.compute.k0rdent.ai",
		LeaderElectionNamespace: "default",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.InstanceReconciler{Provider: cloud, Options: controllers.DefaultOptions()}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	apiOpts := api.DefaultOptions()
	apiOpts.BindAddress = apiAddr
	if _, err := api.AddToManager(mgr, apiOpts); err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr)
	ctx := context.Background()

	const ns = "scraped"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]string{"first": "g1-xlarge", "second": "g1-xlarge", "refused": "no-such-type"} {
		inst := &computev1alpha1.Instance{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: computev1alpha1.InstanceSpec{
				Type:  "/v1/regions/us-texas-1/zones/us1-a/instance-types/" + typ,
				Disks: []computev1alpha1.Disk{{Source: "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3", Boot: true, SizeGb: 50}},
			},
		}
		if err := env.Client.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
	}
	// An unauthenticated call is a request the API counts (401).
	waitFor(t, "the REST API", func() bool {
		resp, err := http.Get("http://" + apiAddr + "/v1/regions/us-texas-1/projects/p/compute/instances/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	return "http://" + metricsAddr + "/metrics"
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never came up", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
