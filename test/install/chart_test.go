package install

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// Every shape of values a user is told about lints clean, warnings included.
func TestChartLintsStrictForEachProvider(t *testing.T) {
	dir := filepath.Join(root(t), release.ChartDir)
	for name, vals := range map[string]map[string]any{
		"defaults": nil,
		"kubevirt": {"provider": "kubevirt"},
		"Prometheus and Grafana objects": {
			"serviceMonitor":   map[string]any{"enabled": true},
			"prometheusRule":   map[string]any{"enabled": true},
			"grafanaDashboard": map[string]any{"enabled": true},
		},
		"the namespace name rule": {"admissionPolicy": map[string]any{"namespaceNameRule": true}},
		"two replicas, pinned digest, network policy, no admission policy": {
			"replicas":        2,
			"image":           map[string]any{"digest": "sha256:" + strings.Repeat("a", 64)},
			"networkPolicy":   map[string]any{"enabled": true},
			"admissionPolicy": map[string]any{"enabled": false},
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := release.LintChart(dir, vals); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A provider the manager does not know is refused at render time, naming it.
func TestChartRefusesAnUnknownProvider(t *testing.T) {
	_, err := release.RenderChart(filepath.Join(root(t), release.ChartDir), "instance-operator", "instance-operator-system",
		map[string]any{"provider": "openstack"})
	if err == nil || !strings.Contains(err.Error(), `"openstack"`) {
		t.Fatalf("rendering with provider=openstack: got %v, want an error naming it", err)
	}
}

// The chart's rendering, for default values and then for the KubeVirt
// values, is accepted whole by a real kube-apiserver's server-side dry run,
// then applied for real: the CRD is established, the admission policy and its
// binding exist and stamp the finalizer on a new Instance, and the API's
// ClusterRoles carry their product names.
func TestChartRenderingAppliesToKubeAPIServer(t *testing.T) {
	e := freshControlPlane(t)
	kubectl(t, e, "", "create", "namespace", "instance-operator-system")
	for _, tc := range []struct {
		name string
		vals map[string]any
	}{
		{"defaults", nil},
		{"kubevirt", map[string]any{"provider": "kubevirt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifest, err := release.RenderChart(filepath.Join(root(t), release.ChartDir), "instance-operator", "instance-operator-system", tc.vals)
			must(t, err, "render the chart")
			dry := kubectl(t, e, manifest, "apply", "--server-side", "--field-manager=helm", "--dry-run=server", "-f", "-")
			if n := strings.Count(dry, "(server dry run)"); n < 10 {
				t.Fatalf("server-side dry run accepted %d objects:\n%s", n, dry)
			}
			kubectl(t, e, manifest, "apply", "--server-side", "--field-manager=helm", "-f", "-")
			kubectl(t, e, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/instances.compute.k0rdent.ai")
			for _, obj := range []string{
				"mutatingadmissionpolicy/instance-finalizer.compute.k0rdent.ai",
				"mutatingadmissionpolicybinding/instance-finalizer.compute.k0rdent.ai",
				"clusterrole/compute.viewer", "clusterrole/compute.deployer", "clusterrole/compute.admin",
				"clusterrole/instance-operator-manager-role",
				"deployment/instance-operator-controller-manager", // namespaced: -n below
				"deployment/instance-operator-api",
				"service/instance-operator-api",
				"clusterrole/instance-operator-api-role",
				"validatingadmissionpolicy/controller-secrets.compute.k0rdent.ai",
			} {
				kubectl(t, e, "", "get", "-n", "instance-operator-system", obj, "-o", "name")
			}
			provider := kubectl(t, e, "", "get", "-n", "instance-operator-system", "deployment/instance-operator-controller-manager",
				"-o", "jsonpath={.spec.template.spec.containers[0].args}")
			if want := tc.name == "kubevirt"; strings.Contains(provider, "--provider=kubevirt") != want {
				t.Fatalf("manager args %s: --provider=kubevirt present should be %v", provider, want)
			}
			// One process each: the controllers serve no API, the API runs no controllers.
			if !strings.Contains(provider, "--enable-api=false") {
				t.Fatalf("the controllers' args %s lack --enable-api=false", provider)
			}
			apiArgs := kubectl(t, e, "", "get", "-n", "instance-operator-system", "deployment/instance-operator-api",
				"-o", "jsonpath={.spec.template.spec.serviceAccountName} {.spec.template.spec.containers[0].args}")
			if !strings.HasPrefix(apiArgs, "instance-operator-api ") || !strings.Contains(apiArgs, "--enable-controllers=false") {
				t.Fatalf("the API's service account and args %s: want instance-operator-api and --enable-controllers=false", apiArgs)
			}
		})
	}
	applyInstance(t, e, "-k", filepath.Join(root(t), "config", "samples"))
	finalizers := kubectl(t, e, "", "get", "instances", "-A", "-o", "jsonpath={.items[*].metadata.finalizers}")
	if !strings.Contains(finalizers, "compute.k0rdent.ai/machine") {
		t.Fatalf("the sample instance has finalizers %q; the chart's admission policy should have stamped compute.k0rdent.ai/machine", finalizers)
	}
}

// The controllers' Secret policy names the service account of the release
// it is installed with, whatever its name and namespace; config/'s name
// would leave another release's controllers unrestricted.
func TestChartSecretPolicyNamesTheReleasesControllers(t *testing.T) {
	manifest, err := release.RenderChart(filepath.Join(root(t), release.ChartDir), "gpu", "compute-system", nil)
	must(t, err, "render the chart")
	objs, err := release.DecodeObjects([]byte(manifest))
	must(t, err, "decode the rendering")
	var expr string
	for _, o := range objs {
		if o.GetKind() == "ValidatingAdmissionPolicy" && o.GetName() == "controller-secrets.compute.k0rdent.ai" {
			conds, _, _ := unstructured.NestedSlice(o.Object, "spec", "matchConditions")
			for _, c := range conds {
				expr += c.(map[string]any)["expression"].(string)
			}
		}
	}
	if want := "'system:serviceaccount:compute-system:gpu-instance-operator-controller-manager'"; !strings.Contains(expr, want) {
		t.Fatalf("the controller-secrets policy matches %q; want the release's controllers, %s", expr, want)
	}
}

// The REST API serves HTTPS in every install: with cert-manager in the
// cluster (or asked for), from a Certificate for the API Service's names
// whose Secret is mounted; without it, from a certificate each replica
// makes at start. A source the chart does not know is refused.
func TestChartAPITLSFromCertManagerElseSelfSigned(t *testing.T) {
	dir := filepath.Join(root(t), release.ChartDir)
	type rendering struct {
		args, kinds, issuer string
		mounted             bool
	}
	render := func(t *testing.T, vals map[string]any, apiVersions ...string) rendering {
		t.Helper()
		manifest, err := release.RenderChartWithAPIVersions(dir, "instance-operator", "instance-operator-system", vals, apiVersions...)
		must(t, err, "render the chart")
		objs, err := release.DecodeObjects([]byte(manifest))
		must(t, err, "decode the rendering")
		var r rendering
		for _, o := range objs {
			switch {
			case o.GetKind() == "Deployment" && o.GetName() == "instance-operator-api":
				containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				c := containers[0].(map[string]any)
				r.args = fmt.Sprint(c["args"])
				_, r.mounted = c["volumeMounts"]
			case o.GetAPIVersion() == "cert-manager.io/v1":
				r.kinds += o.GetKind() + " "
				if o.GetKind() == "Certificate" {
					r.issuer, _, _ = unstructured.NestedString(o.Object, "spec", "issuerRef", "name")
					names, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "dnsNames")
					if !slices.Contains(names, "instance-operator-api.instance-operator-system.svc") {
						t.Errorf("the Certificate's names %v lack the API Service's", names)
					}
					if secret, _, _ := unstructured.NestedString(o.Object, "spec", "secretName"); secret != "instance-operator-api-tls" {
						t.Errorf("the Certificate's Secret is %q, want the one the Deployment mounts", secret)
					}
				}
			}
		}
		return r
	}
	const files = "--api-tls-cert-file=/etc/instance-operator/api-tls/tls.crt"
	t.Run("no cert-manager: self-signed", func(t *testing.T) {
		r := render(t, nil)
		if !strings.Contains(r.args, "--api-tls-self-signed") || strings.Contains(r.args, files) || r.mounted || r.kinds != "" {
			t.Errorf("args %s, mounted %v, cert-manager objects %q: want --api-tls-self-signed alone", r.args, r.mounted, r.kinds)
		}
	})
	t.Run("cert-manager served: its Certificate", func(t *testing.T) {
		r := render(t, nil, "cert-manager.io/v1")
		if !strings.Contains(r.args, files) || strings.Contains(r.args, "--api-tls-self-signed") || !r.mounted ||
			r.kinds != "Certificate Issuer " || r.issuer != "instance-operator-selfsigned" {
			t.Errorf("args %s, mounted %v, cert-manager objects %q, issuer %q: want the chart's Issuer and Certificate, mounted",
				r.args, r.mounted, r.kinds, r.issuer)
		}
	})
	t.Run("cert-manager asked for, with an issuer of one's own", func(t *testing.T) {
		r := render(t, map[string]any{"api": map[string]any{"tls": map[string]any{
			"source": "cert-manager", "issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "corp-ca"}}}})
		if !strings.Contains(r.args, files) || r.kinds != "Certificate " || r.issuer != "corp-ca" {
			t.Errorf("args %s, cert-manager objects %q, issuer %q: want a Certificate from corp-ca only", r.args, r.kinds, r.issuer)
		}
	})
	t.Run("self-signed asked for though cert-manager is served", func(t *testing.T) {
		r := render(t, map[string]any{"api": map[string]any{"tls": map[string]any{"source": "self-signed"}}}, "cert-manager.io/v1")
		if !strings.Contains(r.args, "--api-tls-self-signed") || r.kinds != "" {
			t.Errorf("args %s, cert-manager objects %q: want --api-tls-self-signed alone", r.args, r.kinds)
		}
	})
	t.Run("an unknown source", func(t *testing.T) {
		_, err := release.RenderChart(dir, "instance-operator", "instance-operator-system",
			map[string]any{"api": map[string]any{"tls": map[string]any{"source": "letsencrypt"}}})
		if err == nil || !strings.Contains(err.Error(), `"letsencrypt"`) {
			t.Fatalf("api.tls.source=letsencrypt: got %v, want an error naming it", err)
		}
	})
}
