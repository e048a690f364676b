package promql

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

func TestAlertExpressionsParse(t *testing.T) {
	groups := alertRules(t)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			expr, err := promqlParser.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			if len(metricNames(expr)) == 0 {
				t.Errorf("%s selects no metric: %s", r.Alert, r.Expr)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("%s has no %s", r.Alert, key)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
}

func TestDashboardExpressionsParse(t *testing.T) {
	for _, q := range dashboardQueries(t) {
		expr, err := promqlParser.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("panel %q: %v: %s", q.panel, err, q.expr)
			continue
		}
		if len(metricNames(expr)) == 0 {
			t.Errorf("panel %q selects no metric: %s", q.panel, q.expr)
		}
	}
}

// TestEveryAlertHasARunbook: each alert's runbook_url points at a section
// of docs/runbooks.md that exists.
func TestEveryAlertHasARunbook(t *testing.T) {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	runbooks, err := os.ReadFile(filepath.Join(root, "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			if !strings.Contains(string(runbooks), "\n## "+r.Alert+"\n") {
				t.Errorf("docs/runbooks.md has no section \"## %s\"", r.Alert)
			}
			if want := "docs/runbooks.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("%s: runbook_url %q does not end with %s", r.Alert, r.Annotations["runbook_url"], want)
			}
		}
	}
}
