package controllers_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/controllers"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

var update = flag.Bool("update", false, "rewrite testdata/instances from a fresh capture")

const capturedDir = "testdata/instances"

// healthCase is what Argo CD's Lua health check (config/argocd) and k0rdent's
// health rule (config/k0rdent-health) must say of an Instance captured in
// one state. docs/operations.md ("Argo CD, Flux and k0rdent health") shows the same table.
type healthCase struct {
	argoStatus, argoMessage string
	k0rdentHealthy          bool
	k0rdentMessage          string
}

var healthCases = map[string]healthCase{
	"new":                           {"Progressing", "Waiting for the operator to report", false, "has not reported a status"},
	"provisioning":                  {"Progressing", "Progressing: ", false, "reconciling (Progressing)"},
	"staging":                       {"Progressing", "Progressing: ", false, "reconciling (Progressing)"},
	"running":                       {"Healthy", "Running: ", true, ""},
	"repairing":                     {"Progressing", "Progressing: ", false, "reconciling (Progressing)"},
	"stopping":                      {"Progressing", "Progressing: ", false, "reconciling (Progressing)"},
	"stopped":                       {"Suspended", "Stopped: ", true, ""},
	"suspending":                    {"Progressing", "Progressing: ", false, "reconciling (Progressing)"},
	"suspended":                     {"Suspended", "Suspended: ", true, ""},
	"generation-not-observed":       {"Progressing", "Waiting for the operator to observe generation 2 (observed 1)", false, "generation 2 not yet observed"},
	"paused":                        {"Suspended", "Paused: PausedByAnnotation", true, ""},
	"paused-with-a-change":          {"Suspended", "Paused: PausedByAnnotation", false, "not yet observed by the operator"},
	"deleting":                      {"Progressing", "The instance is being deleted", true, ""},
	"waiting-for-capacity":          {"Progressing", "WaitingForCapacity: ", false, "reconciling (WaitingForCapacity)"},
	"stalled-provider-rejected":     {"Degraded", "ProviderRejected: ", false, "stalled (ProviderRejected)"},
	"stalled-provisioning-deadline": {"Degraded", "ProvisioningDeadlineExceeded: ", false, "stalled (ProvisioningDeadlineExceeded)"},
}

