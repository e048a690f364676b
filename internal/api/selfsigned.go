package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Keys of the CA's Secret and of the ConfigMap publishing its certificate.
const (
	CACertKey = "ca.crt"
	caKeyKey  = "ca.key"
)

// servingLifetime bounds a serving certificate; a replica makes a new one
// at each start. The CA (client-go's NewSelfSignedCACert) lasts ten years.
const servingLifetime = 365 * 24 * time.Hour

// selfSignedCertificate is a serving certificate made at start, as
// controller-runtime's secure metrics serving makes its own. It names
// localhost, 127.0.0.1 and --api-tls-dns-names (the Service's names), and
// is signed by a CA that every replica shares: with --api-tls-ca-secret the
// first replica creates the CA in that Secret and the others read it
// (create if absent; on a conflict, read), and with --api-tls-ca-configmap
// its certificate is published for in-cluster clients to trust. Without a
// Secret each replica makes a CA of its own, which callers can only pin.
func (s *Server) selfSignedCertificate(ctx context.Context, cs kubernetes.Interface) (tls.Certificate, error) {
	var ca *x509.Certificate
	var caKey crypto.Signer
	var err error
	if s.opts.TLSCASecret != "" {
		ca, caKey, err = sharedCA(ctx, cs, s.opts.TLSCASecret)
	} else {
		ca, caKey, err = newCA()
	}
	if err != nil {
		return tls.Certificate{}, err
	}
	if s.opts.TLSCAConfigMap != "" {
		if err := publishCA(ctx, cs, s.opts.TLSCAConfigMap, ca); err != nil {
			return tls.Certificate{}, err
		}
	}
	return servingCertificate(ca, caKey, s.opts.TLSDNSNames)
}

// splitNamespacedName reads "<namespace>/<name>".
func splitNamespacedName(flag, v string) (string, string, error) {
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" {
		return "", "", fmt.Errorf("%s %q is not <namespace>/<name>", flag, v)
	}
	return ns, name, nil
}

func newCA() (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to make the API's CA key: %w", err)
	}
	host, _ := os.Hostname()
	ca, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "instance-operator-api-ca@" + host}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to make the API's CA: %w", err)
	}
	return ca, key, nil
}

// sharedCA reads the CA from the Secret, creating it when absent; when
// another replica created it first, its CA wins and is read back.
func sharedCA(ctx context.Context, cs kubernetes.Interface, ref string) (*x509.Certificate, crypto.Signer, error) {
	ns, name, err := splitNamespacedName("--api-tls-ca-secret", ref)
	if err != nil {
		return nil, nil, err
	}
	secrets := cs.CoreV1().Secrets(ns)
	secret, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ca, key, created, cerr := createCA(ctx, secrets, ns, name)
		if cerr != nil {
			return nil, nil, fmt.Errorf("failed to store the API's CA in Secret %s: %w", ref, cerr)
		}
		if created {
			return ca, key, nil
		}
		// Another replica stored its CA first: sign with that one.
		secret, err = secrets.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the API's CA from Secret %s: %w", ref, err)
	}
	return parseCA(secret.Data[CACertKey], secret.Data[caKeyKey], ref)
}

// createCA makes a CA and stores it; created is false when the Secret
// already existed.
func createCA(ctx context.Context, secrets typedcorev1.SecretInterface, ns, name string) (*x509.Certificate, crypto.Signer, bool, error) {
	ca, key, err := newCA()
	if err != nil {
		return nil, nil, false, err
	}
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, false, fmt.Errorf("failed to encode the CA key: %w", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{CACertKey: pemCert(ca), caKeyKey: keyPEM}}
	_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	switch {
	case err == nil:
		return ca, key, true, nil
	case apierrors.IsAlreadyExists(err):
		return nil, nil, false, nil
	}
	return nil, nil, false, err
}

func parseCA(certPEM, keyPEM []byte, ref string) (*x509.Certificate, crypto.Signer, error) {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil || len(certs) == 0 {
		return nil, nil, fmt.Errorf("secret %s holds no CA certificate in %s: %w", ref, CACertKey, err)
	}
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("secret %s holds no CA key in %s: %w", ref, caKeyKey, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("secret %s: the CA key cannot sign", ref)
	}
	return certs[0], signer, nil
}

// publishCA writes the CA's certificate into the ConfigMap, creating it or
// updating a stale one; a conflict with another replica writing the same
// CA is no error.
func publishCA(ctx context.Context, cs kubernetes.Interface, ref string, ca *x509.Certificate) error {
	ns, name, err := splitNamespacedName("--api-tls-ca-configmap", ref)
	if err != nil {
		return err
	}
	want := string(pemCert(ca))
	cms := cs.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{CACertKey: want}}
		if _, err = cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to publish the API's CA in ConfigMap %s: %w", ref, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("failed to read ConfigMap %s: %w", ref, err)
	case cm.Data[CACertKey] == want:
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[CACertKey] = want
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to publish the API's CA in ConfigMap %s: %w", ref, err)
	}
	return nil
}

// servingCertificate signs a fresh key for localhost, 127.0.0.1 and names.
func servingCertificate(ca *x509.Certificate, caKey crypto.Signer, names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to make the API's serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	dnsNames := append([]string{"localhost"}, names...)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dnsNames[len(dnsNames)-1]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(servingLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  []net.IP{{127, 0, 0, 1}},
	}
	if ca.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to sign the API's serving certificate: %w", err)
	}
	if time.Until(tmpl.NotAfter) <= 0 {
		return tls.Certificate{}, errors.New("the API's CA has expired: delete its Secret to make a new one")
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key}, nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: c.Raw})
}
