package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	// SourceURL is the repository named in the image's annotations.
	SourceURL = "https://github.com/k0rdent-ai/instance-operator"
	// License is the SPDX identifier named in the image's annotations.
	License = "Apache-2.0"
	// VersionPackage is the package whose variables -ldflags -X stamps.
	VersionPackage = "github.com/k0rdent-ai/instance-operator/internal/version"
)

// BuildInfo is what a build is stamped with. Date is the commit's date, not
// the build's: it is the only timestamp a release contains.
type BuildInfo struct {
	Version string
	Commit  string
	Date    time.Time
}

// BuildInfoFromGit reads the commit checked out in dir, its committer date and
// a version from git describe (the nearest v* tag, or the short commit, with
// -dirty for a tree with uncommitted changes). SOURCE_DATE_EPOCH, when set,
// replaces the date, as reproducible-builds.org specifies.
func BuildInfoFromGit(ctx context.Context, dir string) (BuildInfo, error) {
	commit, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return BuildInfo{}, err
	}
	version, err := git(ctx, dir, "describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*")
	if err != nil {
		return BuildInfo{}, err
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		if epoch, err = git(ctx, dir, "log", "-1", "--format=%ct"); err != nil {
			return BuildInfo{}, err
		}
	}
	seconds, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return BuildInfo{}, fmt.Errorf("failed to parse the source date epoch %q: %w", epoch, err)
	}
	return BuildInfo{Version: version, Commit: commit, Date: time.Unix(seconds, 0).UTC()}, nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("failed to run git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// DateString is the date as the binary and the annotations carry it.
func (b BuildInfo) DateString() string {
	return b.Date.UTC().Format(time.RFC3339)
}

// LDFlags are the -X flags that stamp the version, commit and date into
// internal/version. They are the one definition of the stamp: make build and
// the image's binaries both use them (hack/release ldflags prints them).
func (b BuildInfo) LDFlags() string {
	return fmt.Sprintf("-X %[1]s.Version=%[2]s -X %[1]s.Commit=%[3]s -X %[1]s.Date=%[4]s",
		VersionPackage, b.Version, b.Commit, b.DateString())
}

// Annotations are the org.opencontainers.image.* annotations of the index,
// also set as labels in each image's config, where docker inspect shows them.
func (b BuildInfo) Annotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   SourceURL,
		"org.opencontainers.image.version":  b.Version,
		"org.opencontainers.image.revision": b.Commit,
		"org.opencontainers.image.created":  b.DateString(),
		"org.opencontainers.image.licenses": License,
		"org.opencontainers.image.title":    "instance-operator",
	}
}

func (b BuildInfo) validate() error {
	switch {
	case b.Version == "" || strings.ContainsAny(b.Version, " \t\n'\""):
		return fmt.Errorf("version %q must be non-empty and without spaces or quotes", b.Version)
	case b.Commit == "" || strings.ContainsAny(b.Commit, " \t\n'\""):
		return fmt.Errorf("commit %q must be non-empty and without spaces or quotes", b.Commit)
	case b.Date.IsZero():
		return fmt.Errorf("the commit date is not set")
	}
	return nil
}
