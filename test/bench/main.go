package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// settings are read from the environment so that `make bench` and its short
// form in CI differ only in numbers.
type settings struct {
	// N is how many instances converge (BENCH_N, default 2000).
	N int
	// MemN is how many instances the manager holds for the memory figure
	// (BENCH_MEM_N, default 5 × N).
	MemN int
	// GetInstances is how many instances the GET benchmark reads at random.
	GetInstances int
	// GetDuration is how long each target is read at each concurrency (BENCH_GET_SECONDS).
	GetDuration time.Duration
	// Concurrency is the manager's --max-concurrent-reconciles and the floor's writers.
	Concurrency int
	// Creators is how many clients create instances at once.
	Creators int
	// ListInstances is the size of the list page timed (500, the largest page).
	ListInstances int
	// Short selects bench-short's looser targets (BENCH_SHORT=1).
	Short bool
}

type figure struct {
	name  string
	value float64
	unit  string
	note  string
}

type report struct{ figures []figure }

func (r *report) add(name string, value float64, unit, note string) {
	r.figures = append(r.figures, figure{name, value, unit, note})
}

// print writes the table and the BENCH lines, each figure with a target
// followed by "# ok" or "# FAIL", and returns the names of those that failed.
func (r *report) print(targets map[string]bound) (failed []string) {
	verdict := func(f figure) string {
		b, ok := targets[f.name]
		switch {
		case !ok:
			return ""
		case b.holds(f.value):
			return "# ok (target " + b.String() + ")"
		default:
			failed = append(failed, f.name)
			return "# FAIL (target " + b.String() + ")"
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tUNIT\tTARGET\tNOTE")
	for _, f := range r.figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.name, format(f.value), f.unit, verdict(f), f.note)
	}
	_ = tw.Flush()
	fmt.Println()
	failed = nil
	for _, f := range r.figures {
		line := fmt.Sprintf("BENCH %s %s", f.name, format(f.value))
		if v := verdict(f); v != "" {
			line += " " + v
		}
		fmt.Println(line)
	}
	return failed
}

// bound is a figure's target: at least or at most a value.
type bound struct {
	atMost bool
	value  float64
}

func atLeast(v float64) bound { return bound{value: v} }
func atMost(v float64) bound  { return bound{atMost: true, value: v} }

func (b bound) holds(v float64) bool {
	if b.atMost {
		return v <= b.value
	}
	return v >= b.value
}

func (b bound) String() string {
	if b.atMost {
		return "<= " + format(b.value)
	}
	return ">= " + format(b.value)
}

// targets are the targets for make bench, ratios to baselines of
// the same run so that they hold on a shared machine; bench-short's are
// looser, chosen from repeated runs on a loaded 2-core machine
// (docs/benchmarks.md) so that noise does not fail them but a regression does.
func targets(short bool) map[string]bound {
	if short {
		return map[string]bound{
			"facade_vs_bare_rps_ratio_c1":           atLeast(0.35),
			"facade_vs_bare_rps_ratio_c64":          atLeast(0.6),
			"facade_vs_bare_p99_ratio_c64":          atMost(3),
			"facade_vs_apiserver_rps_ratio_c64":     atLeast(4),
			"facade_vs_apiserver_list500_p99_ratio": atMost(0.5),
			"converge_vs_floor_ratio":               atMost(2.5),
			"manager_rss_mib_1k":                    atMost(100),
		}
	}
	return map[string]bound{
		"facade_vs_bare_rps_ratio_c1":           atLeast(0.8),
		"facade_vs_bare_rps_ratio_c64":          atLeast(0.8),
		"facade_vs_bare_p99_ratio_c64":          atMost(1.5),
		"facade_vs_apiserver_rps_ratio_c64":     atLeast(10),
		"facade_vs_apiserver_list500_p99_ratio": atMost(0.5),
		"converge_vs_floor_ratio":               atMost(1.5),
		"manager_rss_mib_10k":                   atMost(150),
	}
}

