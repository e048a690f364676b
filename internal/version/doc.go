// Package version holds what a build of instance-operator was made from:
// the release version, the commit and the commit's date. The release build
// (internal/release, make build, make image) stamps them with -ldflags -X;
// a plain go build leaves the defaults.
package version
