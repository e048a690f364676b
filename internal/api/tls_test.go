package api

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSelfSignedTLS: with --api-tls-self-signed and no certificate files
// (the installed manifests' default without cert-manager) the API answers
// only HTTPS, with a certificate it made at start for localhost (and its own CA),
// and a caller's token reaches it encrypted: an authenticated request
// answers over TLS, a plain HTTP one is refused before any handler.
func TestSelfSignedTLS(t *testing.T) {
	opts := srv.opts
	opts.BindAddress = "127.0.0.1:0"
	opts.TLSSelfSigned = true
	addr := startServer(t, opts)

	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("no TLS handshake: %v", err)
	}
	chain := conn.ConnectionState().PeerCertificates
	_ = conn.Close()
	leaf, root := chain[0], chain[len(chain)-1]
	// client-go's generator makes a CA of its own and signs the leaf with it.
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("the served chain does not end in a self-signed certificate: %v", err)
	}
	if err := leaf.CheckSignatureFrom(root); len(chain) > 1 && err != nil {
		t.Errorf("the served certificate is not signed by the chain's own root: %v", err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("the served certificate is not for localhost: %v", err)
	}
	// Pinned, the certificate verifies: a client can trust exactly it.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	pinned := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+instancePath("no-such-instance"), nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := pinned.Do(req)
	if err != nil {
		t.Fatalf("an HTTPS request pinned to the served certificate: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.TLS == nil {
		t.Errorf("GET of a missing instance over TLS = %d (TLS %v), want 404 over TLS", resp.StatusCode, resp.TLS != nil)
	}

	plain, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return // refused at the handshake: no plain HTTP
	}
	body, _ := io.ReadAll(plain.Body)
	_ = plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
		t.Errorf("plain HTTP to the TLS listener = %d %q, want Go's 400 for an HTTP request to an HTTPS server", plain.StatusCode, body)
	}
}
