package release_test

import (
	"archive/tar"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// platformsEnv chooses the platforms the tests build; the default is both
// release platforms, so the test proves the index make image ships.
const platformsEnv = "RELEASE_TEST_PLATFORMS"

const moduleDir = "../.."

var testInfo = release.BuildInfo{
	Version: "v0.0.0-test.1",
	Commit:  "0123456789abcdef0123456789abcdef01234567",
	Date:    time.Date(2026, 11, 27, 20, 8, 22, 0, time.UTC),
}

// pushed is the image every test but the reproducibility one reads: built
// once, written as an OCI layout, read back, pushed to an in-process
// registry and pulled back by digest.
type pushed struct {
	platforms []v1.Platform
	built     v1.Hash       // digest BuildIndex returned
	layoutDir string        // where WriteLayout wrote it
	ref       name.Digest   // what PushIndex returned
	pulled    v1.ImageIndex // remote.Index(ref)
	buildTime time.Duration
}

var (
	sharedOnce sync.Once
	shared     *pushed
	sharedErr  error
	registrySv *httptest.Server
	tempDirs   []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if registrySv != nil {
		registrySv.Close()
	}
	for _, dir := range tempDirs {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

func testPlatforms(t *testing.T) []v1.Platform {
	t.Helper()
	spec := os.Getenv(platformsEnv)
	if spec == "" {
		spec = release.DefaultPlatforms
	}
	platforms, err := release.ParsePlatforms(spec)
	if err != nil {
		t.Fatalf("%s: %v", platformsEnv, err)
	}
	return platforms
}

func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "release-test-")
	if err == nil {
		tempDirs = append(tempDirs, dir)
	}
	return dir, err
}

func pushedImage(t *testing.T) *pushed {
	t.Helper()
	platforms := testPlatforms(t)
	sharedOnce.Do(func() { shared, sharedErr = buildAndPush(platforms) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func buildAndPush(platforms []v1.Platform) (*pushed, error) {
	ctx := context.Background()
	p := &pushed{platforms: platforms}
	start := time.Now()
	idx, err := release.BuildIndex(ctx, release.ImageOptions{ModuleDir: moduleDir, Platforms: platforms, Info: testInfo})
	if err != nil {
		return nil, err
	}
	p.buildTime = time.Since(start)
	if p.layoutDir, err = tempDir(); err != nil {
		return nil, err
	}
	if p.built, err = release.WriteLayout(p.layoutDir, idx, testInfo.Version); err != nil {
		return nil, err
	}
	fromLayout, err := release.IndexFromLayout(p.layoutDir)
	if err != nil {
		return nil, err
	}
	registrySv = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	u, err := url.Parse(registrySv.URL)
	if err != nil {
		return nil, err
	}
	// go-containerregistry speaks plain HTTP to 127.0.0.1, as to any
	// localhost registry.
	if p.ref, err = release.PushIndex(ctx, fromLayout, u.Host+"/k0rdent-ai/instance-operator:"+testInfo.Version); err != nil {
		return nil, err
	}
	if p.pulled, err = remote.Index(p.ref, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("failed to pull %s: %w", p.ref, err)
	}
	return p, nil
}

func TestIndexPushedFromLayoutAndPulledByDigestHoldsEveryPlatformAndTheOCIAnnotations(t *testing.T) {
	p := pushedImage(t)
	t.Logf("built %d platforms in %s", len(p.platforms), p.buildTime.Round(time.Second))

	if p.ref.DigestStr() != p.built.String() {
		t.Errorf("pushed digest %s, built %s", p.ref.DigestStr(), p.built)
	}
	pulledDigest, err := p.pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if pulledDigest != p.built {
		t.Errorf("pulled digest %s, built %s", pulledDigest, p.built)
	}
	tag, err := name.NewTag(p.ref.Context().String() + ":" + testInfo.Version)
	if err != nil {
		t.Fatal(err)
	}
	tagDesc, err := remote.Head(tag)
	if err != nil {
		t.Fatalf("failed to resolve the pushed tag: %v", err)
	}
	if tagDesc.Digest != p.built {
		t.Errorf("tag %s points at %s, want %s", tag, tagDesc.Digest, p.built)
	}

	manifest, err := p.pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %q, want %q", manifest.MediaType, types.OCIImageIndex)
	}
	var got []string
	for _, desc := range manifest.Manifests {
		if desc.Platform == nil {
			t.Errorf("manifest %s has no platform", desc.Digest)
			continue
		}
		if desc.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest for %s has media type %q, want %q", desc.Platform, desc.MediaType, types.OCIManifestSchema1)
		}
		got = append(got, desc.Platform.String())
	}
	var want []string
	for _, pl := range p.platforms {
		want = append(want, pl.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("platforms %v, want %v", got, want)
	}

	wantAnnotations := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/k0rdent-ai/instance-operator",
		"org.opencontainers.image.version":  testInfo.Version,
		"org.opencontainers.image.revision": testInfo.Commit,
		"org.opencontainers.image.created":  "2026-11-27T20:08:22Z",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	for k, v := range wantAnnotations {
		if manifest.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, manifest.Annotations[k], v)
		}
	}

	sizes, err := release.Sizes(p.pulled)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sizes {
		if s.Compressed <= 0 {
			t.Errorf("%s: compressed size %d", s.Platform, s.Compressed)
		}
		t.Logf("%s: %.1f MiB compressed", s.Platform, float64(s.Compressed)/(1<<20))
	}
}

// fileEntry is a file of an image's filesystem, as the tar of its layers says.
type fileEntry struct {
	hdr  *tar.Header
	data []byte
}

func filesystem(t *testing.T, img v1.Image) map[string]fileEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]fileEntry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("failed to read the image's filesystem: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.Trim(hdr.Name, "/")] = fileEntry{hdr: hdr, data: data}
	}
	return files
}

