package kubevirt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

// kubevirtAssets returns bin/kubevirt/<version>, where
// hack/build-kubevirt-crds.sh writes KubeVirt's CRDs, virt-api's webhook
// configuration and the virt-api-webhook server, for the KubeVirt version
// that hack/kubevirt/go.mod pins (the one kubevirt.io/api is at in go.mod).
func kubevirtAssets(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "hack", "kubevirt", "go.mod"))
	if err != nil {
		return "", fmt.Errorf("failed to read the KubeVirt tools module: %w", err)
	}
	defer f.Close()
	version := ""
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "kubevirt.io/kubevirt" {
			version = fields[1]
		} else if len(fields) == 3 && fields[0] == "require" && fields[1] == "kubevirt.io/kubevirt" {
			version = fields[2]
		}
	}
	if version == "" {
		return "", errors.New("failed to find kubevirt.io/kubevirt in hack/kubevirt/go.mod")
	}
	dir := filepath.Join(root, "bin", "kubevirt", version)
	if _, err := os.Stat(filepath.Join(dir, "virt-api-webhook")); err != nil {
		return "", fmt.Errorf("no KubeVirt %s CRDs and webhook in %s: run `make kubevirt` first: %w", version, dir, err)
	}
	return dir, nil
}

// startVirtAPIWebhook runs the virt-api-webhook binary on the port and with
// the certificate that envtest registered virt-api's webhooks with, and waits
// until it answers. It is a process, not a handler in this test binary,
// because KubeVirt's admitters need kubevirt.io/kubevirt, whose k8s.io/*
// versions the operator's module cannot take.
func startVirtAPIWebhook(env *testenv.Env, binary string) (stop func(), err error) {
	kubeconfig, err := env.Kubeconfig()
	if err != nil {
		return nil, fmt.Errorf("failed to write a kubeconfig for virt-api-webhook: %w", err)
	}
	opts := env.Environment.WebhookInstallOptions
	cmd := exec.Command(binary,
		"--kubeconfig", kubeconfig,
		"--cert-dir", opts.LocalServingCertDir,
		"--host", opts.LocalServingHost,
		"--port", strconv.Itoa(opts.LocalServingPort))
	cmd.Stdout, cmd.Stderr = logOutput(), logOutput()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(opts.LocalServingCAData)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort)) + "/healthz"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("virt-api-webhook exited before serving (KUBEVIRT_TEST_VERBOSE=1 shows its log): %v", err)
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("failed to reach virt-api-webhook at %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
