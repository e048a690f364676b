package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// buildInfoFlags let a release override what git says; empty keeps git's.
type buildInfoFlags struct {
	version, commit, date string
}

func (f *buildInfoFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.version, "version", "", "version to stamp (default: git describe --tags --always --dirty)")
	fs.StringVar(&f.commit, "commit", "", "commit to stamp (default: git rev-parse HEAD)")
	fs.StringVar(&f.date, "date", "", "RFC 3339 date to stamp (default: SOURCE_DATE_EPOCH, else the commit's date)")
}

func (f *buildInfoFlags) resolve(ctx context.Context) (release.BuildInfo, error) {
	var info release.BuildInfo
	var err error
	// All three given, git is not needed: a build from a source tarball.
	if f.version == "" || f.commit == "" || f.date == "" {
		if info, err = release.BuildInfoFromGit(ctx, "."); err != nil {
			return release.BuildInfo{}, err
		}
	}
	if f.version != "" {
		info.Version = f.version
	}
	if f.commit != "" {
		info.Commit = f.commit
	}
	if f.date != "" {
		if info.Date, err = time.Parse(time.RFC3339, f.date); err != nil {
			return release.BuildInfo{}, fmt.Errorf("failed to parse --date: %w", err)
		}
	}
	return info, nil
}

// parseWithBuildInfo binds the build-info flags to fs beside the
// subcommand's own, parses args, and resolves what the build is stamped with.
func parseWithBuildInfo(ctx context.Context, fs *flag.FlagSet, args []string) (release.BuildInfo, error) {
	var bi buildInfoFlags
	bi.bind(fs)
	if err := fs.Parse(args); err != nil {
		return release.BuildInfo{}, err
	}
	return bi.resolve(ctx)
}
