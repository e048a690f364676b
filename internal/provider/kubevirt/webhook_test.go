package kubevirt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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
// that hack/kubevirt/go.mod pins, which must be the one of kubevirt.io/api
// in go.mod: the suite checks the provider against the KubeVirt it is built for.
func kubevirtAssets(root string) (string, error) {
	version, err := requiredVersion(filepath.Join(root, "hack", "kubevirt", "go.mod"), "kubevirt.io/kubevirt")
	if err != nil {
		return "", err
	}
	api, err := requiredVersion(filepath.Join(root, "go.mod"), "kubevirt.io/api")
	if err != nil {
		return "", err
	}
	if version != api {
		return "", fmt.Errorf("hack/kubevirt/go.mod pins kubevirt.io/kubevirt %s but go.mod has kubevirt.io/api %s: keep them equal", version, api)
	}
	dir := filepath.Join(root, "bin", "kubevirt", version)
	if _, err := os.Stat(filepath.Join(dir, "virt-api-webhook")); err != nil {
		return "", fmt.Errorf("no KubeVirt %s CRDs and webhook in %s: run `make kubevirt` first: %w", version, dir, err)
	}
	return dir, nil
}

// requiredVersion is the version of module in the go.mod at path.
func requiredVersion(path, module string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("failed to read %s: %w", path, err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("failed to find %s in %s", module, path)
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
	stopWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", binary, err)
	}
	// exited closes when the process is gone; waitErr is then its exit status.
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
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
		case <-exited:
			return nil, fmt.Errorf("virt-api-webhook exited before serving (KUBEVIRT_TEST_VERBOSE=1 shows its log): %w", waitErr)
		case <-ctx.Done():
			stop()
			return nil, fmt.Errorf("failed to reach virt-api-webhook at %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
