package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API Service's names, as config/restapi and the chart pass them.
var serviceNames = []string{
	"instance-operator-api",
	"instance-operator-api.instance-operator-system",
	"instance-operator-api.instance-operator-system.svc",
	"instance-operator-api.instance-operator-system.svc.cluster.local",
}

// TestSelfSignedReplicasShareAPublishedCA: two replicas with
// --api-tls-self-signed, the Service's names, one CA Secret and one CA
// ConfigMap each serve a certificate of their own that a client trusting
// only the ConfigMap's CA verifies when it dials the Service's names over
// real HTTPS; a name the certificate does not carry fails verification.
func TestSelfSignedReplicasShareAPublishedCA(t *testing.T) {
	ctx := context.Background()
	const ns = "api-tls-ca"
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	opts.TLSSelfSigned = true
	opts.TLSDNSNames = serviceNames
	opts.TLSCASecret = ns + "/api-ca"
	opts.TLSCAConfigMap = ns + "/api-ca"
	replicas := []string{startServer(t, opts), startServer(t, opts)}

	cm, err := clientset.CoreV1().ConfigMaps(ns).Get(ctx, "api-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the CA was not published: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cm.Data[CACertKey])) {
		t.Fatalf("ConfigMap %s/api-ca holds no PEM certificate in %s: %q", ns, CACertKey, cm.Data)
	}
	leaves := map[string]bool{}
	for i, addr := range replicas {
		for _, name := range serviceNames {
			leaf, err := getVerified(addr, name, pool)
			if err != nil {
				t.Errorf("replica %d dialled as %s, trusting only the published CA: %v", i, name, err)
				continue
			}
			leaves[string(leaf.Raw)] = true
		}
		if _, err := getVerified(addr, "instance-operator-api.other-namespace.svc", pool); err == nil {
			t.Errorf("replica %d verified for a name it does not carry", i)
		}
	}
	if len(leaves) != 2 {
		t.Errorf("%d distinct serving certificates, want one per replica", len(leaves))
	}
}

// getVerified makes an authenticated request to the API at addr as a
// client in the cluster would: dialling the Service's name (here routed
// to addr), trusting only roots, verifying the certificate against name.
func getVerified(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer transport.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(addr)
	req, _ := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(name, port)+instancePath("no-such-instance"), nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		return nil, &url404Error{resp.StatusCode}
	}
	return resp.TLS.PeerCertificates[0], nil
}

type url404Error struct{ code int }

func (e *url404Error) Error() string { return http.StatusText(e.code) + ", want 404 Not Found" }

// TestSharedCAIsCreatedOnce: replicas starting together race to create the
// CA's Secret; the loser reads the winner's, so they sign with one CA.
func TestSharedCAIsCreatedOnce(t *testing.T) {
	ctx := context.Background()
	const ns = "api-tls-ca-race"
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	cas := make([]*x509.Certificate, 4)
	errs := make([]error, 4)
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], _, errs[i] = sharedCA(ctx, clientset, ns+"/api-ca")
		}()
	}
	wg.Wait()
	for i := range cas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if !cas[i].Equal(cas[0]) {
			t.Errorf("replica %d signs with a CA of its own", i)
		}
	}
}
