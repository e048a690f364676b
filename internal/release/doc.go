// Package release builds what instance-operator ships, without a Docker
// engine: the manager binaries, stamped with the version, commit and commit
// date, and a multi-platform OCI image index of them, written as an OCI layout
// and pushed to a registry with go-containerregistry. Every timestamp is the
// commit's, so two builds of one commit give the same index digest.
//
// hack/release is its command line; make image and make image-push call it.
package release
