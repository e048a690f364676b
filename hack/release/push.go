package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/k0rdent-ai/instance-operator/internal/release"
)

// runPushImage pushes the index that image wrote and prints the pushed
// reference by digest.
func runPushImage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("push-image", flag.ContinueOnError)
	dir := fs.String("layout", "dist/image", "OCI layout written by the image subcommand")
	ref := fs.String("ref", "", "registry/repository:tag to push to (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ref == "" {
		return fmt.Errorf("--ref is required, such as --ref ghcr.io/k0rdent-ai/instance-operator:v0.1.0")
	}
	idx, err := release.IndexFromLayout(*dir)
	if err != nil {
		return err
	}
	pushed, err := release.PushIndex(ctx, idx, *ref)
	if err != nil {
		return err
	}
	fmt.Println(pushed)
	return nil
}
