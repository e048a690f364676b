// Command virt-api-webhook serves virt-api's validating admission webhooks
// for VirtualMachines (create, update and status) and instance types with
// KubeVirt's own admitters, over HTTPS, for a test's kube-apiserver. It runs
// what virt-api runs for these paths: the same handlers, a KubeVirt client on
// the test's API server (instance types, DataVolumes and PVCs are looked up
// there), a live informer of its CRDs, and the default cluster
// configuration (no KubeVirt CR, as on a fresh install).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubecli"

	"kubevirt.io/kubevirt/pkg/virt-api/webhooks"
	validating_webhook "kubevirt.io/kubevirt/pkg/virt-api/webhooks/validating-webhook"
	virtconfig "kubevirt.io/kubevirt/pkg/virt-config"
	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server whose objects the admitters look up")
	certDir := flag.String("cert-dir", "", "folder with tls.crt and tls.key")
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 0, "port to listen on")
	namespace := flag.String("namespace", "kubevirt", "KubeVirt's install namespace (where virt-api would read its KubeVirt CR)")
	flag.Parse()
	if *kubeconfig == "" || *certDir == "" || *port == 0 {
		fmt.Fprintln(os.Stderr, "virt-api-webhook: --kubeconfig, --cert-dir and --port are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *kubeconfig, *certDir, net.JoinHostPort(*host, strconv.Itoa(*port)), *namespace); err != nil {
		fmt.Fprintln(os.Stderr, "virt-api-webhook:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, certDir, addr, namespace string) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("failed to load %s: %w", kubeconfig, err)
	}
	virtCli, err := kubecli.GetKubevirtClientFromRESTConfig(restConfig)
	if err != nil {
		return fmt.Errorf("failed to make a KubeVirt client: %w", err)
	}

	// virt-config asks the CRD informer whether CDI's DataVolume API is
	// installed; it is the API server's own answer here, as in virt-api.
	crdInformer := cache.NewSharedIndexInformer(
		cache.NewListWatchFromClient(virtCli.ExtensionsClient().ApiextensionsV1().RESTClient(),
			"customresourcedefinitions", metav1.NamespaceAll, fields.Everything()),
		&extv1.CustomResourceDefinition{}, 0, cache.Indexers{})
	// No KubeVirt CR: virt-config then serves its defaults, which is the
	// configuration the issue asks for. The informer is never started, so its
	// store stays empty.
	kubeVirtInformer := cache.NewSharedIndexInformer(&cache.ListWatch{}, &kubevirtv1.KubeVirt{}, 0, cache.Indexers{})
	clusterConfig, err := virtconfig.NewClusterConfig(crdInformer, kubeVirtInformer, namespace)
	if err != nil {
		return fmt.Errorf("failed to make the cluster configuration: %w", err)
	}
	go crdInformer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), crdInformer.HasSynced) {
		return errors.New("failed to sync the CRD informer")
	}

	informers := &webhooks.Informers{}
	serviceAccounts := map[string]struct{}{}
	mux := http.NewServeMux()
	mux.HandleFunc(components.VMValidatePath, func(w http.ResponseWriter, r *http.Request) {
		validating_webhook.ServeVMs(w, r, clusterConfig, virtCli, informers, serviceAccounts)
	})
	mux.HandleFunc(components.StatusValidatePath, func(w http.ResponseWriter, r *http.Request) {
		validating_webhook.ServeStatusValidation(w, r, clusterConfig, virtCli, informers, serviceAccounts)
	})
	mux.HandleFunc(components.VMInstancetypeValidatePath, validating_webhook.ServeVmInstancetypes)
	mux.HandleFunc(components.VMClusterInstancetypeValidatePath, validating_webhook.ServeVmClusterInstancetypes)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

	// envtest joins host and path with a slash of its own, so the API server
	// calls //virtualmachines-validate, which ServeMux would answer with a
	// redirect that admission does not follow.
	cleaned := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = path.Clean(r.URL.Path)
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Addr: addr, Handler: cleaned, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		errc <- srv.ListenAndServeTLS(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("failed to shut down: %w", err)
	}
	return nil
}
