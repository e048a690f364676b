// Command release builds and publishes instance-operator's release artefacts
// with internal/release, one subcommand each:
//
//	go run ./hack/release image --platforms linux/amd64,linux/arm64 --out dist/image
//	go run ./hack/release push-image --layout dist/image --ref registry/repo:tag
//	go run ./hack/release ldflags
//
// The Makefile's image, image-push and build targets call it.
package main