// TestHealthOfCapturedInstances checks the shipped Argo CD and k0rdent health
// rules against the Instances in testdata, as the envtest suite captured them.
func TestHealthOfCapturedInstances(t *testing.T) {
	script, rule := argoHealthScript(t), k0rdentHealthRule(t)
	files, err := filepath.Glob(filepath.Join(capturedDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		seen = append(seen, name)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		checkHealth(t, name, obj, script, rule)
	}
	for name := range healthCases {
		if !slices.Contains(seen, name) {
			t.Errorf("no %s/%s.json: run go test ./controllers -run TestHealthOfFreshlyCapturedInstances -update", capturedDir, name)
		}
	}
}

// TestHealthOfFreshlyCapturedInstances drives instances through every state
// again and checks the rules on what the kube-apiserver holds now, so that a
// change of the operator's conditions cannot leave the testdata (and the
// rules tested against it) silently stale. -update rewrites the testdata.
func TestHealthOfFreshlyCapturedInstances(t *testing.T) {
	script, rule := argoHealthScript(t), k0rdentHealthRule(t)
	captured := captureInstances(t)
	for name := range healthCases {
		if _, ok := captured[name]; !ok {
			t.Errorf("the capture has no %q instance", name)
		}
	}
	for name, obj := range captured {
		checkHealth(t, name, obj, script, rule)
	}
	if !*update {
		return
	}
	if err := os.MkdirAll(capturedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, obj := range captured {
		data, err := json.MarshalIndent(obj.Object, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(capturedDir, name+".json"), append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func checkHealth(t *testing.T, name string, obj *unstructured.Unstructured, script string, rule healthRule) {
	t.Helper()
	want, ok := healthCases[name]
	if !ok {
		t.Errorf("%s: no expected health in healthCases", name)
		return
	}
	status, message := argoHealth(t, script, obj)
	t.Logf("%s: Argo CD %s %q", name, status, message)
	if status != want.argoStatus || !strings.Contains(message, want.argoMessage) {
		t.Errorf("%s: Argo CD health %s %q, want %s containing %q", name, status, message, want.argoStatus, want.argoMessage)
	}
	healthy, why := rule.evaluate(t, obj)
	if healthy != want.k0rdentHealthy || !strings.Contains(why, want.k0rdentMessage) {
		t.Errorf("%s: k0rdent health %v %q, want %v containing %q", name, healthy, why, want.k0rdentHealthy, want.k0rdentMessage)
	}
}

// captureInstances drives instances with the simulated cloud through every
// state of healthCases and returns each as the kube-apiserver holds it.
func captureInstances(t *testing.T) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	capture := func(h *harness, instance, as string) {
		t.Helper()
		inst, err := h.get(instance)
		if err != nil {
			t.Fatal(err)
		}
		inst.ManagedFields = nil
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(inst)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{Object: u}
		obj.SetGroupVersionKind(computev1alpha1.GroupVersion.WithKind("Instance"))
		// Through JSON, so numbers are int64 as in a live object.
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		fresh := &unstructured.Unstructured{}
		if err := fresh.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		out[as] = fresh
	}
	ctx := context.Background()
	isTrue := func(condType string) func(*computev1alpha1.Instance) bool {
		return func(i *computev1alpha1.Instance) bool {
			for _, c := range i.Status.Conditions {
				if c.Type == condType {
					return c.Status == metav1.ConditionTrue
				}
			}
			return false
		}
	}

	// One machine through its lifecycle, one step of fake time at a time.
	h := newHarness(t, nil)
	h.create(h.newInstance("vm"))
	h.waitLifecycle("vm", computev1alpha1.LifecycleProvisioning)
	capture(h, "vm", "provisioning")
	h.clock.Step(step)
	h.waitLifecycle("vm", computev1alpha1.LifecycleStaging)
	capture(h, "vm", "staging")
	h.clock.Step(step)
	inst := h.waitLifecycle("vm", computev1alpha1.LifecycleRunning)
	capture(h, "vm", "running")
	if err := h.cloud().FailHost(inst.Status.Machine.ID); err != nil {
		t.Fatal(err)
	}
	h.waitLifecycle("vm", computev1alpha1.LifecycleRepairing)
	capture(h, "vm", "repairing")
	h.clock.Step(step)
	h.waitLifecycle("vm", computev1alpha1.LifecycleRunning)
	h.update("vm", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	h.waitLifecycle("vm", computev1alpha1.LifecycleStopping)
	capture(h, "vm", "stopping")
	h.clock.Step(step)
	h.waitLifecycle("vm", computev1alpha1.LifecycleTerminated)
	capture(h, "vm", "stopped")
	h.update("vm", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	h.waitLifecycle("vm", computev1alpha1.LifecycleStaging)
	h.clock.Step(step)
	h.waitLifecycle("vm", computev1alpha1.LifecycleRunning)
	h.update("vm", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateSuspended })
	h.waitLifecycle("vm", computev1alpha1.LifecycleSuspending)
	capture(h, "vm", "suspending")
	h.clock.Step(step)
	h.waitLifecycle("vm", computev1alpha1.LifecycleSuspended)
	capture(h, "vm", "suspended")

	// With no operator running: a change it has not seen, and an instance
	// it never saw.
	h.create(h.newInstance("idle"))
	h.waitLifecycle("idle", computev1alpha1.LifecycleProvisioning)
	h.clock.Step(step)
	h.waitLifecycle("idle", computev1alpha1.LifecycleStaging)
	h.clock.Step(step)
	h.waitLifecycle("idle", computev1alpha1.LifecycleRunning)
	h.stop()
	h.update("idle", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateStopped })
	capture(h, "idle", "generation-not-observed")
	h.create(h.newInstance("new"))
	capture(h, "new", "new")
	h.start()
	h.waitLifecycle("idle", computev1alpha1.LifecycleStopping)

	// Paused, then changed while paused.
	h.update("vm", func(i *computev1alpha1.Instance) {
		i.Annotations = map[string]string{computev1alpha1.PausedAnnotation: "true"}
	})
	h.waitFor("vm", "Paused", isTrue(computev1alpha1.ConditionPaused))
	capture(h, "vm", "paused")
	h.update("vm", func(i *computev1alpha1.Instance) { i.Spec.PowerState = computev1alpha1.PowerStateRunning })
	h.waitFor("vm", "changed while paused", func(i *computev1alpha1.Instance) bool {
		return i.Generation > i.Status.ObservedGeneration && isTrue(computev1alpha1.ConditionPaused)(i)
	})
	capture(h, "vm", "paused-with-a-change")

	// Being deleted: the machine stops first, which takes a step.
	h.clock.Step(step)
	h.waitLifecycle("idle", computev1alpha1.LifecycleTerminated)
	inst, err := h.get("idle")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.Delete(ctx, inst); err != nil {
		t.Fatal(err)
	}
	h.waitFor("idle", "deleting", func(i *computev1alpha1.Instance) bool {
		return !i.DeletionTimestamp.IsZero() && i.Status.Lifecycle.StatusMessage != ""
	})
	capture(h, "idle", "deleting")
	h.stop()

	// Refused by the cloud.
	h = newHarness(t, nil)
	bad := h.newInstance("bad")
	bad.Spec.Type = "/v1/regions/us-texas-1/zones/us1-a/instance-types/no-such-type"
	h.create(bad)
	h.waitFor("bad", "Stalled", isTrue(computev1alpha1.ConditionStalled))
	capture(h, "bad", "stalled-provider-rejected")
	h.stop()

	// No room in the cloud, then past the provisioning deadline.
	h = newHarness(t, func(c *simulated.Config, _ *controllers.Options) {
		c.Latencies = simulated.Latencies{}
		c.InstanceTypes = map[string]int{"g1-xlarge": 0}
	})
	h.create(h.newInstance("waiting"))
	h.waitFor("waiting", "waiting for capacity", func(i *computev1alpha1.Instance) bool {
		return strings.HasPrefix(i.Status.Lifecycle.StatusMessage, "waiting for capacity")
	})
	capture(h, "waiting", "waiting-for-capacity")
	h.clock.Step(11 * step)
	h.waitFor("waiting", "Stalled", isTrue(computev1alpha1.ConditionStalled))
	capture(h, "waiting", "stalled-provisioning-deadline")
	return out
}

// argoHealthScript is the Lua of config/argocd's argocd-cm, as rendered.
func argoHealthScript(t *testing.T) string {
	t.Helper()
	const key = "resource.customizations.health.compute.k0rdent.ai_Instance"
	for _, u := range env.Kustomize(t, "argocd") {
		if u.GetKind() == "ConfigMap" && u.GetName() == "argocd-cm" {
			if script, ok, _ := unstructured.NestedString(u.Object, "data", key); ok {
				return script
			}
		}
	}
	t.Fatalf("config/argocd renders no argocd-cm with %s", key)
	return ""
}

// argoHealth runs a health script as Argo CD runs one from argocd-cm: a
// gopher-lua state with only the base, table and package libraries, the
// object as the global obj, and the returned table's status and message.
func argoHealth(t *testing.T, script string, obj *unstructured.Unstructured) (status, message string) {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			t.Fatal(err)
		}
	}
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("%s: the health script failed: %v", obj.GetName(), err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("%s: the health script returned %s, not a table", obj.GetName(), l.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message"))
}

// toLua converts an unstructured value to Lua as Argo CD does: maps and
// slices to tables, numbers to LNumber, null to nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for k, item := range v {
			tbl.RawSetString(k, toLua(l, item))
		}
		return tbl
	case []any:
		tbl := l.CreateTable(len(v), 0)
		for _, item := range v {
			tbl.Append(toLua(l, item))
		}
		return tbl
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// healthRule is one rule of a kcm health-rule ConfigMap's rules list.
type healthRule struct {
	Group, Version, Kind, Scope string
	Healthy, Message            string
	healthy, message            cel.Program
}

// k0rdentHealthRule is the Instance rule of config/k0rdent-health, compiled
// in the CEL environment kcm's verifier uses: obj as a dynamic value, and
// the ext.Strings library.
func k0rdentHealthRule(t *testing.T) healthRule {
	t.Helper()
	var rules []healthRule
	for _, u := range env.Kustomize(t, "k0rdent-health") {
		if u.GetLabels()["k0rdent.mirantis.com/health-rule-target"] == "" {
			t.Errorf("ConfigMap %s has no k0rdent.mirantis.com/health-rule-target label", u.GetName())
		}
		data, _, _ := unstructured.NestedString(u.Object, "data", "rules")
		var docs []struct {
			Group, Version, Kind, Scope, Healthy, Message string
		}
		if err := yaml.Unmarshal([]byte(data), &docs); err != nil {
			t.Fatalf("rules of %s: %v", u.GetName(), err)
		}
		for _, d := range docs {
			rules = append(rules, healthRule{Group: d.Group, Version: d.Version, Kind: d.Kind, Scope: d.Scope, Healthy: d.Healthy, Message: d.Message})
		}
	}
	celEnv, err := cel.NewEnv(cel.Variable("obj", cel.DynType), ext.Strings())
	if err != nil {
		t.Fatal(err)
	}
	compile := func(src string) cel.Program {
		ast, iss := celEnv.Compile(src)
		if iss != nil && iss.Err() != nil {
			t.Fatalf("compile %q: %v", src, iss.Err())
		}
		prg, err := celEnv.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		return prg
	}
	for _, r := range rules {
		if r.Group == computev1alpha1.GroupVersion.Group && r.Version == computev1alpha1.GroupVersion.Version &&
			r.Kind == "Instance" && r.Scope == "Namespaced" {
			r.healthy, r.message = compile(r.Healthy), compile(r.Message)
			return r
		}
	}
	t.Fatalf("config/k0rdent-health has no Namespaced Instance rule for %s: %+v", computev1alpha1.GroupVersion, rules)
	return healthRule{}
}

// evaluate runs the rule as kcm does: healthy first, message only when not.
func (r healthRule) evaluate(t *testing.T, obj *unstructured.Unstructured) (bool, string) {
	t.Helper()
	in := map[string]any{"obj": obj.Object}
	out, _, err := r.healthy.Eval(in)
	if err != nil {
		t.Fatalf("%s: healthy: %v", obj.GetName(), err)
	}
	healthy, ok := out.Value().(bool)
	if !ok {
		t.Fatalf("%s: healthy returned %T", obj.GetName(), out.Value())
	}
	if healthy {
		return true, ""
	}
	out, _, err = r.message.Eval(in)
	if err != nil {
		t.Fatalf("%s: message: %v", obj.GetName(), err)
	}
	msg, ok := out.Value().(string)
	if !ok {
		t.Fatalf("%s: message returned %T", obj.GetName(), out.Value())
	}
	return false, msg
}
