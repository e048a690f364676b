package devstack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Replica is a manager process of its own beside the stack's, with the same
// kubeconfig and cloud, its own REST API address and its own log: the second
// (or first) of the replicas a cluster runs.
type Replica struct {
	// Name tells the replica's log apart: <data dir>/manager-<name>.log.
	Name string
	// APIAddress is where its REST API listens, host:port.
	APIAddress string

	cmd  *exec.Cmd
	log  *os.File
	done chan error
}

// StartReplica starts a manager with the stack's flags, ManagerArgs and
// extra, serving the REST API on apiAddress, and waits until that answers
// /readyz. Stop stops it with the stack, if it still runs.
func (s *Stack) StartReplica(ctx context.Context, name, apiAddress string, extra ...string) (*Replica, error) {
	logPath := filepath.Join(s.opts.DataDir, "manager-"+name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open replica %s's log: %w", name, err)
	}
	args := append(s.managerArgs(apiAddress), extra...)
	cmd := exec.Command(s.opts.ManagerPath, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to start replica %s: %w", name, err)
	}
	r := &Replica{Name: name, APIAddress: apiAddress, cmd: cmd, log: f, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	s.replicas = append(s.replicas, r)
	if err := r.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("replica %s (log %s): %w", name, logPath, err)
	}
	s.logf("manager replica %s started (pid %d, API on http://%s, log in %s)", name, cmd.Process.Pid, apiAddress, logPath)
	return r, nil
}

func (r *Replica) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if resp, err := hc.Get("http://" + r.APIAddress + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("exited before its API was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("its REST API did not become ready on %s", r.APIAddress)
}

// PID is the replica's process id.
func (r *Replica) PID() int { return r.cmd.Process.Pid }

// Running reports whether the process still runs.
func (r *Replica) Running() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
		return true
	}
}

// Kill kills the replica with SIGKILL, as a crash or a lost node would, and
// waits for it.
func (r *Replica) Kill() {
	if r.Running() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	err := <-r.done
	r.done <- err
	_ = r.log.Close()
}

// Stop stops the replica (SIGTERM, SIGKILL after 15 seconds).
func (r *Replica) Stop() {
	if r.Running() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-r.done:
			r.done <- err
		case <-time.After(15 * time.Second):
			r.Kill()
		}
	}
	_ = r.log.Close()
}

// RestartControlPlane kills kube-apiserver and etcd (SIGKILL, as a lost
// control-plane node), keeps them down for down, and starts them again on
// the same addresses, data and certificates; the processes talking to them
// (the manager, kube-controller-manager) stay up. A graceful stop would not
// do: kube-apiserver drains for up to a minute while it still answers.
func (s *Stack) RestartControlPlane(down time.Duration) error {
	cp := &s.env.ControlPlane
	killed := 0
	for _, pid := range ProcessesUsing(s.opts.DataDir) {
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			continue
		}
		switch filepath.Base(strings.SplitN(string(cmdline), "\x00", 2)[0]) {
		case "kube-apiserver", "etcd":
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	if killed != 2 {
		return fmt.Errorf("failed to kill kube-apiserver and etcd: found %d of them", killed)
	}
	// envtest sees them exited and only tidies up.
	_ = cp.APIServer.Stop()
	_ = cp.Etcd.Stop()
	s.logf("kube-apiserver and etcd killed; starting them again in %s", down)
	time.Sleep(down)
	if err := cp.Etcd.Start(); err != nil {
		return fmt.Errorf("failed to start etcd again: %w", err)
	}
	if err := cp.APIServer.Start(); err != nil {
		return fmt.Errorf("failed to start kube-apiserver again: %w", err)
	}
	s.logf("kube-apiserver and etcd serving again")
	return nil
}
