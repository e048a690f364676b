package install

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/testenv"
)

const operatorNS = "instance-operator-system"

// TestTwoProcessesWithTheirOwnServiceAccounts installs config/default on a
// fresh control plane, then runs the built manager as the two processes its
// Deployments run, each with a token of its own service account (so with
// exactly the RBAC and the admission policies config/default installs):
// the controllers (--enable-api=false, leader-elected) and the REST API
// (--enable-controllers=false, HTTPS with a self-signed certificate, the
// installed token audience). A project's deployer creates an instance over
// HTTPS; the controllers take it to RUNNING; its created-by names the caller
// (the API's create-on-behalf under the tenancy policy); deleting it
// completes. Neither service account holds the other's rights.
func TestTwoProcessesWithTheirOwnServiceAccounts(t *testing.T) {
	e := freshControlPlane(t)
	ctx := context.Background()
	kubectl(t, e, "", "apply", "--server-side", "-k", filepath.Join(root(t), "config", "default"))
	kubectl(t, e, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/instances.compute.k0rdent.ai")
	cs, err := kubernetes.NewForConfig(e.Config)
	must(t, err, "make a clientset")

	apiSA := "system:serviceaccount:" + operatorNS + ":instance-operator-api"
	controllersSA := "system:serviceaccount:" + operatorNS + ":instance-operator-controller-manager"
	for _, c := range []struct {
		as, verb, resource string
		want               string
	}{
		{apiSA, "create", "secrets", "no"},
		{apiSA, "patch", "virtualmachines.kubevirt.io", "no"},
		{apiSA, "create", "leases.coordination.k8s.io", "no"},
		{apiSA, "create", "instances.compute.k0rdent.ai", "yes"},
		{controllersSA, "create", "instances.compute.k0rdent.ai", "no"},
		{controllersSA, "delete", "instances.compute.k0rdent.ai", "no"},
		{controllersSA, "list", "namespaces", "no"},
		{controllersSA, "get", "secrets", "no"},
		{controllersSA, "patch", "instances.compute.k0rdent.ai", "yes"},
	} {
		out, _, _ := e.Kubectl(t, "", "auth", "can-i", c.verb, c.resource, "-A", "--as", c.as)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("can %s %s %s? %q, want %q", c.as, c.verb, c.resource, got, c.want)
		}
	}

	manager := filepath.Join(t.TempDir(), "manager")
	build := exec.Command("go", "build", "-o", manager, "./cmd")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd: %v\n%s", err, out)
	}
	apiAddr := freeAddress(t)
	run(t, manager, kubeconfigAs(t, e, cs, "instance-operator-controller-manager", operatorNS, nil),
		"--enable-api=false", "--leader-elect", "--leader-election-namespace="+operatorNS,
		"--health-probe-bind-address=0", "--metrics-bind-address=0",
		"--sim-state-dir="+t.TempDir(), "--sim-latency-allocate=100ms", "--sim-latency-boot=100ms",
		"--sim-latency-stop=100ms", "--sim-latency-delete=100ms")
	run(t, manager, kubeconfigAs(t, e, cs, "instance-operator-api", operatorNS, nil),
		"--enable-controllers=false", "--api-bind-address="+apiAddr, "--api-tls-self-signed",
		"--api-token-audiences=compute.k0rdent.ai", "--health-probe-bind-address=0", "--metrics-bind-address=0")

	// A project and its deployer, whose token is minted for the API.
	const region, project = "us-texas-1", "project-split"
	ns := region + "-" + project
	must(t, e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		computev1alpha1.RegionLabel: region, computev1alpha1.ProjectLabel: project}}}), "create the project's namespace")
	must(t, e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns}}), "create the deployer")
	must(t, e.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "compute.deployer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}},
	}), "bind the deployer")
	token := serviceAccountToken(t, cs, "deployer", ns, []string{"compute.k0rdent.ai"})

	https := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://" + apiAddr + "/v1/regions/" + region + "/projects/" + project + "/compute/instances"
	call := func(method, url, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		must(t, err, "make a request")
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := https.Do(req)
		if err != nil {
			return 0, map[string]any{"error": err.Error()}
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var v map[string]any
		_ = json.Unmarshal(data, &v)
		if v == nil {
			v = map[string]any{"body": string(data)}
		}
		return resp.StatusCode, v
	}
	eventually := func(what string, cond func() (bool, any)) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			ok, last := cond()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %v after 90 s", what, last)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	// Until the API's caches and RBAC know the binding, a create may be refused.
	eventually("the API creates the instance", func() (bool, any) {
		code, v := call(http.MethodPost, base, `{"id": "split-1", "type": "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"}`)
		return code == http.StatusCreated || code == http.StatusConflict, fmt.Sprint(code, v)
	})
	eventually("the controllers run the instance", func() (bool, any) {
		code, v := call(http.MethodGet, base+"/split-1", "")
		lifecycle, _ := v["lifecycle"].(map[string]any)
		return code == http.StatusOK && lifecycle["status"] == string(computev1alpha1.LifecycleRunning), fmt.Sprint(code, v)
	})
	var in computev1alpha1.Instance
	must(t, e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "split-1"}, &in), "read the instance")
	if by := in.Annotations[computev1alpha1.CreatedByAnnotation]; by != "system:serviceaccount:"+ns+":deployer" {
		t.Errorf("created-by = %q, want the caller", by)
	}
	if code, v := call(http.MethodDelete, base+"/split-1", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d %v", code, v)
	}
	eventually("the controllers finalize the deleted instance", func() (bool, any) {
		code, v := call(http.MethodGet, base+"/split-1", "")
		return code == http.StatusNotFound, fmt.Sprint(code, v)
	})
}

// run starts the manager with kubeconfig until the test ends, keeping its
// log for a failure.
func run(t *testing.T, manager, kubeconfig string, args ...string) {
	t.Helper()
	var log bytes.Buffer
	cmd := exec.Command(manager, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	must(t, cmd.Start(), "start %s", args[0])
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("manager %s log:\n%s", strings.Join(args, " "), tail(log.String(), 60))
		}
	})
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// kubeconfigAs writes a kubeconfig that authenticates as the service
// account name in namespace, with a token kube-apiserver mints for it.
func kubeconfigAs(t *testing.T, e *testenv.Env, cs *kubernetes.Clientset, name, namespace string, audiences []string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: serviceAccountToken(t, cs, name, namespace, audiences)}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	must(t, clientcmd.WriteToFile(*cfg, path), "write %s", path)
	return path
}

func serviceAccountToken(t *testing.T, cs *kubernetes.Clientset, name, namespace string, audiences []string) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	must(t, err, "mint a token for %s/%s", namespace, name)
	return tr.Status.Token
}

// freeAddress is a loopback address nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err, "find a free port")
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
