package api

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func TestBindFlags(t *testing.T) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := DefaultOptions()
	o.BindFlags(fs)
	if err := fs.Parse([]string{
		"--api-bind-address=:9000", "--api-oidc-issuer-url=https://issuer.example", "--api-oidc-client-id=compute",
		"--api-oidc-signing-algs=RS256, ES256", "--api-oidc-username-prefix=-", "--api-rate-limit=5", "--api-read-timeout=7s",
	}); err != nil {
		t.Fatal(err)
	}
	if o.BindAddress != ":9000" || o.OIDCClientID != "compute" || !slices.Equal(o.OIDCSigningAlgs, []string{"RS256", "ES256"}) ||
		o.OIDCUsernamePrefix != "-" || o.RateLimit != 5 || o.ReadTimeout != 7*time.Second || o.MaxBodyBytes != DefaultOptions().MaxBodyBytes {
		t.Errorf("options = %+v", o)
	}
	if err := o.validate(); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
	if err := fs.Parse([]string{"--api-oidc-signing-algs= , "}); err == nil {
		t.Error("an empty algorithm list was accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, mut := range map[string]func(*Options){
		"cert without key":             func(o *Options) { o.TLSCertFile = "tls.crt" },
		"issuer without id":            func(o *Options) { o.OIDCIssuerURL = "https://issuer.example" },
		"plain http issuer":            func(o *Options) { o.OIDCIssuerURL = "http://issuer.example"; o.OIDCClientID = "x" },
		"no body":                      func(o *Options) { o.MaxBodyBytes = 0 },
		"negative rate":                func(o *Options) { o.RateLimit = -1 },
		"rate without a burst":         func(o *Options) { o.RateBurst = 0 },
		"negative failure rate":        func(o *Options) { o.AuthFailureRate = -1 },
		"failure rate without a burst": func(o *Options) { o.AuthFailureBurst = 0 },
		"negative in-flight bound":     func(o *Options) { o.MaxRequestsInFlight = -1 },
		"negative principal share":     func(o *Options) { o.MaxRequestsInFlightPerPrincipal = -1 },
		"negative project share":       func(o *Options) { o.MaxRequestsInFlightPerProject = -1 },
		"negative address share":       func(o *Options) { o.MaxAuthenticationsInFlightPerAddress = -1 },
		"negative body read timeout":   func(o *Options) { o.BodyReadTimeout = -1 },
		"review rate without a burst":  func(o *Options) { o.AuthReviewBurst = 0 },
		"signed rate without a burst":  func(o *Options) { o.AuthSignedReviewBurst = 0 },
		"negative review rate":         func(o *Options) { o.AuthReviewRate = -1 },
		"self-signed and files":        func(o *Options) { o.TLSSelfSigned = true; o.TLSCertFile, o.TLSKeyFile = "tls.crt", "tls.key" },
	} {
		o := DefaultOptions()
		mut(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
