package devstack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// splitSimArgs separates the simulated cloud's flags (--sim-*) from the
// manager's, so callers that tune the cloud through ManagerArgs reach the
// service instead.
func splitSimArgs(args []string) (manager, sim []string) {
	for _, a := range args {
		if strings.HasPrefix(a, "--sim-") && !strings.HasPrefix(a, "--sim-url") {
			sim = append(sim, a)
		} else {
			manager = append(manager, a)
		}
	}
	return manager, sim
}

// freeAddress is a loopback address with a port nobody listens on now.
func freeAddress() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("failed to find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartSimcloud starts the simulated cloud's service on its journal in
// <data dir>/cloud (on the same address as before, after a restart) and
// waits until it answers.
func (s *Stack) StartSimcloud(ctx context.Context) error {
	if s.SimcloudURL != "" {
		return s.startSimcloud(ctx, strings.TrimPrefix(s.SimcloudURL, "http://"))
	}
	// A free port is found by closing a listener on it, so another process
	// (one of the running control plane's outgoing connections) may take it
	// before the cloud binds it: a cloud that exits at start gets another.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		addr, ferr := freeAddress()
		if ferr != nil {
			return ferr
		}
		if err = s.startSimcloud(ctx, addr); err == nil || s.simcloud == nil || ctx.Err() != nil {
			return err
		}
		s.logf("the simulated cloud did not start on %s (%v); trying another port", addr, err)
		s.StopSimcloud()
		s.SimcloudURL = ""
	}
	return err
}

func (s *Stack) startSimcloud(ctx context.Context, addr string) error {
	logPath := filepath.Join(s.opts.DataDir, "simcloud.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open the simulated cloud's log: %w", err)
	}
	s.simLog = f
	args := append(append([]string{
		"--bind-address=" + addr,
		"--sim-state-dir=" + filepath.Join(s.opts.DataDir, "cloud"),
	}, simcloudAccessArgs()...), s.simArgs...)
	cmd := exec.Command(s.opts.SimcloudPath, args...)
	// The admin kubeconfig creates its TokenReviews; in a cluster its own
	// service account, bound to system:auth-delegator, does.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start the simulated cloud %s: %w", s.opts.SimcloudPath, err)
	}
	s.simcloud, s.simErr = cmd, make(chan error, 1)
	go func() { s.simErr <- cmd.Wait() }()
	s.SimcloudURL = "http://" + addr
	if err := s.waitSimcloud(ctx); err != nil {
		return err
	}
	s.logf("simulated cloud serving on %s (pid %d, journal in %s, log in %s)", s.SimcloudURL, cmd.Process.Pid,
		filepath.Join(s.opts.DataDir, "cloud"), logPath)
	return nil
}

func (s *Stack) waitSimcloud(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(s.SimcloudURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.simErr:
			s.simErr <- err
			return fmt.Errorf("the simulated cloud exited before it served (%w); see %s", err, filepath.Join(s.opts.DataDir, "simcloud.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the simulated cloud did not answer on %s", s.SimcloudURL)
		}
	}
}

// SimcloudPID is the simulated cloud's process id; 0 when it runs in the manager.
func (s *Stack) SimcloudPID() int {
	if s.simcloud == nil || s.simcloud.Process == nil {
		return 0
	}
	return s.simcloud.Process.Pid
}

// StopSimcloud stops the simulated cloud's service (SIGTERM, then SIGKILL
// after 10 seconds); its journal stays for StartSimcloud.
func (s *Stack) StopSimcloud() {
	if s.simcloud != nil && s.simcloud.Process != nil {
		_ = s.simcloud.Process.Signal(syscall.SIGCONT) // in case a partition left it stopped
		_ = s.simcloud.Process.Signal(syscall.SIGTERM)
		var exit error
		select {
		case exit = <-s.simErr:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.simcloud.Process.Pid, syscall.SIGKILL)
			exit = <-s.simErr
		}
		// Stopped by its signal on purpose: that exit status is no failure.
		_ = exit
		s.simcloud = nil
		s.logf("simulated cloud stopped")
	}
	if s.simLog != nil {
		_ = s.simLog.Close()
		s.simLog = nil
	}
}
