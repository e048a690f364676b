package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	// DefaultPlatforms are the platforms make image builds.
	DefaultPlatforms = "linux/amd64,linux/arm64"
	// NonrootUID is the uid and gid the manager runs as (distroless's nonroot).
	NonrootUID = 65532
	// ManagerPath is the binary's path in the image, and its entrypoint.
	ManagerPath = "/manager"
	// SimcloudPath is the simulated cloud's service (cmd/simcloud) in the
	// image: config/ and the chart run it as a Deployment of its own with
	// this image and this command.
	SimcloudPath = "/simcloud"
	// SimcloudPackage is its main package, relative to the module.
	SimcloudPackage = "./cmd/simcloud"
)

// ImageOptions say what BuildIndex builds.
type ImageOptions struct {
	// ModuleDir is the root of the instance-operator module; "" is the
	// current directory.
	ModuleDir string
	// Package is the manager's main package, relative to ModuleDir; "" is ./cmd.
	Package string
	// Platforms are the images of the index, in this order.
	Platforms []v1.Platform
	// Info is stamped into the binaries and the images.
	Info BuildInfo
	// BinDir keeps the built binaries (manager-<os>-<arch>); "" builds them
	// in a temporary directory that is removed afterwards.
	BinDir string
}

// ParsePlatforms parses a comma-separated list such as "linux/amd64,linux/arm64".
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var platforms []v1.Platform
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		p, err := v1.ParsePlatform(field)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the platform %q: %w", field, err)
		}
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %q: the image is a Linux image", field)
		}
		platforms = append(platforms, *p)
	}
	if len(platforms) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return platforms, nil
}

// BuildIndex builds the manager for each platform and assembles the
// multi-platform OCI image index, annotated with opts.Info.Annotations().
func BuildIndex(ctx context.Context, opts ImageOptions) (v1.ImageIndex, error) {
	if err := opts.Info.validate(); err != nil {
		return nil, fmt.Errorf("failed to build the image index: %w", err)
	}
	if len(opts.Platforms) == 0 {
		return nil, fmt.Errorf("failed to build the image index: no platforms")
	}
	binDir := opts.BinDir
	if binDir == "" {
		tmp, err := os.MkdirTemp("", "instance-operator-image-")
		if err != nil {
			return nil, fmt.Errorf("failed to create a directory for the binaries: %w", err)
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		binDir = tmp
	}
	// The base layer is the same for every platform: one blob in the
	// registry, pulled once by a node that runs several architectures.
	base, err := baseLayer(opts.Info.Date)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range opts.Platforms {
		bin := filepath.Join(binDir, "manager-"+platformFileName(p))
		if err := BuildManager(ctx, opts.ModuleDir, opts.Package, p, opts.Info, bin); err != nil {
			return nil, err
		}
		simBin := filepath.Join(binDir, "simcloud-"+platformFileName(p))
		if err := BuildManager(ctx, opts.ModuleDir, SimcloudPackage, p, opts.Info, simBin); err != nil {
			return nil, err
		}
		img, err := managerImage(base, bin, simBin, p, opts.Info)
		if err != nil {
			return nil, err
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &platform},
		})
	}
	annotated, ok := mutate.Annotations(idx, opts.Info.Annotations()).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("failed to annotate the image index: mutate.Annotations returned no index")
	}
	return annotated, nil
}

func platformFileName(p v1.Platform) string {
	return strings.ReplaceAll(p.String(), "/", "-")
}

