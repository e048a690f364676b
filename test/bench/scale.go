package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/k0rdent-ai/instance-operator/test/load"
)

// scaleSettings are make bench-scale's sizes: how cost grows with them.
type scaleSettings struct {
	// Converge are the numbers of instances created at once and timed to
	// RUNNING beside the floor (BENCH_SCALE_CONVERGE, default 500,1000,2000,4000).
	Converge []int
	// Holds are the numbers of instances the manager's memory is read
	// holding (BENCH_SCALE_HOLD, default 1000,10000,50000), in rising order.
	Holds []int
}

func readScaleSettings() (scaleSettings, error) {
	converge, err := intList("BENCH_SCALE_CONVERGE", "500,1000,2000,4000")
	if err != nil {
		return scaleSettings{}, err
	}
	holds, err := intList("BENCH_SCALE_HOLD", "1000,10000,50000")
	if err != nil {
		return scaleSettings{}, err
	}
	for i := 1; i < len(holds); i++ {
		if holds[i] <= holds[i-1] {
			return scaleSettings{}, fmt.Errorf("BENCH_SCALE_HOLD must rise: %v", holds)
		}
	}
	return scaleSettings{Converge: converge, Holds: holds}, nil
}

func intList(env, def string) ([]int, error) {
	v := os.Getenv(env)
	if v == "" {
		v = def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive number", env, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// scale is make bench-scale: the convergence and its floor at each size,
// then the manager's memory holding each number of instances, as BENCH lines
// and a table, with one target: the memory per 10k instances at the largest
// holding no higher than at 10k.
func (b *bench) scale(ctx context.Context, sc scaleSettings, r *report) error {
	type convergeRow struct {
		n        int
		converge float64
		floor    float64
	}
	var converges []convergeRow
	for _, n := range sc.Converge {
		fmt.Printf("bench: convergence of %d ...\n", n)
		ns := fmt.Sprintf("scale-converge-%d", n)
		c, err := b.converge(ctx, n, ns, fmt.Sprintf("scale-floor-%d", n))
		if err != nil {
			return fmt.Errorf("convergence of %d: %w", n, err)
		}
		// Each size starts from an empty cluster and a fresh manager: the
		// converged instances are dropped with the manager stopped.
		if err := load.ForceDeleteAll(ctx, b.client, ns, b.s.Concurrency); err != nil {
			return err
		}
		if err := b.stack.StartManager(ctx); err != nil {
			return err
		}
		row := convergeRow{n, round(c.converge.Seconds(), 2), round(c.floor.Seconds(), 2)}
		converges = append(converges, row)
		r.add(fmt.Sprintf("converge_%d_s", n), row.converge, "s", fmt.Sprintf("%d instances created at once to all RUNNING", n))
		r.add(fmt.Sprintf("floor_%d_s", n), row.floor, "s", fmt.Sprintf("bare client: create + %d status writes each", c.statusWrites))
		r.add(fmt.Sprintf("converge_vs_floor_ratio_%d", n), round(row.converge/row.floor, 2), "x", "")
	}

	type holdRow struct {
		instances   int
		peak, per10 float64
		encodings   float64
	}
	var holds []holdRow
	per10k := map[int]float64{}
	for _, total := range sc.Holds {
		fmt.Printf("bench: the manager holding %d instances ...\n", total)
		h, err := b.hold(ctx, "scale-memory", "hold"+kilo(total), total)
		if err != nil {
			return fmt.Errorf("holding %d: %w", total, err)
		}
		per := h.peakMiB / (float64(h.instances) / 10000)
		per10k[total] = per
		holds = append(holds, holdRow{h.instances, round(h.peakMiB, 1), round(per, 1), round(h.encodingsMiB, 1)})
		k := kilo(total)
		r.add("manager_rss_mib_"+k, round(h.peakMiB, 1), "MiB", fmt.Sprintf("peak resident memory holding %d instances, all reconciled to RUNNING", h.instances))
		r.add("manager_rss_mib_per_10k_at_"+k, round(per, 1), "MiB", "peak resident memory per 10,000 instances held")
		r.add("api_encodings_mib_"+k, round(h.encodingsMiB, 1), "MiB", fmt.Sprintf("live heap of the API's stored encodings, %d read", h.listed))
	}
	largest := sc.Holds[len(sc.Holds)-1]
	if at10k, ok := per10k[10000]; ok && largest > 10000 {
		r.add(fmt.Sprintf("rss_per_10k_%s_vs_10k_ratio", kilo(largest)), round(per10k[largest]/at10k, 2), "x",
			"memory per 10k instances at the largest holding over that at 10k")
	}

	fmt.Println()
	failed := r.print(scaleTargets)
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "instances\tconverge s\tfloor s\tratio\t")
	for _, c := range converges {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t\n", c.n, format(c.converge), format(c.floor), format(round(c.converge/c.floor, 2)))
	}
	_ = tw.Flush()
	fmt.Println()
	fmt.Fprintln(tw, "instances held\tpeak RSS MiB\tMiB per 10k\tencodings MiB\t")
	for _, h := range holds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t\n", h.instances, format(h.peak), format(h.per10), format(h.encodings))
	}
	_ = tw.Flush()
	if len(failed) > 0 {
		return fmt.Errorf("%d figures missed their targets: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// scaleTargets: memory per instance must not grow with the number held.
var scaleTargets = map[string]bound{
	"rss_per_10k_50k_vs_10k_ratio": atMost(1),
}
