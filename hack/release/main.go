package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// subcommand runs one subcommand with the arguments after its name.
type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// subcommands are the commands of hack/release; each lives in its own file.
var subcommands = map[string]subcommand{
	"image":        {summary: "build the multi-platform manager image as an OCI layout", run: runImage},
	"push-image":   {summary: "push the image index of an OCI layout to a registry", run: runPushImage},
	"ldflags":      {summary: "print the -ldflags that stamp the version into the manager", run: runLDFlags},
	"install-yaml": {summary: "write install.yaml: config/default with the image pinned by digest", run: runInstallYAML},
	"chart":        {summary: "lint and package the Helm chart, stamped with the build's version", run: runChart},
	"push-chart":   {summary: "push the packaged chart to an OCI repository", run: runPushChart},
	"version":      {summary: "print the build's version (the image's tag, the chart's appVersion)", run: runVersion},
	"k0rdent":      {summary: "write k0rdent's HelmRepository, ServiceTemplate and a sample MultiClusterService", run: runK0rdent},
}

func main() {
	if len(os.Args) < 2 || subcommands[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := subcommands[os.Args[1]].run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "release %s: %v\n", os.Args[1], err)
		stop()
		os.Exit(1)
	}
}

func usage() {
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: go run ./hack/release <subcommand> [flags]")
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", name, subcommands[name].summary)
	}
}
