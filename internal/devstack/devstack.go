package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/admission"
	"github.com/k0rdent-ai/instance-operator/internal/controlplane"
)

const (
	// SampleNamespace serves region us-texas-1, project project-x9y8z7 (config/samples).
	SampleNamespace = "us-texas-1-project-x9y8z7"
	// SampleInstance is the seed's example instance.
	SampleInstance = "instance-d4e5f6"
	// DeployerServiceAccount is bound to compute.deployer in SampleNamespace;
	// its token is written to <data dir>/token.
	DeployerServiceAccount = "dev-deployer"
	// ReadyLine is printed once everything is up; scripts and tests wait for it.
	ReadyLine = "instance-operator is up"

	tokenLifetime = 7 * 24 * time.Hour
)

// Options configure a Stack.
type Options struct {
	// Root is the module root: config/ is read from there.
	Root string
	// DataDir keeps etcd's data, the certificates, the simulated cloud's
	// state, the kubeconfig, the token and the manager's log across runs.
	DataDir string
	// AssetsDir holds kube-apiserver, kube-controller-manager, etcd and kubectl.
	AssetsDir string
	// ManagerPath is the manager binary.
	ManagerPath string
	// ManagerArgs are passed to the manager after the stack's own flags.
	ManagerArgs []string
	// APIAddress is where the REST API listens, host:port.
	APIAddress string
	// Log receives the progress lines.
	Log io.Writer
	// NoManager leaves the manager to a later StartManager call.
	NoManager bool
	// SimcloudPath is the simulated cloud's service binary (cmd/simcloud).
	// When set, the cloud runs as a process of its own, reached over HTTP
	// with --sim-url as a real cloud is, and the --sim-* flags of
	// ManagerArgs go to it instead of the manager. Empty runs the cloud
	// inside the manager.
	SimcloudPath string
}

// Stack is a running control plane and manager.
type Stack struct {
	opts       Options
	env        *envtest.Environment
	client     client.WithWatch
	manager    *exec.Cmd
	managerLog *os.File
	managerErr chan error
	kcm        *controlplane.ControllerManager
	kcmLog     *os.File
	simcloud   *exec.Cmd
	simLog     *os.File
	simErr     chan error
	simArgs    []string
	mgrArgs    []string
	replicas   []*Replica
	lock       *os.File
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	// Config is the admin's client configuration.
	Config *rest.Config
	// Kubeconfig is the admin kubeconfig's path.
	Kubeconfig string
	// TokenFile holds the deployer's bearer token.
	TokenFile string
	// SimcloudURL is the simulated cloud's service, when it runs as one.
	SimcloudURL string
	// SimcloudCallerTokenFile and SimcloudAdminTokenFile hold the tokens
	// the simulated cloud's service admits: the controllers' (the manager
	// sends it) and its operator's (faults, capacity).
	SimcloudCallerTokenFile, SimcloudAdminTokenFile string
}

func (s *Stack) logf(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, "==> "+format+"\n", args...)
}

// Start brings the stack up and returns once the REST API answers /readyz.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	s := &Stack{opts: opts, managerErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	for _, dir := range []string{"etcd", "certs", "cloud"} {
		if err := os.MkdirAll(filepath.Join(opts.DataDir, dir), 0o700); err != nil {
			return nil, fmt.Errorf("failed to create the data directory: %w", err)
		}
	}

	if s.lock, err = lockDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	stopLeftovers(opts.DataDir, s.logf)
	s.mgrArgs = opts.ManagerArgs

	// envtest loads its CA only when it generates the serving certificates,
	// so they are made anew each run; the kubeconfig and token follow them.
	if err := os.RemoveAll(filepath.Join(opts.DataDir, "certs")); err != nil {
		return nil, fmt.Errorf("failed to clear the old certificates: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "certs"), 0o700); err != nil {
		return nil, err
	}
	s.logf("starting etcd and kube-apiserver (data in %s)", opts.DataDir)
	s.env = &envtest.Environment{
		BinaryAssetsDirectory: opts.AssetsDir,
		CRDDirectoryPaths:     []string{filepath.Join(opts.Root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	s.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(opts.DataDir, "etcd")}
	s.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(opts.DataDir, "certs")}
	cfg, err := s.env.Start()
	if err != nil {
		return nil, fmt.Errorf("failed to start the control plane: %w", err)
	}
	s.Config = cfg
	s.logf("kube-apiserver is serving on %s; the Instance CRD is installed", cfg.Host)
	if err := s.startControllerManager(ctx); err != nil {
		return nil, err
	}

	if err := s.writeKubeconfig(); err != nil {
		return nil, err
	}
	s.client, err = client.NewWithWatch(cfg, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	if err := s.applyConfig(ctx); err != nil {
		return nil, err
	}
	if err := s.writeDeployerToken(ctx, cfg); err != nil {
		return nil, err
	}
	// The cloud reviews its callers' tokens with kube-apiserver, so it
	// starts once that serves.
	if opts.SimcloudPath != "" {
		s.mgrArgs, s.simArgs = splitSimArgs(opts.ManagerArgs)
		if err := s.writeSimcloudTokens(ctx); err != nil {
			return nil, err
		}
		if err := s.StartSimcloud(ctx); err != nil {
			return nil, err
		}
	}
	if !opts.NoManager {
		if err := s.StartManager(ctx); err != nil {
			return nil, err
		}
	}

	watchCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reportTransitions(watchCtx)
	}()
	return s, nil
}

// startControllerManager runs kube-controller-manager beside the
// kube-apiserver: without it a deleted namespace stays Terminating, owner
// references are never collected, quotas are never counted and `view` never
// gains compute.viewer's rules.
func (s *Stack) startControllerManager(ctx context.Context) error {
	logPath := filepath.Join(s.opts.DataDir, "kube-controller-manager.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open kube-controller-manager's log: %w", err)
	}
	s.kcmLog = f
	began := time.Now()
	if s.kcm, err = controlplane.StartControllerManager(ctx, s.env, s.opts.AssetsDir, f); err != nil {
		return err
	}
	s.logf("kube-controller-manager runs its controllers after %s (log in %s)", time.Since(began).Round(10*time.Millisecond), logPath)
	return nil
}

