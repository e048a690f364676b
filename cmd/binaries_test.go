package main

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// programs are the binaries that run outside `go test`: the manager, the
// local stack, and the programs make runs for figures and reliability (with
// test/load, the library they share).
var programs = []string{
	"github.com/k0rdent-ai/instance-operator/cmd",
	"github.com/k0rdent-ai/instance-operator/cmd/devstack",
	"github.com/k0rdent-ai/instance-operator/test/bench",
	"github.com/k0rdent-ai/instance-operator/test/load",
	"github.com/k0rdent-ai/instance-operator/test/reliability",
}

// importersOfTesting lists the packages in the dependency graph of pkgs that
// import "testing", as the go tool resolves it for a build.
func importersOfTesting(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`}, pkgs...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var importers []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 1 && slices.Contains(fields[1:], "testing") {
			importers = append(importers, fields[0])
		}
	}
	return importers
}

func TestProductionBinariesDoNotLinkTesting(t *testing.T) {
	if importers := importersOfTesting(t, programs...); len(importers) > 0 {
		t.Errorf("the programs link package testing through %v; move what they need into a package that does not import it (see internal/controlplane)", importers)
	}
	// The check itself: internal/testenv imports testing, so it must be found there.
	if importers := importersOfTesting(t, "github.com/k0rdent-ai/instance-operator/internal/testenv"); !slices.Contains(importers, "github.com/k0rdent-ai/instance-operator/internal/testenv") {
		t.Errorf("the check missed internal/testenv's import of testing: found %v", importers)
	}
}
