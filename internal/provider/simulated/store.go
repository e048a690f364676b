package simulated

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// store keeps the machines in an append-only journal, <state>/machines.log:
// one JSON line per change of a machine (the whole machine) or per removal.
// A change costs one write(2), so the cloud's bookkeeping stays cheap beside
// the operator it serves (a file rewritten and renamed per change made ext4
// flush each one). A process killed at any point keeps every line whose
// write returned, so the cloud never forgets a machine it reported; a line
// torn by a power loss can only be the last one and is dropped on load.
// Opening the store compacts the journal to one line per machine, as does a
// journal grown well past the machines it holds. One process writes a state
// directory at a time. A store without a directory keeps nothing.
type store struct {
	dir     string
	journal *os.File
	// lines counts the journal's lines, to know when compacting pays.
	lines int
}

// record is one journal line: a machine as it now is, or the ID of a removed one.
type record struct {
	Machine *machine `json:"machine,omitempty"`
	Removed string   `json:"removed,omitempty"`
}

const journalName = "machines.log"

// legacyDir held one JSON file per machine before the journal; load reads it
// once, so a state directory from an older operator keeps its machines.
const legacyDir = "machines"

func openStore(stateDir string) (*store, error) {
	if stateDir == "" {
		return &store{}, nil
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the simulated cloud's state directory: %w", err)
	}
	return &store{dir: stateDir}, nil
}

// load reads the machines and compacts the journal to them.
func (s *store) load() ([]*machine, error) {
	if s.dir == "" {
		return nil, nil
	}
	byID := map[string]*machine{}
	legacy, err := readLegacy(filepath.Join(s.dir, legacyDir))
	if err != nil {
		return nil, err
	}
	for _, m := range legacy {
		byID[m.ID] = m
	}
	if err := s.replay(func(r record) {
		switch {
		case r.Machine != nil:
			byID[r.Machine.ID] = r.Machine
		case r.Removed != "":
			delete(byID, r.Removed)
		}
	}); err != nil {
		return nil, err
	}
	out := make([]*machine, 0, len(byID))
	for _, m := range byID {
		out = append(out, m)
	}
	if err := s.compact(out); err != nil {
		return nil, err
	}
	if len(legacy) > 0 {
		if err := os.RemoveAll(filepath.Join(s.dir, legacyDir)); err != nil {
			return nil, fmt.Errorf("failed to remove the simulated cloud's old state files: %w", err)
		}
	}
	return out, nil
}

// replay calls apply for each whole line of the journal, in order.
func (s *store) replay(apply func(record)) error {
	f, err := os.Open(filepath.Join(s.dir, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read the simulated cloud's journal: %w", err)
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := rd.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var r record
			if jerr := json.Unmarshal(line, &r); jerr != nil {
				return fmt.Errorf("failed to parse line %d of the simulated cloud's journal: %w", n, jerr)
			}
			apply(r)
		}
		// A last line without its newline was torn by a power loss: its
		// change was never acknowledged, so it is dropped.
		if err != nil {
			return nil
		}
	}
}

// compact replaces the journal with one line per machine and reopens it for appending.
func (s *store) compact(machines []*machine) error {
	var buf bytes.Buffer
	for _, m := range machines {
		line, err := json.Marshal(record{Machine: m})
		if err != nil {
			return fmt.Errorf("failed to encode machine %s: %w", m.ID, err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	path := filepath.Join(s.dir, journalName)
	if err := writeFileSynced(path+".tmp", buf.Bytes()); err != nil {
		return fmt.Errorf("failed to compact the simulated cloud's journal: %w", err)
	}
	if s.journal != nil {
		_ = s.journal.Close()
		s.journal = nil
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("failed to compact the simulated cloud's journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open the simulated cloud's journal: %w", err)
	}
	s.journal, s.lines = f, len(machines)
	return nil
}

func writeFileSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// append writes one record as one line with one write(2).
func (s *store) append(r record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.journal.Write(append(line, '\n')); err != nil {
		return err
	}
	s.lines++
	return nil
}

// save records m as it now is.
func (s *store) save(m *machine) error {
	if s.dir == "" {
		return nil
	}
	if err := s.append(record{Machine: m}); err != nil {
		return fmt.Errorf("failed to record machine %s: %w", m.ID, err)
	}
	return nil
}

// remove records that machine id is gone.
func (s *store) remove(id string) error {
	if s.dir == "" {
		return nil
	}
	if err := s.append(record{Removed: id}); err != nil {
		return fmt.Errorf("failed to record the removal of machine %s: %w", id, err)
	}
	return nil
}

// needsCompaction reports whether the journal holds so many more lines than
// live machines would take that compacting it pays, so a long-lived cloud's
// journal stays in proportion to what it holds.
func (s *store) needsCompaction(live int) bool {
	const slack = 4096
	return s.dir != "" && s.lines >= 4*live+slack
}

// readLegacy reads the per-machine files of older state directories.
func readLegacy(dir string) ([]*machine, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the simulated cloud's state: %w", err)
	}
	var out []*machine
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // a temporary file left by a crash mid-write
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
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
