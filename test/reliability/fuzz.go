package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/k0rdent-ai/instance-operator/test/load"
)

// fuzzing runs every Fuzz target of the REST API's packages for a bounded time.
func fuzzing(ctx context.Context, e env, results *checks) error {
	seconds := load.EnvInt("RELIABILITY_FUZZ_SECONDS", 30)
	list := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-list", "^Fuzz", "./internal/api/...")
	list.Dir = e.root
	out, err := list.CombinedOutput()
	if err != nil {
		return fmt.Errorf("failed to list the fuzz targets: %w\n%s", err, out)
	}
	type target struct{ pkg, name string }
	var targets []target
	var pending []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 1 && strings.HasPrefix(fields[0], "Fuzz"):
			pending = append(pending, fields[0])
		case len(fields) >= 2 && fields[0] == "ok":
			for _, name := range pending {
				targets = append(targets, target{fields[1], name})
			}
			pending = nil
		}
	}
	crashes := 0
	for _, t := range targets {
		fmt.Printf("fuzz | %s %s for %ds\n", t.pkg, t.name, seconds)
		run := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+t.name+"$",
			"-fuzztime", fmt.Sprintf("%ds", seconds), "-parallel", "2", t.pkg)
		run.Dir = e.root
		if out, err := run.CombinedOutput(); err != nil {
			crashes++
			fmt.Printf("fuzz | %s failed:\n%s\n", t.name, out)
		}
	}
	results.add("fuzz_targets", len(targets), len(targets) > 0)
	results.add("fuzz_crashes", crashes, crashes == 0)
	return nil
}
