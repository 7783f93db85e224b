package packaging

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/medseg/medseg/controllers"
)

// metricNames parses a PromQL expression and returns the metric names it reads.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := metricsql.Parse(expr)
	if err != nil {
		t.Fatalf("%q does not parse: %v", expr, err)
	}
	if metricsql.IsLikelyInvalid(e) {
		t.Errorf("%q is likely invalid PromQL (a range function over an instant vector)", expr)
	}
	var out []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		if me, ok := x.(*metricsql.MetricExpr); ok {
			for _, group := range me.LabelFilterss {
				for _, f := range group {
					if f.Label == "__name__" {
						out = append(out, f.Value)
					}
				}
			}
		}
	})
	return out
}

// TestAlertsAndDashboardUseExportedMetrics renders the PrometheusRule and the Grafana dashboard,
// parses every expression, and checks each metric name it reads against the metrics the operator
// registers (controllers.MetricNames): an alert on a metric nobody exports never fires.
func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	exported := controllers.MetricNames()
	if got := metricNames(t, `sum(rate(medseg_nonexistent_total[5m]))`); len(got) != 1 || slices.Contains(exported, got[0]) {
		t.Fatalf("the checker must see an unknown name: %v", got)
	}
	objs, stderr, err := helmTemplate(t, "prometheusRule.enabled=true", "grafanaDashboard.enabled=true")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	exprs := map[string]string{} // where → expression
	rules := byKind(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("want one PrometheusRule, got %d", len(rules))
	}
	groups, _, _ := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
	var alerts []string
	for _, g := range groups {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			m := r.(map[string]any)
			alerts = append(alerts, m["alert"].(string))
			exprs["alert "+m["alert"].(string)] = m["expr"].(string)
		}
	}
	for _, want := range []string{"MedsegDevicesNotSegmented", "MedsegZoneNotIsolated", "MedsegDriftRepairsHigh", "MedsegReconcileErrors",
		"MedsegGatewayNearPolicyMapCapacity", "MedsegApprovalEndingSoon", "MedsegFeedStale"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	var dashboard string
	for _, cm := range byKind(objs, "ConfigMap") {
		if s, ok, _ := unstructured.NestedString(cm.Object, "data", "medseg.json"); ok {
			dashboard = s
		}
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(dashboard), &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("the dashboard ConfigMap holds no dashboard: %v", err)
	}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			exprs["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for where, expr := range exprs {
		names := metricNames(t, expr)
		if len(names) == 0 && !strings.Contains(expr, "time()") {
			t.Errorf("%s reads no metric: %q", where, expr)
		}
		for _, n := range names {
			if !slices.Contains(exported, n) {
				t.Errorf("%s reads %s, which medseg does not export (it exports %v)", where, n, exported)
			}
		}
	}
}
