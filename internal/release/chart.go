package release

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	"helm.sh/helm/v4/pkg/registry"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
)

// ChartDir is the chart's source, relative to the module root.
const ChartDir = "charts/instance-operator"

// KubeVersion is the Kubernetes version charts are rendered for when no
// cluster is asked: the one the control plane is built at.
const KubeVersion = "v1.37.2"

// RenderChart renders the chart at dir as `helm template` does: the release
// name and namespace given, vals laid over values.yaml, for KubeVersion.
// It returns the manifests as one multi-document YAML stream.
func RenderChart(dir, releaseName, namespace string, vals map[string]any) (string, error) {
	return RenderChartWithAPIVersions(dir, releaseName, namespace, vals)
}

// RenderChartWithAPIVersions is RenderChart for a cluster that also serves
// apiVersions (`helm template --api-versions`), e.g. "cert-manager.io/v1",
// which the chart's .Capabilities.APIVersions.Has checks see.
func RenderChartWithAPIVersions(dir, releaseName, namespace string, vals map[string]any, apiVersions ...string) (string, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return "", fmt.Errorf("failed to load the chart %s: %w", dir, err)
	}
	kubeVersion, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return "", fmt.Errorf("failed to parse %s: %w", KubeVersion, err)
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(io.Discard, nil)))
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = kubeVersion
	install.DisableHooks = true
	install.APIVersions = apiVersions
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return "", fmt.Errorf("failed to render the chart %s: %w", dir, err)
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		return "", fmt.Errorf("failed to render the chart %s: unexpected release type %T", dir, rel)
	}
	return r.Manifest, nil
}

// LintChart runs `helm lint --strict` over the chart with vals, and fails on
// any warning as on any error.
func LintChart(dir string, vals map[string]any) error {
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = "instance-operator-system"
	kubeVersion, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return fmt.Errorf("failed to parse %s: %w", KubeVersion, err)
	}
	lint.KubeVersion = kubeVersion
	result := lint.Run([]string{dir}, vals)
	var problems []string
	for _, m := range result.Messages {
		if m.Severity > 1 { // above support.InfoSev
			problems = append(problems, m.Error())
		}
	}
	for _, err := range result.Errors {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("helm lint %s: %s", dir, strings.Join(problems, "; "))
	}
	return nil
}

// PackageChart writes the chart at dir as <name>-<version>.tgz into outDir,
// with version and appVersion stamped, and returns the archive's path.
func PackageChart(dir, version, appVersion, outDir string) (string, error) {
	pkg := action.NewPackage()
	pkg.Version = version
	pkg.AppVersion = appVersion
	pkg.Destination = outDir
	path, err := pkg.Run(dir, nil)
	if err != nil {
		return "", fmt.Errorf("failed to package the chart %s: %w", dir, err)
	}
	return path, nil
}

// PushChart pushes a packaged chart to an OCI repository (oci://host/path)
// as `helm push` does, the manifest's creation time set to created (RFC 3339;
// empty for now) so that a release's push is reproducible, and returns the
// pushed reference pinned by digest (host/path/name:version@sha256:...).
func PushChart(archive, remote, created string, plainHTTP bool) (string, error) {
	data, err := os.ReadFile(archive)
	if err != nil {
		return "", fmt.Errorf("failed to read %s: %w", archive, err)
	}
	chrt, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("failed to load %s: %w", archive, err)
	}
	client, err := registryClient(plainHTTP)
	if err != nil {
		return "", err
	}
	ref := chartRef(remote, chrt.Metadata)
	opts := []registry.PushOption{registry.PushOptStrictMode(true)}
	if created != "" {
		opts = append(opts, registry.PushOptCreationTime(created))
	}
	result, err := client.Push(data, ref, opts...)
	if err != nil {
		return "", fmt.Errorf("failed to push %s to %s: %w", archive, ref, err)
	}
	return result.Ref + "@" + result.Manifest.Digest, nil
}

// PullChart pulls a chart by reference (a digest pins it) and loads it.
func PullChart(ref string, plainHTTP bool) (*chartv2.Chart, error) {
	client, err := registryClient(plainHTTP)
	if err != nil {
		return nil, err
	}
	result, err := client.Pull(ref)
	if err != nil {
		return nil, fmt.Errorf("failed to pull %s: %w", ref, err)
	}
	chrt, err := loader.LoadArchive(bytes.NewReader(result.Chart.Data))
	if err != nil {
		return nil, fmt.Errorf("failed to load the chart pulled from %s: %w", ref, err)
	}
	return chrt, nil
}

func registryClient(plainHTTP bool) (*registry.Client, error) {
	opts := []registry.ClientOption{registry.ClientOptWriter(io.Discard)}
	if plainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("failed to create a registry client: %w", err)
	}
	return client, nil
}

// chartRef is where helm push puts a chart: the remote, then the chart's name
// and its version as the tag (the registry client turns a "+", which tags
// cannot hold, into "_").
func chartRef(remote string, md *chartv2.Metadata) string {
	host := strings.TrimSuffix(strings.TrimPrefix(remote, "oci://"), "/")
	return fmt.Sprintf("%s/%s:%s", host, md.Name, md.Version)
}

// SaveChart writes a loaded chart as an archive into dir and returns its path.
func SaveChart(chrt *chartv2.Chart, dir string) (string, error) {
	path, err := chartutil.Save(chrt, dir)
	if err != nil {
		return "", fmt.Errorf("failed to save the chart %s: %w", chrt.Name(), err)
	}
	return path, nil
}

// ChartVersion is the chart's SemVer version for a build: a v-tag's version
// without the v (v1.2.0 gives 1.2.0), else a pre-release of 0.0.0 naming the
// build (377cbb6-dirty gives 0.0.0-dev-377cbb6-dirty), which orders below
// every tagged release.
func ChartVersion(info BuildInfo) string {
	if v, err := semver.StrictNewVersion(strings.TrimPrefix(info.Version, "v")); err == nil {
		return v.String()
	}
	return "0.0.0-dev-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, info.Version)
}

// ChartKubeVersion is the Kubernetes constraint of the chart at dir
// (Chart.yaml's kubeVersion), which k0rdent's ServiceTemplate repeats.
func ChartKubeVersion(dir string) (string, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return "", fmt.Errorf("failed to load the chart %s: %w", dir, err)
	}
	return chrt.Metadata.KubeVersion, nil
}
