package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControllerManager is a kube-controller-manager process running beside an
// envtest control plane: the namespace controller (namespace deletion), the
// garbage collector (owner references), the ResourceQuota controller and the
// ClusterRole aggregation controller only exist there, so without it a
// deleted namespace stays Terminating and `view` never gains compute.viewer.
type ControllerManager struct {
	cmd  *exec.Cmd
	done chan error
	// Kubeconfig is the file the process authenticates with.
	Kubeconfig string
}

// ControllerManagerReadyTimeout bounds how long StartControllerManager waits
// for the controllers to act; on 2 busy cores they start in 2-5 seconds.
const ControllerManagerReadyTimeout = 90 * time.Second

// StartControllerManager starts kube-controller-manager from assets against
// env's kube-apiserver, with the service-account signing key envtest gave the
// kube-apiserver (--service-account-signing-key-file) and the kube-apiserver's
// CA as the root CA, so the token and root-CA controllers work. It writes its
// kubeconfig and the CA into the kube-apiserver's certificate directory, logs
// to log, and returns once the service-account controller has made the
// `default` ServiceAccount of a namespace created for the purpose: its
// informers have synced and its controllers run.
func StartControllerManager(ctx context.Context, env *envtest.Environment, assets string, log io.Writer) (*ControllerManager, error) {
	apiServer := env.ControlPlane.APIServer
	if apiServer == nil || apiServer.CertDir == "" {
		return nil, errors.New("failed to start kube-controller-manager: the kube-apiserver is not running")
	}
	certDir := apiServer.CertDir
	caFile := filepath.Join(certDir, "root-ca.crt")
	if err := os.WriteFile(caFile, apiServer.CA, 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the root CA for kube-controller-manager: %w", err)
	}
	// system:masters rather than the built-in system:kube-controller-manager
	// user: envtest's users are client certificates, and one identity for all
	// controllers (--use-service-account-credentials=false) needs no token
	// bootstrap before the service-account controller itself runs.
	user, err := env.AddUser(envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to create kube-controller-manager's user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to render kube-controller-manager's kubeconfig: %w", err)
	}
	kubeconfig := filepath.Join(certDir, "kube-controller-manager.kubeconfig")
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return nil, fmt.Errorf("failed to write kube-controller-manager's kubeconfig: %w", err)
	}
	if log == nil {
		log = io.Discard
	}
	cmd := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		// Nothing scrapes or probes it here; no port to collide with.
		"--secure-port=0",
		// One controller manager per control plane.
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+caFile,
		// Its controllers write in bursts (a namespace's deletion, a
		// quota's recount); the default 20 QPS makes tests wait on it.
		"--kube-api-qps=200", "--kube-api-burst=400",
		// Quota usage is recounted on every change anyway; the full resync
		// only repairs drift.
		"--resource-quota-sync-period=30s",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// It dies with its parent, even one killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start kube-controller-manager: %w", err)
	}
	cm := &ControllerManager{cmd: cmd, done: make(chan error, 1), Kubeconfig: kubeconfig}
	go func() { cm.done <- cmd.Wait() }()
	if err := cm.waitReady(ctx, env); err != nil {
		_ = cm.Stop()
		return nil, err
	}
	return cm, nil
}

func (cm *ControllerManager) waitReady(ctx context.Context, env *envtest.Environment) error {
	c, err := client.New(env.Config, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("failed to create a client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, ControllerManagerReadyTimeout)
	defer cancel()
	// A namespace of its own: the `default` ServiceAccount of an existing
	// one (etcd data kept across runs) proves nothing about this process.
	probe := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kube-controller-manager-ready-"}}
	if err := c.Create(ctx, probe); err != nil {
		return fmt.Errorf("failed to create the namespace that shows kube-controller-manager runs: %w", err)
	}
	defer func() { _ = c.Delete(context.Background(), probe) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	key := types.NamespacedName{Namespace: probe.Name, Name: "default"}
	for {
		if err := c.Get(ctx, key, &corev1.ServiceAccount{}); err == nil {
			return nil
		}
		select {
		case err := <-cm.done:
			cm.done <- err
			return fmt.Errorf("kube-controller-manager exited before its controllers ran: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("failed to see kube-controller-manager's controllers run (no default ServiceAccount in %s): %w", probe.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// Exited delivers the process's exit if it stops on its own.
func (cm *ControllerManager) Exited() <-chan error { return cm.done }

// Stop stops the process (SIGTERM, then SIGKILL after 10 seconds) and waits
// for it.
func (cm *ControllerManager) Stop() error {
	if cm == nil || cm.cmd == nil || cm.cmd.Process == nil {
		return nil
	}
	_ = cm.cmd.Process.Signal(syscall.SIGTERM)
	var exit error
	select {
	case exit = <-cm.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cm.cmd.Process.Pid, syscall.SIGKILL)
		exit = <-cm.done
	}
	cm.cmd = nil
	// Stopped by its signal on purpose: that exit status is no failure.
	_ = exit
	return nil
}
