package promql

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

var promqlParser = parser.NewParser(parser.Options{})

// alertRules are the groups of config/prometheus's PrometheusRule, parsed
// and validated (expressions, durations, label names, annotation templates)
// by Prometheus's own rule-file loader.
func alertRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	data := readConfig(t, "prometheus", "prometheusrule.yaml")
	var pr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups json.RawMessage `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Fatalf("config/prometheus/prometheusrule.yaml: kind %q with no groups", pr.Kind)
	}
	content, err := yaml.JSONToYAML([]byte(fmt.Sprintf(`{"groups": %s}`, pr.Spec.Groups)))
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, promqlParser, promslog.NewNopLogger())
	for _, err := range errs {
		t.Errorf("config/prometheus/prometheusrule.yaml: %v", err)
	}
	if groups == nil || t.Failed() {
		t.FailNow()
	}
	return groups
}

// dashboardQuery is one PromQL target of a dashboard panel.
type dashboardQuery struct{ panel, expr string }

// grafanaVariables are the dashboard variables the queries may use, with
// the value Grafana gives them at a typical resolution.
var grafanaVariables = map[string]string{
	"$__rate_interval": "2m",
	"$__interval":      "30s",
	"$__range":         "6h",
}

var variableRE = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// dashboardQueries are the targets of config/grafana's dashboard, with
// Grafana's variables replaced so that Prometheus's parser can read them.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readConfig(t, "grafana", "instance-operator.json"), &d); err != nil {
		t.Fatal(err)
	}
	var out []dashboardQuery
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			expr := target.Expr
			for name, value := range grafanaVariables {
				expr = strings.ReplaceAll(expr, name, value)
			}
			if v := variableRE.FindString(expr); v != "" {
				t.Errorf("panel %q uses %s, which this test does not know: %s", p.Title, v, target.Expr)
			}
			out = append(out, dashboardQuery{p.Title, expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// metricNames are the metric names an expression selects.
func metricNames(expr parser.Expr) []string {
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			names = append(names, vs.Name)
		}
		return nil
	})
	sort.Strings(names)
	return names
}

func readConfig(t *testing.T, dir, file string) []byte {
	t.Helper()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
