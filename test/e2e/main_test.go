package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
	"github.com/k0rdent-ai/instance-operator/test/load"
)

// stack is what the tests know of the running product: only what a user has.
var stack struct {
	dataDir    string
	kubectl    string
	kubeconfig string
	token      string
	apiURL     string
	// simcloudURL is the simulated cloud's service, as devstack reports it.
	simcloudURL string
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := controlplane.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	work, err := os.MkdirTemp("", "instance-operator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "bin")
	for name, pkg := range map[string]string{"manager": "./cmd", "devstack": "./cmd/devstack", "simcloud": "./cmd/simcloud"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	port, err := load.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stack.dataDir = filepath.Join(work, "dev")
	stack.kubectl = filepath.Join(assets, "kubectl")
	stack.kubeconfig = filepath.Join(stack.dataDir, "kubeconfig")
	stack.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)

	cmd := exec.Command(filepath.Join(bin, "devstack"),
		"--data-dir", stack.dataDir,
		"--manager", filepath.Join(bin, "manager"),
		"--simcloud", filepath.Join(bin, "simcloud"),
		"--api-address", fmt.Sprintf("127.0.0.1:%d", port),
	)
	for _, arg := range managerArgs {
		cmd.Args = append(cmd.Args, "--manager-arg", arg)
	}
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "failed to start devstack:", err)
		return 1
	}
	// Whatever happens from here on, every process the stack started stops.
	defer stopStack(cmd, work)

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("devstack | " + line)
			if _, rest, ok := strings.Cut(line, "simulated cloud serving on "); ok && stack.simcloudURL == "" {
				stack.simcloudURL, _, _ = strings.Cut(rest, " ")
			}
			if !signalled && strings.HasPrefix(line, devstack.ReadyLine) {
				signalled = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-exited:
		fmt.Fprintln(os.Stderr, "devstack exited before it was ready:", err)
		exited <- err
		return 1
	case <-time.After(3 * time.Minute):
		fmt.Fprintln(os.Stderr, "devstack was not ready within 3 minutes")
		return 1
	}
	token, err := devstack.ReadToken(filepath.Join(stack.dataDir, "token"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stack.token = token

	code := m.Run()

	// Ctrl-C, as a person would, and every process must be gone.
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			fmt.Fprintln(os.Stderr, "devstack did not exit cleanly on Ctrl-C:", err)
			code = 1
		}
	case <-time.After(time.Minute):
		fmt.Fprintln(os.Stderr, "devstack did not stop within a minute of Ctrl-C")
		return 1
	}
	if left := devstack.ProcessesUsing(work); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes left behind after Ctrl-C: %v\n", left)
		code = 1
	}
	return code
}

// stopStack kills whatever is still running of the stack (after a failure).
func stopStack(cmd *exec.Cmd, work string) {
	if cmd.ProcessState == nil {
		_ = cmd.Process.Signal(os.Interrupt)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		left := devstack.ProcessesUsing(work)
		if len(left) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, pid := range devstack.ProcessesUsing(work) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// kubectl runs the built kubectl with the stack's admin kubeconfig.
func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlErr(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlErr(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, stack.kubectl, append([]string{"--kubeconfig", stack.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// managerArgs make the simulated cloud fast enough for tests while each
// lifecycle step still shows.
var managerArgs = []string{
	"--sim-latency-allocate=200ms", "--sim-latency-boot=200ms", "--sim-latency-stop=200ms",
	"--sim-latency-suspend=200ms", "--sim-latency-resume=200ms", "--sim-latency-delete=200ms",
}
