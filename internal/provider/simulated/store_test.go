package simulated

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
)

func journalLines(t *testing.T, dir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// A cloud reopened on its state directory knows exactly the machines the
// first one had, in the phases it left them, and not the removed ones.
func TestJournalRestoresMachinesAndRemovals(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	dir := t.TempDir()
	ctx := context.Background()
	c := newCloud(t, testConfig(clock, dir))
	kept, gone := instance("kept"), instance("gone")
	if _, err := c.Create(ctx, kept); err != nil {
		t.Fatal(err)
	}
	m, err := c.Create(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	clock.Step(2 * time.Minute)
	mustPhase(t, c, kept, provider.PhaseRunning)
	if err := c.Lose(m.ID); err != nil {
		t.Fatal(err)
	}

	restarted := newCloud(t, testConfig(clock, dir))
	machines := restarted.Machines()
	if len(machines) != 1 || machines[0].Name != "kept" || machines[0].Phase != provider.PhaseRunning {
		t.Fatalf("after restart: %+v, want only kept, RUNNING", machines)
	}
	if _, err := restarted.Observe(ctx, gone); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("the removed machine came back: %v", err)
	}
	if n := journalLines(t, dir); n != 1 {
		t.Fatalf("journal has %d lines after the reopen compacted it, want 1", n)
	}
}

// A last line torn by a power loss is dropped; the lines before it count.
func TestJournalDropsATornLastLine(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	dir := t.TempDir()
	c := newCloud(t, testConfig(clock, dir))
	if _, err := c.Create(context.Background(), instance("a")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"machine":{"id":"torn","tok`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	restarted := newCloud(t, testConfig(clock, dir))
	if machines := restarted.Machines(); len(machines) != 1 || machines[0].Name != "a" {
		t.Fatalf("after a torn line: %+v, want machine a only", machines)
	}
}

// A corrupt line in the middle is not a torn write: opening fails loudly
// rather than forgetting machines.
func TestJournalRefusesACorruptLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, journalName), []byte("not json\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(clocktesting.NewFakeClock(time.Now()), dir)
	if _, err := New(cfg); err == nil {
		t.Fatal("a corrupt journal opened without an error")
	}
}

// State directories of older operators (one file per machine) are read
// once and moved into the journal.
func TestLegacyStateIsMigrated(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	dir := t.TempDir()
	c := newCloud(t, testConfig(clock, ""))
	m, err := c.Create(context.Background(), instance("old"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(c.byID[m.ID])
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(dir, legacyDir)
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, m.ID+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, m.ID+".json.tmp"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}

	migrated := newCloud(t, testConfig(clock, dir))
	if machines := migrated.Machines(); len(machines) != 1 || machines[0].ID != m.ID {
		t.Fatalf("after migration: %+v, want %s", machines, m.ID)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the old state directory is still there: %v", err)
	}
	again := newCloud(t, testConfig(clock, dir))
	if machines := again.Machines(); len(machines) != 1 || machines[0].ID != m.ID {
		t.Fatalf("after a second open: %+v, want %s", machines, m.ID)
	}
}

// Churn does not grow the journal without bound: it is compacted in proportion to the live machines.
func TestJournalCompactsUnderChurn(t *testing.T) {
	cfg := testConfig(clocktesting.NewFakeClock(time.Now()), t.TempDir())
	cfg.Latencies = Latencies{}
	c := newCloud(t, cfg)
	ctx := context.Background()
	live := instance("live")
	if _, err := c.Create(ctx, live); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		inst := instance(fmt.Sprintf("churn-%d", i))
		if _, err := c.Create(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Observe(ctx, inst); !errors.Is(err, provider.ErrNotFound) {
			t.Fatalf("deleted machine %d still observed: %v", i, err)
		}
	}
	if n := journalLines(t, cfg.StateDir); n > 4096+4 {
		t.Fatalf("journal has %d lines for 1 machine after churn: not compacted", n)
	}
	restarted := newCloud(t, cfg)
	if machines := restarted.Machines(); len(machines) != 1 || machines[0].Name != "live" {
		t.Fatalf("after churn and restart: %+v, want only live", machines)
	}
}
