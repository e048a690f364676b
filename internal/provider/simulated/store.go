package simulated

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// store keeps one JSON file per machine under dir/machines, written
// atomically (a temporary file renamed over the old one), so a crash leaves
// either the old or the new state of a machine, and a change to one machine
// costs the same however many there are. A store without a directory keeps nothing.
type store struct {
	dir string
}

func openStore(stateDir string) (*store, error) {
	if stateDir == "" {
		return &store{}, nil
	}
	dir := filepath.Join(stateDir, "machines")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the simulated cloud's state directory: %w", err)
	}
	return &store{dir: dir}, nil
}

func (s *store) load() ([]*machine, error) {
	if s.dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read the simulated cloud's state: %w", err)
	}
	var out []*machine
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // a temporary file left by a crash mid-write
		}
		data, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("failed to read machine state: %w", err)
		}
		m := &machine{}
		if err := json.Unmarshal(data, m); err != nil {
			return nil, fmt.Errorf("failed to parse machine state %s: %w", e.Name(), err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *store) save(m *machine) error {
	if s.dir == "" {
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("failed to encode machine %s: %w", m.ID, err)
	}
	path := filepath.Join(s.dir, m.ID+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("failed to write machine %s: %w", m.ID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to write machine %s: %w", m.ID, err)
	}
	return nil
}

func (s *store) remove(id string) {
	if s.dir != "" {
		_ = os.Remove(filepath.Join(s.dir, id+".json"))
	}
}
