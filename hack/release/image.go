package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// runImage builds the manager for each platform, writes the image index as
// an OCI layout and prints its digest on stdout (sizes go to stderr, so that
// scripts can take the digest alone).
func runImage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	platforms := fs.String("platforms", release.DefaultPlatforms, "comma-separated platforms of the index")
	out := fs.String("out", "dist/image", "directory of the OCI layout (replaced)")
	binDir := fs.String("bin-dir", "", "keep the built binaries here (default: a temporary directory)")
	tag := fs.String("tag", "", "ref name of the index in the layout (default: the version)")
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	plats, err := release.ParsePlatforms(*platforms)
	if err != nil {
		return err
	}
	if *binDir != "" {
		if err := os.MkdirAll(*binDir, 0o755); err != nil {
			return fmt.Errorf("failed to create %s: %w", *binDir, err)
		}
	}
	idx, err := release.BuildIndex(ctx, release.ImageOptions{Platforms: plats, Info: info, BinDir: *binDir})
	if err != nil {
		return err
	}
	refName := *tag
	if refName == "" {
		refName = info.Version
	}
	digest, err := release.WriteLayout(*out, idx, refName)
	if err != nil {
		return err
	}
	sizes, err := release.Sizes(idx)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "image %s (commit %s, %s) written to %s\n", info.Version, info.Commit, info.DateString(), *out)
	for _, s := range sizes {
		fmt.Fprintf(os.Stderr, "  %-14s %6.1f MiB compressed\n", s.Platform.String(), float64(s.Compressed)/(1<<20))
	}
	fmt.Println(digest)
	return nil
}
