package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// check is one printed figure and whether it passed.
type check struct {
	name  string
	value string
	ok    bool
}

type checks []check

func (c *checks) add(name string, value any, ok bool) {
	*c = append(*c, check{name, fmt.Sprint(value), ok})
	status := "ok"
	if !ok {
		status = "FAILED"
	}
	fmt.Printf("RELIABILITY %s %v\t# %s\n", name, value, status)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

type env struct {
	root, assets, manager, work string
	// simcloud is the simulated cloud's service binary: every run reaches
	// its cloud over the network, as the manager reaches a real one.
	simcloud string
}

func run() error {
	devstack.SetProgramLogger()
	root, assets, manager, err := load.Locate("RELIABILITY_MANAGER")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "instance-operator-reliability-")
	if err != nil {
		return err
	}
	if os.Getenv("RELIABILITY_KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		fmt.Printf("reliability: keeping %s (RELIABILITY_KEEP)\n", work)
	}
	simcloudBin := os.Getenv("RELIABILITY_SIMCLOUD")
	if simcloudBin == "" {
		simcloudBin = filepath.Join(filepath.Dir(manager), "simcloud")
	}
	if _, err := os.Stat(simcloudBin); err != nil {
		return fmt.Errorf("no simulated cloud service at %s (go build -o %s ./cmd/simcloud): %w", simcloudBin, simcloudBin, err)
	}
	e := env{root: root, assets: assets, manager: manager, work: work, simcloud: simcloudBin}

	only := os.Getenv("RELIABILITY_ONLY")
	var results checks
	for _, part := range []struct {
		name string
		run  func(context.Context, env, *checks) error
	}{
		{"crash", crashSafety},
		{"faults", faults},
		{"hostile", hostileClients},
		{"tenancy", tenancyAttacks},
		{"fuzz", fuzzing},
		{"failover", failover},
		{"api-replica", apiReplicaKill},
		{"apiserver-restart", apiserverRestart},
		{"partition", simcloudPartition},
		{"delete-race", deleteRace},
	} {
		if only != "" && !strings.Contains(","+only+",", ","+part.name+",") {
			continue
		}
		fmt.Printf("reliability: %s ...\n", part.name)
		if err := part.run(context.Background(), e, &results); err != nil {
			return fmt.Errorf("%s: %w", part.name, err)
		}
	}
	failed := 0
	for _, c := range results {
		if !c.ok {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(results))
	}
	fmt.Printf("reliability: all %d checks passed\n", len(results))
	return nil
}

// startStack starts a control plane and manager of its own under work/name.
func (e env) startStack(ctx context.Context, name string, managerArgs ...string) (*devstack.Stack, client.WithWatch, string, error) {
	port, err := load.FreePort()
	if err != nil {
		return nil, nil, "", err
	}
	stack, err := devstack.Start(ctx, devstack.Options{
		Root: e.root, AssetsDir: e.assets, DataDir: filepath.Join(e.work, name),
		ManagerPath: e.manager, APIAddress: fmt.Sprintf("127.0.0.1:%d", port), SimcloudPath: e.simcloud,
		Log:         load.PrefixWriter{Prefix: name + " | "},
		ManagerArgs: append([]string{"--zap-log-level=" + logLevel()}, managerArgs...),
	})
	if err != nil {
		return nil, nil, "", err
	}
	c, err := load.Client(stack)
	if err != nil {
		_ = stack.Stop()
		return nil, nil, "", err
	}
	return stack, c, fmt.Sprintf("http://127.0.0.1:%d", port), nil
}

// startRollout starts a stack of its own for a rollout of n instances in
// the project namespace ns, with a simulated cloud that has room for ten
// times n, so capacity never decides a check.
func (e env) startRollout(ctx context.Context, ns string, n int, managerArgs ...string) (*devstack.Stack, client.WithWatch, error) {
	args := append([]string{fmt.Sprintf("--sim-instance-types=%s=%d", load.TypeName, 10*n)}, managerArgs...)
	stack, c, _, err := e.startStack(ctx, ns, args...)
	if err != nil {
		return nil, nil, err
	}
	if err := load.EnsureProjectNamespace(ctx, c, ns); err != nil {
		_ = stack.Stop()
		return nil, nil, err
	}
	return stack, c, nil
}

// logLevel is the manager's log level: RELIABILITY_LOG_LEVEL, or error.
func logLevel() string {
	if v := os.Getenv("RELIABILITY_LOG_LEVEL"); v != "" {
		return v
	}
	return "error"
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