func format(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func main() {
	// The floor server is this program run again (see startFloor).
	if os.Getenv(floorDataEnv) != "" {
		if err := serveFloor(); err != nil {
			fmt.Fprintln(os.Stderr, "bench floor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	devstack.SetProgramLogger()
	n := load.EnvInt("BENCH_N", 2000)
	scale := os.Getenv("BENCH_SCALE") != ""
	s := settings{
		N:             n,
		MemN:          load.EnvInt("BENCH_MEM_N", 5*n),
		GetInstances:  min(100, n),
		GetDuration:   time.Duration(load.EnvInt("BENCH_GET_SECONDS", 4)) * time.Second,
		Concurrency:   load.EnvInt("BENCH_CONCURRENCY", 16),
		Creators:      load.EnvInt("BENCH_CREATORS", 64),
		ListInstances: 500,
		Short:         os.Getenv("BENCH_SHORT") != "",
	}
	var sc scaleSettings
	if scale {
		var err error
		if sc, err = readScaleSettings(); err != nil {
			return err
		}
		// The simulated cloud must have room for the largest holding.
		s.MemN = slices.Max(sc.Holds)
	}
	root, assets, manager, err := load.Locate("BENCH_MANAGER")
	if err != nil {
		return err
	}
	// The manager reaches the simulated cloud as deployed (config/simcloud,
	// the chart): a service of its own over HTTP, so the manager's memory
	// and CPU are its own, not a fake cloud's.
	simcloud := os.Getenv("BENCH_SIMCLOUD")
	if simcloud == "" {
		simcloud = filepath.Join(filepath.Dir(manager), "simcloud")
	}
	if _, err := os.Stat(simcloud); err != nil {
		return fmt.Errorf("no simulated cloud service at %s (go build -o %s ./cmd/simcloud): %w", simcloud, simcloud, err)
	}
	work, err := os.MkdirTemp("", "instance-operator-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	apiPort, err := load.FreePort()
	if err != nil {
		return err
	}
	metricsPort, err := load.FreePort()
	if err != nil {
		return err
	}
	pprofPort, err := load.FreePort()
	if err != nil {
		return err
	}
	ctx := context.Background()
	fmt.Printf("bench: N=%d, memory N=%d, %d reconcilers, %d creators, GET %s per target and concurrency, client-side rate limits lifted\n",
		s.N, s.MemN, s.Concurrency, s.Creators, s.GetDuration)
	stack, err := devstack.Start(ctx, devstack.Options{
		Root: root, AssetsDir: assets, DataDir: filepath.Join(work, "dev"),
		ManagerPath: manager, SimcloudPath: simcloud, APIAddress: fmt.Sprintf("127.0.0.1:%d", apiPort),
		Log: load.PrefixWriter{Prefix: "stack | "},
		ManagerArgs: []string{
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
			// The bench scrapes the manager's own write count over plain HTTP.
			"--metrics-secure=false",
			fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort),
			fmt.Sprintf("--concurrency=%d", s.Concurrency),
			"--sim-latency-allocate=0", "--sim-latency-boot=0", "--sim-latency-stop=0",
			"--sim-latency-suspend=0", "--sim-latency-resume=0", "--sim-latency-delete=0",
			fmt.Sprintf("--sim-instance-types=%s=%d", load.TypeName, 10*s.MemN),
			// The bench measures the server side, so the manager's own
			// client-side limits (a safety default of 200 QPS) and the API's
			// per-principal rate limit are lifted, as the floor has none.
			"--kube-api-qps=10000", "--kube-api-burst=20000",
			"--api-rate-limit=1000000", "--api-rate-burst=1000000",
			// The access log is an Info line per request: BENCH_LOG_LEVEL=info
			// (or debug, the deployed default) times it too.
			"--zap-log-level=" + cmp.Or(os.Getenv("BENCH_LOG_LEVEL"), "error"),
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = stack.Stop() }()
	b := &bench{s: s, stack: stack, work: work, metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		apiURL:   fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		pprofURL: fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", pprofPort)}
	if b.token, err = devstack.ReadToken(stack.TokenFile); err != nil {
		return err
	}
	if b.client, err = load.Client(stack); err != nil {
		return err
	}

	var r report
	if scale {
		return b.scale(ctx, sc, &r)
	}
	steps := []struct {
		name string
		run  func(context.Context, *report) error
	}{
		{"API read path", b.getBenchmark},
		{"convergence", b.convergeBenchmark},
		{"memory", b.memoryBenchmark},
	}
	only := os.Getenv("BENCH_ONLY")
	for _, step := range steps {
		if only != "" && !strings.Contains(step.name, only) {
			continue
		}
		fmt.Printf("bench: %s ...\n", step.name)
		if err := step.run(ctx, &r); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	fmt.Println()
	if failed := r.print(targets(s.Short)); len(failed) > 0 {
		return fmt.Errorf("%d figures missed their targets: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}