func (s *Stack) writeKubeconfig() error {
	user, err := s.env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("failed to create the admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("failed to render the admin kubeconfig: %w", err)
	}
	s.Kubeconfig = filepath.Join(s.opts.DataDir, "kubeconfig")
	if err := os.WriteFile(s.Kubeconfig, data, 0o600); err != nil {
		return fmt.Errorf("failed to write the kubeconfig: %w", err)
	}
	s.logf("admin kubeconfig written to %s", s.Kubeconfig)
	return nil
}

// kubectl runs the built kubectl with the admin kubeconfig.
func (s *Stack) kubectl(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(s.opts.AssetsDir, "kubectl"), append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("failed to run kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// applyConfig installs the API's ClusterRoles, the admission policy and the
// samples with kubectl, as an operator's user would; the samples wait until
// kube-apiserver enforces the policy (it refuses Instance creates for a few
// seconds after it or kube-apiserver starts).
func (s *Stack) applyConfig(ctx context.Context) error {
	roles, err := filepath.Glob(filepath.Join(s.opts.Root, "config", "rbac", "api", "compute_*_role.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(roles)
	for _, role := range roles {
		if _, err := s.kubectl("apply", "--server-side", "-f", role); err != nil {
			return err
		}
	}
	s.logf("installed the API's ClusterRoles (%d files from config/rbac/api)", len(roles))
	if _, err := s.kubectl("apply", "--server-side", "-k", admission.Dir(s.opts.Root)); err != nil {
		return err
	}
	began := time.Now()
	if err := admission.WaitEnforced(ctx, s.client, metav1.NamespaceDefault, time.Minute); err != nil {
		return err
	}
	s.logf("kube-apiserver enforces config/admission (the finalizer is stamped at create) after %s",
		time.Since(began).Round(10*time.Millisecond))
	if _, err := s.kubectl("apply", "--server-side", "-k", filepath.Join(s.opts.Root, "config", "samples")); err != nil {
		return err
	}
	s.logf("applied config/samples: namespace %s and instance %s", SampleNamespace, SampleInstance)
	return nil
}

// writeDeployerToken binds a service account to compute.deployer in the
// sample namespace and writes a bearer token for it.
func (s *Stack) writeDeployerToken(ctx context.Context, cfg *rest.Config) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: DeployerServiceAccount, Namespace: SampleNamespace}}
	if err := s.client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create service account %s: %w", DeployerServiceAccount, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: DeployerServiceAccount, Namespace: SampleNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.deployer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: DeployerServiceAccount, Namespace: SampleNamespace}},
	}
	if err := s.client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to bind %s to compute.deployer: %w", DeployerServiceAccount, err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	tr, err := clientset.CoreV1().ServiceAccounts(SampleNamespace).CreateToken(ctx, DeployerServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(int64(tokenLifetime / time.Second)),
		}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("failed to request a token for %s: %w", DeployerServiceAccount, err)
	}
	s.TokenFile = filepath.Join(s.opts.DataDir, "token")
	if err := os.WriteFile(s.TokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		return fmt.Errorf("failed to write the token: %w", err)
	}
	s.logf("bearer token of %s/%s (bound to compute.deployer) written to %s", SampleNamespace, DeployerServiceAccount, s.TokenFile)
	return nil
}

// StartManager starts the manager and waits until its REST API is ready.
func (s *Stack) StartManager(ctx context.Context) error {
	if err := s.startManager(); err != nil {
		return err
	}
	return s.waitForAPI(ctx)
}

func (s *Stack) startManager() error {
	s.managerErr = make(chan error, 1)
	logPath := filepath.Join(s.opts.DataDir, "manager.log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to open the manager's log: %w", err)
	}
	s.managerLog = f
	cmd := exec.Command(s.opts.ManagerPath, s.managerArgs(s.opts.APIAddress)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	// The manager dies with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start the manager %s: %w", s.opts.ManagerPath, err)
	}
	s.manager = cmd
	go func() { s.managerErr <- cmd.Wait() }()
	where := "simulated cloud in-process"
	if s.SimcloudURL != "" {
		where = "simulated cloud at " + s.SimcloudURL
	}
	s.logf("manager started (pid %d, %s, log in %s)", cmd.Process.Pid, where, logPath)
	return nil
}

