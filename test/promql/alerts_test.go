package promql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

// alertCase is one alert over synthetic series (promqltest's load syntax,
// one sample a minute from time 0), evaluated every minute as Prometheus's
// rule manager would, and what fires at the end.
type alertCase struct {
	name   string
	alert  string
	series string
	until  time.Duration
	// firing are the label subsets of the alerts firing at until; none means
	// the alert must not fire.
	firing []map[string]string
	// mentions must appear in each firing alert's description.
	mentions []string
}

const job = `job="instance-operator", namespace="instance-operator-system"`

var alertCases = []alertCase{
	{
		name: "stalled instance past five minutes", alert: "InstanceStalled",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-a", name="web", reason="ProviderRejected", pod="m-1"} 0+60x20`,
		until:  10 * time.Minute, firing: []map[string]string{{"namespace": "team-a", "name": "web", "reason": "ProviderRejected"}},
		mentions: []string{"team-a/web", "ProviderRejected"},
	},
	{
		name: "stalled for four minutes only", alert: "InstanceStalled",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-a", name="web", reason="ProviderRejected"} 0+60x20`,
		until:  4 * time.Minute,
	},
	{
		name: "a deadline stall is left to its own alert", alert: "InstanceStalled",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-a", name="web", reason="ProvisioningDeadlineExceeded"} 0+60x20`,
		until:  10 * time.Minute,
	},
	{
		name: "provisioning deadline exceeded", alert: "InstanceProvisioningDeadlineExceeded",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-b", name="train", reason="ProvisioningDeadlineExceeded"} 0+60x10`,
		until:  2 * time.Minute, firing: []map[string]string{{"namespace": "team-b", "name": "train"}},
		mentions: []string{"team-b/train"},
	},
	{
		name: "deadline stall not yet held for a minute", alert: "InstanceProvisioningDeadlineExceeded",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-b", name="train", reason="ProvisioningDeadlineExceeded"} 0+60x10`,
		until:  0,
	},
	{
		name: "another stall is not a deadline", alert: "InstanceProvisioningDeadlineExceeded",
		series: `instance_operator_instance_stalled_seconds{job="instance-operator", namespace="team-b", name="train", reason="ProviderRejected"} 0+60x10`,
		until:  5 * time.Minute,
	},
	{
		name: "waiting for capacity over 30 minutes", alert: "InstanceWaitingForCapacity",
		series: `instance_operator_instance_waiting_for_capacity_seconds{job="instance-operator", namespace="team-c", name="gpu"} 1500+60x20
instance_operator_instance_waiting_for_capacity_seconds{job="instance-operator", namespace="team-c", name="young"} 0+60x20`,
		until: 6 * time.Minute, firing: []map[string]string{{"namespace": "team-c", "name": "gpu"}},
		mentions: []string{"team-c/gpu"},
	},
	{
		name: "waiting for 29 minutes", alert: "InstanceWaitingForCapacity",
		series: `instance_operator_instance_waiting_for_capacity_seconds{job="instance-operator", namespace="team-c", name="gpu"} 1500+60x20`,
		until:  4 * time.Minute,
	},
	{
		name: "a fifth of the reconciles fail", alert: "InstanceReconcileErrorsHigh",
		series: `controller_runtime_reconcile_total{` + job + `, controller="instance", result="success"} 0+80x40
controller_runtime_reconcile_total{` + job + `, controller="instance", result="error"} 0+20x40
controller_runtime_reconcile_errors_total{` + job + `, controller="instance"} 0+20x40`,
		until: 30 * time.Minute, firing: []map[string]string{{"namespace": "instance-operator-system"}},
	},
	{
		name: "5% of the reconciles fail", alert: "InstanceReconcileErrorsHigh",
		series: `controller_runtime_reconcile_total{` + job + `, controller="instance", result="success"} 0+95x40
controller_runtime_reconcile_total{` + job + `, controller="instance", result="error"} 0+5x40
controller_runtime_reconcile_errors_total{` + job + `, controller="instance"} 0+5x40`,
		until: 30 * time.Minute,
	},
	{
		name: "half of very few reconciles fail", alert: "InstanceReconcileErrorsHigh",
		series: `controller_runtime_reconcile_total{` + job + `, controller="instance", result="success"} 0+0.5x40
controller_runtime_reconcile_total{` + job + `, controller="instance", result="error"} 0+0.5x40
controller_runtime_reconcile_errors_total{` + job + `, controller="instance"} 0+0.5x40`,
		until: 30 * time.Minute,
	},
	{
		name: "a fifth of the provider's Create calls fail", alert: "InstanceProviderCallErrors",
		series: `instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Create", outcome="ok"} 0+80x40
instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Create", outcome="error"} 0+20x40
instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Get", outcome="ok"} 0+1000x40`,
		until: 25 * time.Minute, firing: []map[string]string{{"provider": "kubevirt", "operation": "Create"}},
	},
	{
		name: "5% of the provider's calls fail", alert: "InstanceProviderCallErrors",
		series: `instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Create", outcome="ok"} 0+95x40
instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Create", outcome="error"} 0+5x40`,
		until: 25 * time.Minute,
	},
	{
		name: "a provider call times out every minute", alert: "InstanceProviderCallTimeouts",
		series: `instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Stop", outcome="timeout"} 0+1x40
instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Stop", outcome="ok"} 0+100x40`,
		until: 20 * time.Minute, firing: []map[string]string{{"provider": "kubevirt", "operation": "Stop"}},
	},
	{
		name: "two timeouts in ten minutes", alert: "InstanceProviderCallTimeouts",
		series: `instance_operator_provider_call_duration_seconds_count{` + job + `, provider="kubevirt", operation="Stop", outcome="timeout"} 0+0.2x40`,
		until:  20 * time.Minute,
	},
	{
		name: "the manager went down", alert: "InstanceOperatorDown",
		series: `up{` + job + `, container="manager", pod="m-1"} 1x10 0x20`,
		until:  20 * time.Minute, firing: []map[string]string{{}},
	},
	{
		name: "the manager was never scraped", alert: "InstanceOperatorDown",
		series: `up{job="something-else", container="manager"} 1x20`,
		until:  10 * time.Minute, firing: []map[string]string{{}},
	},
	{
		name: "one replica of two is down", alert: "InstanceOperatorDown",
		series: `up{` + job + `, container="manager", pod="m-1"} 1x30
up{` + job + `, container="manager", pod="m-2"} 0x30`,
		until: 20 * time.Minute,
	},
	{
		name: "the controllers are down while the API's pods are up", alert: "InstanceOperatorDown",
		series: `up{` + job + `, container="manager", pod="m-1"} 0x30
up{` + job + `, container="api", pod="a-1"} 1x30`,
		until: 20 * time.Minute, firing: []map[string]string{{}},
	},
	{
		name: "the API's replicas went down while the controllers run", alert: "ComputeAPIDown",
		series: `up{` + job + `, container="api", pod="a-1"} 1x10 0x20
up{` + job + `, container="manager", pod="m-1"} 1x30`,
		until: 20 * time.Minute, firing: []map[string]string{{}},
	},
	{
		name: "one API replica of two is down", alert: "ComputeAPIDown",
		series: `up{` + job + `, container="api", pod="a-1"} 1x30
up{` + job + `, container="api", pod="a-2"} 0x30`,
		until: 20 * time.Minute,
	},
	{
		name: "no replica holds the lease", alert: "InstanceOperatorNoLeader",
		series: `leader_election_master_status{` + job + `, name="instance-operator.compute.k0rdent.ai", pod="m-1"} 0x30
leader_election_master_status{` + job + `, name="instance-operator.compute.k0rdent.ai", pod="m-2"} 0x30`,
		until: 10 * time.Minute, firing: []map[string]string{{"namespace": "instance-operator-system"}},
	},
	{
		name: "one replica leads", alert: "InstanceOperatorNoLeader",
		series: `leader_election_master_status{` + job + `, name="instance-operator.compute.k0rdent.ai", pod="m-1"} 0x30
leader_election_master_status{` + job + `, name="instance-operator.compute.k0rdent.ai", pod="m-2"} 1x30`,
		until: 10 * time.Minute,
	},
	{
		name: "a tenth of the API's answers are 5xx", alert: "ComputeAPIErrorRatioHigh",
		series: `compute_api_requests_total{` + job + `, route="/v1/regions/{region}/projects/{project}/compute/instances/{id}", method="GET", code="200"} 0+900x30
compute_api_requests_total{` + job + `, route="/v1/regions/{region}/projects/{project}/compute/instances/{id}", method="GET", code="503"} 0+100x30`,
		until: 20 * time.Minute, firing: []map[string]string{{"namespace": "instance-operator-system"}},
	},
	{
		name: "1% 5xx and many 4xx", alert: "ComputeAPIErrorRatioHigh",
		series: `compute_api_requests_total{` + job + `, route="/v1/regions/{region}/projects/{project}/compute/instances/{id}", method="GET", code="200"} 0+500x30
compute_api_requests_total{` + job + `, route="/v1/regions/{region}/projects/{project}/compute/instances/{id}", method="GET", code="404"} 0+490x30
compute_api_requests_total{` + job + `, route="/v1/regions/{region}/projects/{project}/compute/instances/{id}", method="GET", code="500"} 0+10x30`,
		until: 20 * time.Minute,
	},
	{
		name: "p99 over a second on one route", alert: "ComputeAPILatencyHigh",
		series: latencySeries("/v1/regions/{region}/projects/{project}/compute/instances", "0+10x30", "0+10x30", "0+100x30", "0+100x30") + "\n" +
			latencySeries("/v1/regions/{region}/projects/{project}/compute/instances/{id}", "0+100x30", "0+100x30", "0+100x30", "0+100x30"),
		until: 20 * time.Minute, firing: []map[string]string{{"route": "/v1/regions/{region}/projects/{project}/compute/instances"}},
		mentions: []string{"/v1/regions/{region}/projects/{project}/compute/instances"},
	},
	{
		name: "p99 under half a second", alert: "ComputeAPILatencyHigh",
		series: latencySeries("/v1/regions/{region}/projects/{project}/compute/instances", "0+100x30", "0+100x30", "0+100x30", "0+100x30"),
		until:  20 * time.Minute,
	},
}