func TestEveryPlatformsImageRunsTheManagerAsNonrootOnScratchWithCACertificates(t *testing.T) {
	p := pushedImage(t)
	manifest, err := p.pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range manifest.Manifests {
		t.Run(desc.Platform.String(), func(t *testing.T) {
			img, err := remote.Image(p.ref.Context().Digest(desc.Digest.String()))
			if err != nil {
				t.Fatalf("failed to pull %s: %v", desc.Platform, err)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("config media type %q, want %q", m.Config.MediaType, types.OCIConfigJSON)
			}
			for _, l := range m.Layers {
				if l.MediaType != types.OCILayer {
					t.Errorf("layer %s media type %q, want %q", l.Digest, l.MediaType, types.OCILayer)
				}
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != desc.Platform.OS || cf.Architecture != desc.Platform.Architecture {
				t.Errorf("config says %s/%s, the index %s", cf.OS, cf.Architecture, desc.Platform)
			}
			if cf.Config.User != "65532" {
				t.Errorf("user %q, want 65532", cf.Config.User)
			}
			if !slices.Equal(cf.Config.Entrypoint, []string{"/manager"}) || len(cf.Config.Cmd) != 0 {
				t.Errorf("entrypoint %q cmd %q, want [/manager] and no cmd", cf.Config.Entrypoint, cf.Config.Cmd)
			}
			if cf.Config.WorkingDir != "/" {
				t.Errorf("working dir %q, want /", cf.Config.WorkingDir)
			}
			if !cf.Created.Equal(testInfo.Date) {
				t.Errorf("created %s, want the commit's date %s", cf.Created.Time, testInfo.Date)
			}
			if cf.Config.Labels["org.opencontainers.image.revision"] != testInfo.Commit {
				t.Errorf("label revision %q, want %q", cf.Config.Labels["org.opencontainers.image.revision"], testInfo.Commit)
			}

			files := filesystem(t, img)
			for _, shell := range []string{"/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/bin"} {
				if _, ok := files[shell]; ok {
					t.Errorf("the image has %s; it must have no shell", shell)
				}
			}
			// The manager, and the simulated cloud's service that config/
			// runs from the same image.
			for _, path := range []string{"/manager", "/simcloud"} {
				bin, ok := files[path]
				if !ok {
					t.Fatalf("the image has no %s", path)
				}
				if bin.hdr.Mode != 0o755 || bin.hdr.Uid != 0 || bin.hdr.Gid != 0 {
					t.Errorf("%s mode %o uid %d gid %d, want 755 root", path, bin.hdr.Mode, bin.hdr.Uid, bin.hdr.Gid)
				}
			}
			if !slices.Contains(strings.Split(string(files["/etc/passwd"].data), "\n"),
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin") {
				t.Errorf("/etc/passwd has no nonroot entry for 65532:\n%s", files["/etc/passwd"].data)
			}
			if !slices.Contains(strings.Split(string(files["/etc/group"].data), "\n"), "nonroot:x:65532:") {
				t.Errorf("/etc/group has no nonroot group 65532:\n%s", files["/etc/group"].data)
			}
			if tmp, ok := files["/tmp"]; !ok || tmp.hdr.Mode != 0o1777 {
				t.Errorf("/tmp missing or not 1777: %+v", tmp.hdr)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(files["/etc/ssl/certs/ca-certificates.crt"].data) {
				t.Fatal("/etc/ssl/certs/ca-certificates.crt holds no certificate")
			}
			if n := strings.Count(string(files["/etc/ssl/certs/ca-certificates.crt"].data), "BEGIN CERTIFICATE"); n < 100 {
				t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d roots, want the ~140 of NSS", n)
			}
			for path, f := range files {
				if !f.hdr.ModTime.Equal(testInfo.Date) {
					t.Errorf("%s has mtime %s, want the commit's date %s", path, f.hdr.ModTime, testInfo.Date)
				}
			}
		})
	}
}

func TestManagerFromThePulledImagePrintsTheStampedVersion(t *testing.T) {
	host := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if !slices.ContainsFunc(testPlatforms(t), func(p v1.Platform) bool { return p.Satisfies(host) }) {
		t.Skipf("%s does not include this machine's platform %s", platformsEnv, host)
	}
	p := pushedImage(t)
	img, err := remote.Image(p.ref, remote.WithPlatform(host))
	if err != nil {
		t.Fatalf("failed to pull the %s image: %v", host, err)
	}
	manager := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(manager, filesystem(t, img)["/manager"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(manager, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --version: %v\n%s", err, out)
	}
	want := "instance-operator v0.0.0-test.1 (commit 0123456789abcdef0123456789abcdef01234567, 2026-11-27T20:08:22Z)\n"
	if string(out) != want {
		t.Errorf("manager --version printed %q, want %q", out, want)
	}
}

func TestTwoBuildsOfOneCommitHaveTheSameIndexDigest(t *testing.T) {
	first := pushedImage(t)
	dir := t.TempDir()
	// Another directory for the binaries, so nothing of the first build is
	// reused but what go's build cache holds.
	start := time.Now()
	idx, err := release.BuildIndex(context.Background(), release.ImageOptions{
		ModuleDir: moduleDir, Platforms: first.platforms, Info: testInfo, BinDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second build of %d platforms (warm cache) in %s", len(first.platforms), time.Since(start).Round(time.Second))
	second, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if second != first.built {
		t.Fatalf("second build's digest %s, first %s", second, first.built)
	}

}

func TestBuildInfoFromGitTakesSourceDateEpochOverTheCommitDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	info, err := release.BuildInfoFromGit(context.Background(), moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Date.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("date %s, want SOURCE_DATE_EPOCH's %s", info.Date, time.Unix(1700000000, 0).UTC())
	}
	head, err := exec.Command("git", "-C", moduleDir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if info.Commit != strings.TrimSpace(string(head)) {
		t.Errorf("commit %q, want HEAD %q", info.Commit, head)
	}
	if info.Version == "" {
		t.Error("no version")
	}
	if !strings.Contains(info.LDFlags(), "internal/version.Commit="+info.Commit) {
		t.Errorf("ldflags %q do not stamp the commit", info.LDFlags())
	}
}