// managerArgs are a manager's flags: the stack's own, then ManagerArgs.
func (s *Stack) managerArgs(apiAddress string) []string {
	cloudArgs := []string{"--sim-state-dir=" + filepath.Join(s.opts.DataDir, "cloud")}
	if s.SimcloudURL != "" {
		cloudArgs = []string{"--sim-url=" + s.SimcloudURL, "--sim-token-file=" + s.SimcloudCallerTokenFile}
	}
	return append(append([]string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--api-bind-address=" + apiAddress,
		"--provider=simulated",
		// Out of a cluster the Lease needs a namespace named.
		"--leader-election-namespace=" + metav1.NamespaceDefault,
	}, cloudArgs...), s.mgrArgs...)
}

// ManagerPID is the running manager's process id.
func (s *Stack) ManagerPID() int { return s.manager.Process.Pid }

// ManagerExited delivers the manager's exit if it stops on its own.
func (s *Stack) ManagerExited() <-chan error { return s.managerErr }

func (s *Stack) waitForAPI(ctx context.Context) error {
	url := "http://" + s.opts.APIAddress + "/readyz"
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	httpClient := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-s.managerErr:
			s.managerErr <- err
			return fmt.Errorf("the manager exited before the API was ready (%w); its log ends:\n%s", err, s.ManagerLogTail(20))
		case <-deadline.C:
			return fmt.Errorf("the REST API did not become ready at %s; the manager's log ends:\n%s", url, s.ManagerLogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			resp, err := httpClient.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					s.logf("REST API ready on http://%s", s.opts.APIAddress)
					return nil
				}
			}
		}
	}
}

// ManagerLogTail returns the last n lines of the manager's log.
func (s *Stack) ManagerLogTail(n int) string {
	data, err := os.ReadFile(filepath.Join(s.opts.DataDir, "manager.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// reportTransitions prints each instance's lifecycle changes, so a person
// running the stack watches PROVISIONING, STAGING and RUNNING go by.
func (s *Stack) reportTransitions(ctx context.Context) {
	last := map[string]string{}
	for ctx.Err() == nil {
		w, err := s.client.Watch(ctx, &computev1alpha1.InstanceList{})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for ev := range w.ResultChan() {
			inst, ok := ev.Object.(*computev1alpha1.Instance)
			if !ok {
				continue
			}
			key := inst.Namespace + "/" + inst.Name
			status := string(inst.Status.Lifecycle.Status)
			if ev.Type == "DELETED" {
				status = "deleted"
			}
			if status == "" || last[key] == status {
				continue
			}
			last[key] = status
			line := fmt.Sprintf("instance %s: %s", key, status)
			if msg := inst.Status.Lifecycle.StatusMessage; msg != "" && ev.Type != "DELETED" {
				line += " (" + msg + ")"
			}
			s.logf("%s", line)
		}
		w.Stop()
	}
}

// StopManager stops the manager (SIGTERM, then SIGKILL after 15 seconds).
func (s *Stack) StopManager() {
	if s.manager != nil && s.manager.Process != nil {
		_ = s.manager.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.managerErr:
			if err != nil {
				s.logf("manager exited with %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-s.manager.Process.Pid, syscall.SIGKILL)
			s.logf("manager did not stop within 15s of SIGTERM; killed it (%v)", <-s.managerErr)
		}
		s.manager = nil
		s.logf("manager stopped")
	}
	if s.managerLog != nil {
		_ = s.managerLog.Close()
		s.managerLog = nil
	}
}

// KillManager kills the manager with SIGKILL, as a crash would, and waits for it.
func (s *Stack) KillManager() {
	if s.manager != nil && s.manager.Process != nil {
		_ = syscall.Kill(-s.manager.Process.Pid, syscall.SIGKILL)
		err := <-s.managerErr
		s.manager = nil
		s.logf("manager killed (%v)", err)
	}
}

// Stop stops the manager, then the control plane. Data stays in DataDir.
func (s *Stack) Stop() error {
	var errs []error
	if s.cancel != nil {
		s.cancel()
	}
	s.StopManager()
	for _, r := range s.replicas {
		r.Stop()
	}
	s.wg.Wait()
	s.StopSimcloud()
	if s.kcm != nil {
		_ = s.kcm.Stop()
		s.kcm = nil
		s.logf("kube-controller-manager stopped")
	}
	if s.kcmLog != nil {
		_ = s.kcmLog.Close()
	}
	if s.env != nil && s.env.ControlPlane.APIServer != nil {
		if err := s.env.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("failed to stop the control plane: %w", err))
		}
		s.logf("kube-apiserver and etcd stopped")
	}
	if s.lock != nil {
		_ = s.lock.Close()
	}
	return errors.Join(errs...)
}

// ReadToken reads a token file, trimmed.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(data)), nil
}