// BuildManager builds the manager for one platform into out: static
// (CGO_ENABLED=0), with paths and VCS data left out and symbols stripped, so
// the same commit and Go toolchain give the same bytes on any machine.
func BuildManager(ctx context.Context, moduleDir, pkg string, p v1.Platform, info BuildInfo, out string) error {
	if pkg == "" {
		pkg = "./cmd"
	}
	if err := info.validate(); err != nil {
		return fmt.Errorf("failed to build the manager: %w", err)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("failed to resolve %s: %w", out, err)
	}
	env, err := goEnv(p)
	if err != nil {
		return fmt.Errorf("failed to build the manager for %s: %w", p, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w "+info.LDFlags(), "-o", absOut, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), env...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("failed to build the manager for %s: %w\n%s", p, err, output.String())
	}
	return nil
}

// goEnv pins everything of the environment that changes the binary, so a
// GOAMD64 or GOFLAGS left in someone's shell does not change the image.
func goEnv(p v1.Platform) ([]string, error) {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture, "GOFLAGS=-mod=readonly"}
	switch p.Architecture {
	case "amd64":
		level := p.Variant
		if level == "" {
			level = "v1"
		}
		env = append(env, "GOAMD64="+level)
	case "arm64":
		level := p.Variant
		if level == "" || level == "v8" {
			level = "v8.0"
		}
		env = append(env, "GOARM64="+level)
	case "arm":
		if p.Variant == "" {
			return nil, fmt.Errorf("linux/arm needs a variant such as v7")
		}
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env, nil
}

// managerImage is one platform's image: scratch, the base layer, a layer
// with the manager, and a config that runs it as nonroot.
func managerImage(base v1.Layer, binary, simcloud string, p v1.Platform, info BuildInfo) (v1.Image, error) {
	managerLayer, err := binaryLayer(binary, ManagerPath, info.Date)
	if err != nil {
		return nil, err
	}
	simcloudLayer, err := binaryLayer(simcloud, SimcloudPath, info.Date)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: info.Date}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{
			Layer:     base,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "hack/release: CA certificates, /etc/passwd, /etc/group, /tmp", Comment: "base"},
		},
		mutate.Addendum{
			Layer:     managerLayer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "hack/release: " + ManagerPath + " " + info.Version, Comment: "manager"},
		},
		mutate.Addendum{
			Layer:     simcloudLayer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "hack/release: " + SimcloudPath + " " + info.Version, Comment: "simulated cloud"},
		},
	)
	if err != nil {
		return nil, fmt.Errorf("failed to add the layers for %s: %w", p, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("failed to read the config for %s: %w", p, err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Author = SourceURL
	cf.Config.User = fmt.Sprint(NonrootUID)
	cf.Config.Entrypoint = []string{ManagerPath}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = info.Annotations()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("failed to set the config for %s: %w", p, err)
	}
	return img, nil
}

// tarEntry is one file or directory of a layer.
type tarEntry struct {
	name     string // without a leading slash; directories end in /
	mode     int64
	uid, gid int
	data     []byte
}

// baseLayer holds what a scratch image lacks for a Go program that talks TLS
// and runs as nonroot: CA roots, passwd and group entries, and /tmp.
func baseLayer(date time.Time) (v1.Layer, error) {
	certs, err := CACertificates()
	if err != nil {
		return nil, err
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonrootUID, NonrootUID)
	group := "root:x:0:\nnobody:x:65534:\n" + fmt.Sprintf("nonroot:x:%d:\n", NonrootUID)
	return layerOf(date, []tarEntry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: NonrootUID, gid: NonrootUID},
		{name: "tmp/", mode: 0o1777},
	})
}

func binaryLayer(binary, path string, date time.Time) (v1.Layer, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("failed to read the binary for %s: %w", path, err)
	}
	return layerOf(date, []tarEntry{{name: strings.TrimPrefix(path, "/"), mode: 0o755, data: data}})
}

// layerOf writes the entries as a tar in name order, every mtime the
// commit's date, and gzips it; nothing in it depends on the build machine.
func layerOf(date time.Time, entries []tarEntry) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: date.UTC(),
		}
		if strings.HasSuffix(e.name, "/") {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("failed to write the tar header of %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("failed to write %s to the tar: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("failed to close the tar: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	},
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression),
		// The layout and the push read the compressed blob again; gzip of
		// the binary at the best level costs seconds.
		tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("failed to make a layer: %w", err)
	}
	return layer, nil
}

// CACertificates is the PEM bundle the image carries at
// /etc/ssl/certs/ca-certificates.crt: the NSS roots pinned by
// golang.org/x/crypto/x509roots/fallback in go.mod, so that every machine
// builds the same file. Roots that NSS trusts only with a constraint (a
// distrust-after date) are left out, as a PEM file cannot carry the
// constraint and would trust them without it.
func CACertificates() ([]byte, error) {
	var out bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		cert, err := x509.ParseCertificate(root.Certificate)
		if err != nil {
			return nil, fmt.Errorf("failed to parse a root of the pinned CA bundle: %w", err)
		}
		fmt.Fprintf(&out, "# %s\n", cert.Subject)
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, fmt.Errorf("failed to encode a CA certificate: %w", err)
		}
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("the pinned CA bundle has no unconstrained roots")
	}
	return out.Bytes(), nil
}