// latencySeries is a request-duration histogram of one route with the
// cumulative counts of the 0.5s, 1s, 2.5s and +Inf buckets.
func latencySeries(route, le05, le1, le25, inf string) string {
	b := func(le, v string) string {
		return `compute_api_request_duration_seconds_bucket{` + job + `, route="` + route + `", method="GET", code="200", le="` + le + `"} ` + v
	}
	return strings.Join([]string{b("0.5", le05), b("1", le1), b("2.5", le25), b("+Inf", inf)}, "\n")
}

// TestAlertsFireWhenTheyShould runs each alert case in Prometheus's own
// rule engine. Every alert has a case where it fires and one where it must not.
func TestAlertsFireWhenTheyShould(t *testing.T) {
	byName := map[string]*rules.AlertingRule{}
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", r.Alert, err)
			}
			byName[r.Alert] = rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, promslog.NewNopLogger())
		}
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, c := range alertCases {
		if len(c.firing) > 0 {
			fires[c.alert] = true
		} else {
			quiet[c.alert] = true
		}
	}
	for name := range byName {
		if !fires[name] || !quiet[name] {
			t.Errorf("%s needs a case where it fires and one where it does not", name)
		}
	}

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	for _, c := range alertCases {
		t.Run(c.name, func(t *testing.T) {
			proto, ok := byName[c.alert]
			if !ok {
				t.Fatalf("no alert %s", c.alert)
			}
			// A fresh rule: an alert's pending state is per rule.
			rule := rules.NewAlertingRule(proto.Name(), proto.Query(), proto.HoldDuration(), proto.KeepFiringFor(),
				proto.Labels(), proto.Annotations(), labels.EmptyLabels(), "", true, promslog.NewNopLogger())
			storage := promqltest.LoadedStorage(t, "load 1m\n"+indent(c.series))
			query := rules.EngineQueryFunc(engine, storage)
			for at := time.Duration(0); at <= c.until; at += time.Minute {
				if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).Add(at), query, nil, 0); err != nil {
					t.Fatalf("eval at %s: %v", at, err)
				}
			}
			var firing []*rules.Alert
			for _, a := range rule.ActiveAlerts() {
				if a.State == rules.StateFiring {
					firing = append(firing, a)
				}
			}
			if len(firing) != len(c.firing) {
				var got []string
				for _, a := range firing {
					got = append(got, a.Labels.String())
				}
				t.Fatalf("%s at %s: %d firing %v, want %d %v", c.alert, c.until, len(firing), got, len(c.firing), c.firing)
			}
			for i, want := range c.firing {
				for k, v := range want {
					if got := firing[i].Labels.Get(k); got != v {
						t.Errorf("alert %s: label %s=%q, want %q", firing[i].Labels, k, got, v)
					}
				}
				desc := firing[i].Annotations.Get("description")
				for _, text := range []string{firing[i].Annotations.Get("summary"), desc} {
					if text == "" || strings.Contains(text, "error expanding template") || strings.Contains(text, "<no value>") {
						t.Errorf("annotation of %s: %q", firing[i].Labels, text)
					}
				}
				for _, m := range c.mentions {
					if !strings.Contains(desc, m) {
						t.Errorf("description %q does not name %s", desc, m)
					}
				}
			}
		})
	}
}

func indent(series string) string {
	lines := strings.Split(strings.TrimSpace(series), "\n")
	for i, l := range lines {
		lines[i] = "  " + strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}
