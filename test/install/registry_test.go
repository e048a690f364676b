package install

import (
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// The packaged chart, pushed to a real OCI registry (go-containerregistry's,
// in process) as helm push does, comes back by digest whole: the same name,
// version and appVersion, and the same rendering as the source chart.
func TestChartPushedToOCIRegistryPullsBackByDigest(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	dir := filepath.Join(root(t), release.ChartDir)
	archive, err := release.PackageChart(dir, "0.2.0-test+abc123", "v0.2.0-test", t.TempDir())
	must(t, err, "package the chart")
	ref, err := release.PushChart(archive, "oci://"+host+"/charts", "2026-12-01T00:00:00Z", true)
	must(t, err, "push the chart")
	if want := host + "/charts/instance-operator:0.2.0-test_abc123@sha256:"; !strings.HasPrefix(ref, want) {
		t.Fatalf("pushed as %s, want %s...", ref, want)
	}
	again, err := release.PushChart(archive, "oci://"+host+"/charts", "2026-12-01T00:00:00Z", true)
	must(t, err, "push the chart again")
	if again != ref {
		t.Fatalf("the same archive pushed twice with one creation time got two digests: %s, %s", ref, again)
	}

	pulled, err := release.PullChart(host+"/charts/instance-operator@"+strings.SplitN(ref, "@", 2)[1], true)
	must(t, err, "pull the chart by digest")
	if md := pulled.Metadata; md.Name != "instance-operator" || md.Version != "0.2.0-test+abc123" || md.AppVersion != "v0.2.0-test" {
		t.Fatalf("pulled chart %s %s (app %s)", md.Name, md.Version, md.AppVersion)
	}
	fromSource, err := release.RenderChart(archive, "instance-operator", "instance-operator-system", nil)
	must(t, err, "render the packaged chart")
	pulledDir := t.TempDir()
	pulledArchive, err := release.SaveChart(pulled, pulledDir)
	must(t, err, "save the pulled chart")
	fromRegistry, err := release.RenderChart(pulledArchive, "instance-operator", "instance-operator-system", nil)
	must(t, err, "render the pulled chart")
	if fromSource != fromRegistry {
		t.Fatal("the chart pulled back renders differently from the one pushed")
	}
	if !strings.Contains(fromRegistry, "image: ghcr.io/k0rdent-ai/instance-operator:v0.2.0-test") {
		t.Fatal("the pulled chart's Deployment does not use the stamped appVersion as its image tag")
	}
}
