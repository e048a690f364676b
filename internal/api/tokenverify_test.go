package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"
	"time"

	jose "gopkg.in/go-jose/go-jose.v2"
	"gopkg.in/go-jose/go-jose.v2/jwt"
)

// TestVerifierVerdicts: the local check of a token against a cluster's
// published keys, as saVerifier reads them (discovery, then the key set).
func TestVerifierVerdicts(t *testing.T) {
	const issuer = "https://kubernetes.default.svc.cluster.local"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	v := newSAVerifier(func(_ context.Context, path string) ([]byte, error) {
		if path == "/.well-known/openid-configuration" {
			return []byte(`{"issuer":"` + issuer + `","jwks_uri":"https://x/openid/v1/jwks"}`), nil
		}
		return jwks, nil
	})
	now := time.Now()
	sign := func(k *rsa.PrivateKey, kid, iss string, exp time.Time) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
			(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: iss, Subject: "system:serviceaccount:a:b",
			Expiry: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute))}).CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(key, "k1", issuer, now.Add(time.Hour))
	if got := v.check(good, now); got != notLocal {
		t.Errorf("before the keys were read: %v, want notLocal", got)
	}
	if err := v.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		token string
		want  verdict
	}{
		"signed by the cluster":             {good, signed},
		"expired":                           {sign(key, "k1", issuer, now.Add(-time.Hour)), forged},
		"signed by another key, same kid":   {sign(other, "k1", issuer, now.Add(time.Hour)), forged},
		"another issuer":                    {sign(other, "k1", "https://elsewhere", now.Add(time.Hour)), notLocal},
		"a key the cluster has not (yet)":   {sign(other, "k2", issuer, now.Add(time.Hour)), notLocal},
		"not a JWT":                         {"0123456789abcdef", notLocal},
		"three parts of nothing":            {"a.b.c", notLocal},
		"the cluster's token with junk sig": {good[:len(good)-8] + "AAAAAAAA", forged},
	} {
		if got := v.check(tc.token, now); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	select {
	case <-v.refresh:
	default:
		t.Error("a token naming an unknown key did not ask for the keys to be read again")
	}
}
