package version

import "fmt"

// Set with -ldflags "-X <package>.Version=... -X <package>.Commit=... -X <package>.Date=...".
// They are variables, not constants, because -X can only set string variables.
var (
	// Version is the release version, such as v0.3.0, or a git describe for
	// builds between releases.
	Version = "dev"
	// Commit is the full git commit the binary was built from.
	Commit = "unknown"
	// Date is the commit's date (RFC 3339, UTC), not the build's, so that
	// two builds of one commit are byte for byte the same.
	Date = "unknown"
)

// String is the one line that manager --version prints.
func String() string {
	return fmt.Sprintf("instance-operator %s (commit %s, %s)", Version, Commit, Date)
}
