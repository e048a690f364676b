// Command devstack runs the whole product on this machine in the foreground:
// etcd, kube-apiserver and kube-controller-manager from bin/k8s, the
// simulated cloud's service, the manager with the REST API, the samples, an
// admin kubeconfig and a deployer's token.
// Ctrl-C stops everything it started; the data under --data-dir stays for the
// next run. `make run` builds and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
	"github.com/k0rdent-ai/instance-operator/internal/devstack"
)

type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run() error {
	devstack.SetProgramLogger()
	root, err := controlplane.ModuleRoot()
	if err != nil {
		return err
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		return err
	}
	apiAddress := os.Getenv("INSTANCE_API_ADDRESS")
	if apiAddress == "" {
		apiAddress = "127.0.0.1:8080"
	}
	opts := devstack.Options{Root: root, AssetsDir: assets, Log: os.Stdout}
	var managerArgs repeated
	flag.StringVar(&opts.DataDir, "data-dir", filepath.Join(root, "bin", "dev"), "Where etcd data, certificates, the simulated cloud's state, the kubeconfig and the token are kept.")
	flag.StringVar(&opts.ManagerPath, "manager", filepath.Join(root, "bin", "manager"), "The manager binary.")
	flag.StringVar(&opts.SimcloudPath, "simcloud", filepath.Join(root, "bin", "simcloud"),
		"The simulated cloud's service binary, run as a process of its own that the manager reaches over HTTP; empty runs the cloud inside the manager.")
	flag.StringVar(&opts.APIAddress, "api-address", apiAddress, "Where the REST API listens (also $INSTANCE_API_ADDRESS).")
	flag.Var(&managerArgs, "manager-arg", "An extra flag for the manager; repeat for more.")
	flag.Parse()
	opts.ManagerArgs = managerArgs
	if opts.DataDir, err = filepath.Abs(opts.DataDir); err != nil {
		return err
	}

	// Progress lines may go to a pipe that dies with the terminal's Ctrl-C
	// (make run | tee): writing to it must not kill us before we clean up.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stack, err := devstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	kubectl := rel(filepath.Join(assets, "kubectl"))
	fmt.Printf(`
%s. Try:

  %s --kubeconfig %s get instances -A

  curl -H "Authorization: Bearer $(cat %s)" \
    http://%s/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/%s

Press Ctrl-C to stop everything; the data in %s stays for the next run ('make clean-dev' wipes it).
`, devstack.ReadyLine, kubectl, rel(stack.Kubeconfig), rel(stack.TokenFile), opts.APIAddress, devstack.SampleInstance, rel(opts.DataDir))

	select {
	case <-ctx.Done():
		fmt.Println("\n==> stopping")
		return stack.Stop()
	case err := <-stack.ManagerExited():
		fmt.Printf("==> the manager exited (%v); its log ends:\n%s\n", err, stack.ManagerLogTail(30))
		_ = stack.Stop()
		return fmt.Errorf("the manager exited")
	}
}
