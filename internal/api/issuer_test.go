package api

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
)

// testIssuer is an OpenID Connect issuer over real HTTPS: discovery document
// and JWKS, with RSA keys generated in the test and rotatable.
type testIssuer struct {
	server *httptest.Server
	caPEM  []byte

	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey // kid -> key, as published in the JWKS
}

func newTestIssuer() (*testIssuer, error) {
	iss := &testIssuer{keys: map[string]*rsa.PrivateKey{}}
	if _, err := iss.addKey("key-1"); err != nil {
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
	iss.caPEM = pemOfServer(iss.server)
	return iss, nil
}

func (i *testIssuer) URL() string { return i.server.URL }
func (i *testIssuer) Close()      { i.server.Close() }

func (i *testIssuer) addKey(kid string) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	i.keys[kid] = k
	i.mu.Unlock()
	return k, nil
}

func (i *testIssuer) key(kid string) *rsa.PrivateKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[kid]
}

// removeKey takes a key out of the JWKS (rotation).
func (i *testIssuer) removeKey(kid string) {
	i.mu.Lock()
	delete(i.keys, kid)
	i.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signRS256 makes a compact JWS of claims signed with key under kid.
func signRS256(claims map[string]any, kid string, key *rsa.PrivateKey) string {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	payload, _ := json.Marshal(claims)
	signingInput := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err)
	}
	return signingInput + "." + b64(sig)
}

// signNone makes an unsigned JWT (alg: none).
func signNone(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	return b64(header) + "." + b64(payload) + "."
}
