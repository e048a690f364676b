package oidcissuer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Issuer serves /.well-known/openid-configuration and /jwks over HTTPS with
// a certificate of its own (CAPEM); it starts with the key "key-1".
type Issuer struct {
	server *httptest.Server
	// CAPEM is the PEM certificate that signs the issuer's serving
	// certificate: the API's --api-oidc-ca-file.
	CAPEM []byte

	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey // kid -> key, as published in the JWKS
}

// New starts an issuer; Close stops it.
func New() (*Issuer, error) {
	iss := &Issuer{keys: map[string]*rsa.PrivateKey{}}
	if _, err := iss.AddKey("key-1"); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL(),
			"jwks_uri":                              iss.URL() + "/jwks",
			"authorization_endpoint":                iss.URL() + "/authorize",
			"token_endpoint":                        iss.URL() + "/token",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		iss.mu.Lock()
		var keys []map[string]string
		for kid, k := range iss.keys {
			keys = append(keys, map[string]string{
				"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
				"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	iss.server = httptest.NewTLSServer(mux)
	iss.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.server.Certificate().Raw})
	return iss, nil
}

// URL is the issuer's URL, the iss of its tokens.
func (i *Issuer) URL() string { return i.server.URL }

// Close stops the issuer's server.
func (i *Issuer) Close() { i.server.Close() }

// AddKey makes a key and publishes it in the JWKS under kid.
func (i *Issuer) AddKey(kid string) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("failed to generate a key: %w", err)
	}
	i.mu.Lock()
	i.keys[kid] = k
	i.mu.Unlock()
	return k, nil
}

// PublishKey publishes key under kid again (rotation back).
func (i *Issuer) PublishKey(kid string, key *rsa.PrivateKey) {
	i.mu.Lock()
	i.keys[kid] = key
	i.mu.Unlock()
}

// Key is the published key kid, or nil.
func (i *Issuer) Key(kid string) *rsa.PrivateKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid]
}

// RemoveKey takes a key out of the JWKS (rotation).
func (i *Issuer) RemoveKey(kid string) {
	i.mu.Lock()
	delete(i.keys, kid)
	i.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// SignRS256 makes a compact JWS of claims signed with key under kid.
func SignRS256(claims map[string]any, kid string, key *rsa.PrivateKey) string {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	payload, _ := json.Marshal(claims)
	signingInput := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		// Only a key too small for SHA-256 fails, and AddKey makes none.
		panic(err)
	}
	return signingInput + "." + b64(sig)
}

// SignNone makes an unsigned JWT (alg: none).
func SignNone(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	return b64(header) + "." + b64(payload) + "."
}
