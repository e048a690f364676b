package install

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// TestSimcloudIsClosedToAllButTheControllers: config/default and the chart
// (as "instance-operator" and as another release in another namespace)
// ship the simulated cloud locked: a NetworkPolicy admitting only the
// controllers' pods to its port, the cloud admitting only the controllers'
// service account as a caller, the controllers sending a projected token
// for its audience, and the cloud allowed to review tokens. The chart's
// simulated.networkPolicy.enabled=false drops the policy, and only that.
func TestSimcloudIsClosedToAllButTheControllers(t *testing.T) {
	renderAs := func(name, ns string, vals map[string]any) []unstructured.Unstructured {
		manifest, err := release.RenderChart(filepath.Join(root(t), release.ChartDir), name, ns, vals)
		must(t, err, "render the chart")
		objs, err := release.DecodeObjects([]byte(manifest))
		must(t, err, "decode the rendering")
		return objs
	}
	for _, c := range []struct {
		name, namespace, prefix string
		objs                    []unstructured.Unstructured
	}{
		{"config/default", "instance-operator-system", "instance-operator", kustomize(t, "default")},
		{"the chart", "instance-operator-system", "instance-operator", renderChart(t, nil)},
		{"the chart as release gpu", "compute-system", "gpu-instance-operator", renderAs("gpu", "compute-system", nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := simcloudLocked(c.objs, c.namespace, c.prefix); err != nil {
				t.Error(err)
			}
		})
	}
	open := renderAs("instance-operator", "instance-operator-system",
		map[string]any{"simulated": map[string]any{"networkPolicy": map[string]any{"enabled": false}}})
	if err := simcloudLocked(open, "instance-operator-system", "instance-operator"); err == nil || !strings.Contains(err.Error(), "no NetworkPolicy") {
		t.Errorf("with simulated.networkPolicy.enabled=false: %v, want only the NetworkPolicy missing", err)
	}
}

func simcloudLocked(objs []unstructured.Unstructured, ns, prefix string) error {
	find := func(kind, name string) *unstructured.Unstructured {
		for i := range objs {
			if objs[i].GetKind() == kind && objs[i].GetName() == name {
				return &objs[i]
			}
		}
		return nil
	}
	controllersSA := prefix + "-controller-manager"
	cloud, controllers := find("Deployment", prefix+"-simcloud"), find("Deployment", controllersSA)
	if cloud == nil || controllers == nil {
		return fmt.Errorf("no simcloud or controllers Deployment")
	}
	if sa, _, _ := unstructured.NestedString(controllers.Object, "spec", "template", "spec", "serviceAccountName"); sa != controllersSA {
		return fmt.Errorf("the controllers run as %q, want %q", sa, controllersSA)
	}
	cloudArgs := containerArgs(cloud)
	if want := "--caller-service-accounts=" + ns + "/" + controllersSA; !slices.Contains(cloudArgs, want) {
		return fmt.Errorf("the cloud's args %v lack %s", cloudArgs, want)
	}
	if want := "--admin-service-accounts=" + ns + "/" + prefix + "-simcloud-admin"; !slices.Contains(cloudArgs, want) || find("ServiceAccount", prefix+"-simcloud-admin") == nil {
		return fmt.Errorf("the cloud's args %v lack %s, or its ServiceAccount is missing", cloudArgs, want)
	}
	if err := sendsAudienceToken(controllers); err != nil {
		return err
	}
	cloudSA, _, _ := unstructured.NestedString(cloud.Object, "spec", "template", "spec", "serviceAccountName")
	crb := find("ClusterRoleBinding", prefix+"-simcloud-auth-delegator")
	if crb == nil || cloudSA != prefix+"-simcloud" {
		return fmt.Errorf("the cloud runs as %q with no ClusterRoleBinding to system:auth-delegator", cloudSA)
	}
	role, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name")
	subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	if want := []any{map[string]any{"kind": "ServiceAccount", "name": cloudSA, "namespace": ns}}; role != "system:auth-delegator" || !reflect.DeepEqual(subjects, want) {
		return fmt.Errorf("the cloud's binding gives %s to %v, want system:auth-delegator to %v", role, subjects, want)
	}
	return policyAdmitsOnlyControllers(find("NetworkPolicy", prefix+"-simcloud"))
}

func containerArgs(d *unstructured.Unstructured) []string {
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	var out []string
	for _, a := range containers[0].(map[string]any)["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// sendsAudienceToken: --sim-token-file names a file of a projected
// service-account token volume minted for the audience "simcloud".
func sendsAudienceToken(controllers *unstructured.Unstructured) error {
	var tokenFile string
	for _, a := range containerArgs(controllers) {
		if v, ok := strings.CutPrefix(a, "--sim-token-file="); ok {
			tokenFile = v
		}
	}
	containers, _, _ := unstructured.NestedSlice(controllers.Object, "spec", "template", "spec", "containers")
	mounts, _ := containers[0].(map[string]any)["volumeMounts"].([]any)
	volumes, _, _ := unstructured.NestedSlice(controllers.Object, "spec", "template", "spec", "volumes")
	for _, m := range mounts {
		mount := m.(map[string]any)
		for _, v := range volumes {
			vol := v.(map[string]any)
			if vol["name"] != mount["name"] {
				continue
			}
			sources, _, _ := unstructured.NestedSlice(vol, "projected", "sources")
			for _, s := range sources {
				tok, ok := s.(map[string]any)["serviceAccountToken"].(map[string]any)
				if ok && tok["audience"] == "simcloud" && tokenFile == mount["mountPath"].(string)+"/"+tok["path"].(string) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("the controllers send %q, not a mounted projected token for the audience simcloud", tokenFile)
}

// policyAdmitsOnlyControllers: the policy selects the cloud's pods, and
// every rule opening the cloud's port names only the controllers' pods.
func policyAdmitsOnlyControllers(np *unstructured.Unstructured) error {
	if np == nil {
		return fmt.Errorf("no NetworkPolicy for the simulated cloud")
	}
	if sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels"); sel["control-plane"] != "simcloud" {
		return fmt.Errorf("the policy selects %v, not the cloud's pods", sel)
	}
	rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	opened := false
	for _, r := range rules {
		rule := r.(map[string]any)
		ports, _ := rule["ports"].([]any)
		cloudPort := len(ports) == 0
		for _, p := range ports {
			if p.(map[string]any)["port"] == "cloud" {
				cloudPort = true
			}
		}
		if !cloudPort {
			continue
		}
		from, _ := rule["from"].([]any)
		if len(from) == 0 {
			return fmt.Errorf("a rule opens the cloud's port to every peer: %v", rule)
		}
		for _, f := range from {
			sel, _, _ := unstructured.NestedStringMap(f.(map[string]any), "podSelector", "matchLabels")
			if _, nsSel := f.(map[string]any)["namespaceSelector"]; nsSel || sel["control-plane"] != "controller-manager" {
				return fmt.Errorf("a rule opens the cloud's port to %v", f)
			}
		}
		opened = true
	}
	if !opened {
		return fmt.Errorf("no rule opens the cloud's port to the controllers")
	}
	return nil
}
