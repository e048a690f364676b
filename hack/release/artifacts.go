package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// runInstallYAML writes install.yaml: config/default in one file, the
// manager's image pinned to the digest of the index in the image layout.
func runInstallYAML(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("install-yaml", flag.ContinueOnError)
	layout := fs.String("layout", "dist/image", "OCI layout written by the image subcommand")
	repo := fs.String("image", "", "repository the image is pushed to (required), such as ghcr.io/k0rdent-ai/instance-operator")
	out := fs.String("out", "dist/install.yaml", "file to write")
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	if *repo == "" {
		return fmt.Errorf("--image is required")
	}
	idx, err := release.IndexFromLayout(*layout)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("failed to compute the index digest: %w", err)
	}
	image := *repo + "@" + digest.String()
	if err := release.WriteInstallYAML(".", image, info.Version, *out); err != nil {
		return err
	}
	fmt.Printf("%s (image %s)\n", *out, image)
	return nil
}

// runChart packages the chart, stamped with the build's chart version and
// the image version as its appVersion, and prints the archive's path.
func runChart(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	out := fs.String("out", "dist", "directory of the packaged chart")
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	if err := release.LintChart(release.ChartDir, nil); err != nil {
		return err
	}
	path, err := release.PackageChart(release.ChartDir, release.ChartVersion(info), info.Version, *out)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

// runPushChart pushes the packaged chart of this build to an OCI repository
// and prints the reference with its digest.
func runPushChart(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push-chart", flag.ContinueOnError)
	dir := fs.String("dir", "dist", "directory of the packaged chart")
	repo := fs.String("repo", "", "OCI repository (required), such as oci://ghcr.io/k0rdent-ai/charts")
	plainHTTP := fs.Bool("plain-http", false, "talk to the registry over plain HTTP")
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	if *repo == "" {
		return fmt.Errorf("--repo is required")
	}
	archive := filepath.Join(*dir, fmt.Sprintf("instance-operator-%s.tgz", release.ChartVersion(info)))
	ref, err := release.PushChart(archive, *repo, info.DateString(), *plainHTTP)
	if err != nil {
		return err
	}
	fmt.Println(ref)
	return nil
}

// runK0rdent writes k0rdent's HelmRepository, ServiceTemplate and a sample
// MultiClusterService for this build's chart.
func runK0rdent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("k0rdent", flag.ContinueOnError)
	out := fs.String("out", "dist/k0rdent", "directory to write")
	repo := fs.String("chart-repo", "oci://ghcr.io/k0rdent-ai/charts", "OCI repository of the chart")
	namespace := fs.String("namespace", "kcm-system", "namespace of k0rdent's templates on the management cluster")
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	constraint, err := release.ChartKubeVersion(release.ChartDir)
	if err != nil {
		return err
	}
	if err := release.WriteK0rdent(".", *out, release.K0rdentOptions{
		ChartRepository: *repo,
		ChartVersion:    release.ChartVersion(info),
		KubeConstraint:  constraint,
		Namespace:       *namespace,
	}); err != nil {
		return err
	}
	fmt.Println(*out)
	return nil
}

// runVersion prints the build's version, the image's tag and the chart's appVersion.
func runVersion(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	fmt.Println(info.Version)
	return nil
}
