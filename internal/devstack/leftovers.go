package devstack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockDataDir takes an exclusive lock on the data directory for the life of
// this process, so that two stacks never share one etcd data directory.
func lockDataDir(dataDir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dataDir, "devstack.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open the data directory's lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another stack is running on %s: stop it first (Ctrl-C in its terminal)", dataDir)
	}
	return f, nil
}

// stopLeftovers ends the processes that a stack killed without its Ctrl-C
// left running on dataDir (etcd, kube-apiserver, the manager). It runs with
// the data directory's lock held, so no live stack owns them.
func stopLeftovers(dataDir string, logf func(string, ...any)) {
	pids := ProcessesUsing(dataDir)
	if len(pids) == 0 {
		return
	}
	logf("stopping %d processes left running on %s by an earlier run: %v", len(pids), dataDir, pids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ProcessesUsing(dataDir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range ProcessesUsing(dataDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesUsing lists the other processes whose command line names a path
// under dataDir.
func ProcessesUsing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if strings.Contains(arg, dir+string(filepath.Separator)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
