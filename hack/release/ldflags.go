package main

import (
	"context"
	"flag"
	"fmt"
)

// runLDFlags prints the version stamp for go build -ldflags, so that make
// build stamps the binary exactly as the image build does.
func runLDFlags(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ldflags", flag.ContinueOnError)
	info, err := parseWithBuildInfo(ctx, fs, args)
	if err != nil {
		return err
	}
	fmt.Println(info.LDFlags())
	return nil
}
