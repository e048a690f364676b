package api

import (
	"errors"
	"flag"
	"net/url"
	"strings"
	"time"
)

// Options configure the REST facade. BindFlags registers them as the
// manager's command-line flags; the OIDC flags carry kube-apiserver's names
// with an "api-" prefix and the same meaning.
type Options struct {
	// BindAddress is the address of the API's listener (API, /healthz, /readyz, /openapi.json).
	BindAddress string
	// TLSCertFile and TLSKeyFile turn on TLS; the pair is reloaded when the files change.
	TLSCertFile string
	TLSKeyFile  string
	// TLSSelfSigned serves TLS with a certificate made in memory at start when
	// no files are given, as controller-runtime's secure metrics do: the
	// installed manifests' default, so tokens never cross the network in
	// the clear even without cert-manager.
	TLSSelfSigned bool
	// TLSDNSNames are the names the self-signed certificate carries besides
	// localhost and 127.0.0.1: the Service's, so in-cluster clients verify it.
	TLSDNSNames []string
	// TLSCASecret (<namespace>/<name>) holds the CA that signs every
	// replica's self-signed certificate; the first replica creates it.
	TLSCASecret string
	// TLSCAConfigMap (<namespace>/<name>) publishes the CA's certificate
	// (key ca.crt) for clients to trust.
	TLSCAConfigMap string
	// EnableHTTP2 allows HTTP/2 over TLS; off by default (HTTP/2 rapid-reset and stream floods).
	EnableHTTP2 bool

	// OIDC: off when OIDCIssuerURL is empty.
	OIDCIssuerURL      string
	OIDCClientID       string
	OIDCCAFile         string
	OIDCUsernameClaim  string
	OIDCUsernamePrefix string
	OIDCGroupsClaim    string
	OIDCGroupsPrefix   string
	OIDCSigningAlgs    []string

	// TokenAudiences, when set, are the audiences a token must carry: sent
	// with each TokenReview (kube-apiserver refuses a token minted for
	// another audience, its own included) and required of OIDC tokens. A
	// token minted for the API is then useless against kube-apiserver, and
	// the reverse.
	TokenAudiences []string

	// AuthnCacheTTL is how long a token's answer (valid or not) is remembered.
	AuthnCacheTTL time.Duration
	// AuthzAllowTTL and AuthzDenyTTL are how long a SubjectAccessReview answer is remembered.
	AuthzAllowTTL time.Duration
	AuthzDenyTTL  time.Duration

	// RateLimit is the sustained requests per second allowed to one principal; 0 turns the limit off.
	RateLimit float64
	// RateBurst is the burst allowed to one principal.
	RateBurst int

	// AuthFailureRate is the sustained failed authentications per second
	// allowed to one client address before its tokens are no longer reviewed;
	// 0 turns the throttle off. AuthFailureBurst is the burst of them, and so
	// the most TokenReviews a flood of bad tokens from one address costs at once.
	AuthFailureRate  float64
	AuthFailureBurst int
	// AuthReviewRate and AuthReviewBurst bound the failed TokenReviews of
	// tokens that do not check out locally from every address together:
	// no number of addresses costs more. AuthSignedReviewRate and
	// AuthSignedReviewBurst bound those of service-account tokens that do
	// (the cluster's issuer and signature: revoked ones), whatever their
	// address. 0 per second leaves a budget unbounded.
	AuthReviewRate        float64
	AuthReviewBurst       int
	AuthSignedReviewRate  float64
	AuthSignedReviewBurst int
	// Guard, when set, is the guard to use (one shared with the metrics
	// endpoint); nil makes one from these options.
	Guard *TokenGuard
	// MaxRequestsInFlight bounds the API requests served at once (503 with
	// Retry-After past it); 0 is unbounded.
	MaxRequestsInFlight int
	// MaxRequestsInFlightPerPrincipal and MaxRequestsInFlightPerProject
	// are each one's share of MaxRequestsInFlight (429 with Retry-After past
	// it), so that one principal's or project's slow clients leave slots for
	// the others; MaxAuthenticationsInFlightPerAddress is one client
	// address's share of the requests being authenticated. 0 turns a share off.
	MaxRequestsInFlightPerPrincipal      int
	MaxRequestsInFlightPerProject        int
	MaxAuthenticationsInFlightPerAddress int
	// BodyReadTimeout is the time a request body has to arrive once the
	// request is allowed (408 past it); 0 leaves only ReadTimeout.
	BodyReadTimeout time.Duration

	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// Server timeouts.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// RequestTimeout bounds the work done for one request (API-server calls included).
	RequestTimeout time.Duration
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		BindAddress:        ":8090",
		OIDCUsernameClaim:  "sub",
		OIDCUsernamePrefix: "oidc:",
		OIDCGroupsPrefix:   "oidc:",
		OIDCSigningAlgs:    []string{"RS256"},
		AuthnCacheTTL:      10 * time.Second,
		AuthzAllowTTL:      10 * time.Second,
		AuthzDenyTTL:       5 * time.Second,
		RateLimit:          100,
		RateBurst:          200,
		AuthFailureRate:    1,
		AuthFailureBurst:   20,
		// Ten addresses' bursts at most, however many there are.
		AuthReviewRate:  5,
		AuthReviewBurst: 50,
		// Spent only by tokens the cluster signed that fail review.
		AuthSignedReviewRate:  10,
		AuthSignedReviewBurst: 100,
		// 256 requests of up to a 1 MiB body and a 500-item page stay
		// well inside the manager's 512 MiB memory limit.
		MaxRequestsInFlight: 256,
		// A quarter for a principal, half for a project: a project's
		// slow clients leave at least half the slots to the others.
		MaxRequestsInFlightPerPrincipal:      64,
		MaxRequestsInFlightPerProject:        128,
		MaxAuthenticationsInFlightPerAddress: 64,
		// A 1 MiB body takes well under a second on any link a client
		// of a cloud API has.
		BodyReadTimeout:   5 * time.Second,
		MaxBodyBytes:      1 << 20,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		RequestTimeout:    20 * time.Second,
	}
}

// BindFlags binds the API's options to flags named --api-*, with o's values
// as defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.BindAddress, "api-bind-address", o.BindAddress, "Address the REST API listens on.")
	fs.StringVar(&o.TLSCertFile, "api-tls-cert-file", o.TLSCertFile, "Serving certificate of the REST API (PEM); with --api-tls-key-file turns TLS on. Reloaded when it changes.")
	fs.StringVar(&o.TLSKeyFile, "api-tls-key-file", o.TLSKeyFile, "Private key of --api-tls-cert-file (PEM).")
	fs.BoolVar(&o.TLSSelfSigned, "api-tls-self-signed", o.TLSSelfSigned, "Serve the REST API over TLS with a self-signed certificate made in memory at start (instead of --api-tls-cert-file; clients must pin or skip verification).")
	fs.Func("api-tls-dns-names", "Comma-separated; with --api-tls-self-signed, DNS names the certificate carries besides localhost and 127.0.0.1: the API Service's (<svc>, <svc>.<ns>, <svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local).", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.TLSDNSNames = append(o.TLSDNSNames, n)
			}
		}
		return nil
	})
	fs.StringVar(&o.TLSCASecret, "api-tls-ca-secret", o.TLSCASecret, "With --api-tls-self-signed, <namespace>/<name> of a Secret holding the CA that signs every replica's certificate; the first replica creates it, the others reuse it.")
	fs.StringVar(&o.TLSCAConfigMap, "api-tls-ca-configmap", o.TLSCAConfigMap, "With --api-tls-self-signed, <namespace>/<name> of a ConfigMap the CA's certificate is published in (key ca.crt), for in-cluster clients to trust.")
	fs.BoolVar(&o.EnableHTTP2, "api-enable-http2", o.EnableHTTP2, "Allow HTTP/2 on the REST API (TLS only).")
	fs.StringVar(&o.OIDCIssuerURL, "api-oidc-issuer-url", o.OIDCIssuerURL, "HTTPS URL of the OIDC issuer whose JWTs the API accepts; empty turns OIDC off (as kube-apiserver --oidc-issuer-url).")
	fs.StringVar(&o.OIDCClientID, "api-oidc-client-id", o.OIDCClientID, "Audience the OIDC tokens must carry (as --oidc-client-id).")
	fs.StringVar(&o.OIDCCAFile, "api-oidc-ca-file", o.OIDCCAFile, "CA bundle that signs the OIDC issuer's serving certificate; the host's roots when empty (as --oidc-ca-file).")
	fs.StringVar(&o.OIDCUsernameClaim, "api-oidc-username-claim", o.OIDCUsernameClaim, "JWT claim used as the user name (as --oidc-username-claim).")
	fs.StringVar(&o.OIDCUsernamePrefix, "api-oidc-username-prefix", o.OIDCUsernamePrefix, "Prefix added to OIDC user names; '-' for none (as --oidc-username-prefix); the default keeps OIDC users apart from the cluster's own.")
	fs.StringVar(&o.OIDCGroupsClaim, "api-oidc-groups-claim", o.OIDCGroupsClaim, "JWT claim holding the user's groups (as --oidc-groups-claim).")
	fs.StringVar(&o.OIDCGroupsPrefix, "api-oidc-groups-prefix", o.OIDCGroupsPrefix, "Prefix added to OIDC group names (as --oidc-groups-prefix); the default keeps an issuer from asserting the cluster's own groups such as system:masters.")
	fs.Func("api-oidc-signing-algs", "Comma-separated JOSE algorithms accepted from the issuer (default RS256; as --oidc-signing-algs).", func(s string) error {
		o.OIDCSigningAlgs = splitComma(s)
		if len(o.OIDCSigningAlgs) == 0 {
			return errors.New("at least one algorithm is needed")
		}
		return nil
	})
	fs.Func("api-token-audiences", "Comma-separated audiences a bearer token must be minted for (TokenReview spec.audiences; e.g. compute.k0rdent.ai); empty accepts kube-apiserver's own tokens.", func(s string) error {
		o.TokenAudiences = splitComma(s)
		return nil
	})
	fs.DurationVar(&o.AuthnCacheTTL, "api-authentication-cache-ttl", o.AuthnCacheTTL, "How long a token's authentication answer is cached.")
	fs.DurationVar(&o.AuthzAllowTTL, "api-authorization-allow-cache-ttl", o.AuthzAllowTTL, "How long an allowing SubjectAccessReview answer is cached.")
	fs.DurationVar(&o.AuthzDenyTTL, "api-authorization-deny-cache-ttl", o.AuthzDenyTTL, "How long a denying SubjectAccessReview answer is cached.")
	fs.Float64Var(&o.RateLimit, "api-rate-limit", o.RateLimit, "Requests per second allowed to one principal; 0 turns the limit off.")
	fs.IntVar(&o.RateBurst, "api-rate-burst", o.RateBurst, "Burst of requests allowed to one principal.")
	fs.Float64Var(&o.AuthFailureRate, "api-auth-failure-rate", o.AuthFailureRate, "Failed authentications per second allowed to one client address before its tokens are refused unreviewed (429); 0 turns the throttle off.")
	fs.IntVar(&o.AuthFailureBurst, "api-auth-failure-burst", o.AuthFailureBurst, "Burst of failed authentications allowed to one client address: the most TokenReviews a flood of bad tokens from it costs.")
	fs.Float64Var(&o.AuthReviewRate, "api-auth-review-rate", o.AuthReviewRate, "Failed TokenReviews per second of tokens that do not check out locally, from all addresses together (the REST API and the metrics endpoint); past it 429 before review. 0 is unbounded.")
	fs.IntVar(&o.AuthReviewBurst, "api-auth-review-burst", o.AuthReviewBurst, "Burst of --api-auth-review-rate: the most TokenReviews a flood of bad tokens from any number of addresses costs at once.")
	fs.Float64Var(&o.AuthSignedReviewRate, "api-auth-signed-review-rate", o.AuthSignedReviewRate, "Failed TokenReviews per second of service-account tokens the cluster signed (revoked ones), whatever their address. 0 is unbounded.")
	fs.IntVar(&o.AuthSignedReviewBurst, "api-auth-signed-review-burst", o.AuthSignedReviewBurst, "Burst of --api-auth-signed-review-rate.")
	fs.IntVar(&o.MaxRequestsInFlight, "api-max-requests-in-flight", o.MaxRequestsInFlight, "API requests served at once; past it 503 with Retry-After. 0 is unbounded.")
	fs.IntVar(&o.MaxRequestsInFlightPerPrincipal, "api-max-requests-in-flight-per-principal", o.MaxRequestsInFlightPerPrincipal, "API requests one principal may have in flight at once; past it 429 with Retry-After. 0 is no share.")
	fs.IntVar(&o.MaxRequestsInFlightPerProject, "api-max-requests-in-flight-per-project", o.MaxRequestsInFlightPerProject, "Authorized API requests one project may have in flight at once; past it 429 with Retry-After. 0 is no share.")
	fs.IntVar(&o.MaxAuthenticationsInFlightPerAddress, "api-max-authentications-in-flight-per-address", o.MaxAuthenticationsInFlightPerAddress, "Requests from one client address being authenticated at once; past it 429 with Retry-After. 0 is no share.")
	fs.DurationVar(&o.BodyReadTimeout, "api-body-read-timeout", o.BodyReadTimeout, "Time a request body has to arrive once the request is allowed; past it 408. 0 leaves only --api-read-timeout.")
	fs.Int64Var(&o.MaxBodyBytes, "api-max-body-bytes", o.MaxBodyBytes, "Largest request body accepted.")
	fs.DurationVar(&o.ReadHeaderTimeout, "api-read-header-timeout", o.ReadHeaderTimeout, "Time allowed to read a request's headers.")
	fs.DurationVar(&o.ReadTimeout, "api-read-timeout", o.ReadTimeout, "Time allowed to read a whole request.")
	fs.DurationVar(&o.WriteTimeout, "api-write-timeout", o.WriteTimeout, "Time allowed to write a response.")
	fs.DurationVar(&o.IdleTimeout, "api-idle-timeout", o.IdleTimeout, "How long an idle keep-alive connection is kept.")
	fs.DurationVar(&o.RequestTimeout, "api-request-timeout", o.RequestTimeout, "Time allowed for the work of one request.")
}

func (o *Options) validate() error {
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return errors.New("--api-tls-cert-file and --api-tls-key-file go together")
	}
	if o.TLSSelfSigned && o.TLSCertFile != "" {
		return errors.New("--api-tls-self-signed and --api-tls-cert-file exclude each other")
	}
	if !o.TLSSelfSigned && (len(o.TLSDNSNames) > 0 || o.TLSCASecret != "" || o.TLSCAConfigMap != "") {
		return errors.New("--api-tls-dns-names, --api-tls-ca-secret and --api-tls-ca-configmap go with --api-tls-self-signed")
	}
	if o.OIDCIssuerURL != "" {
		if u, err := url.Parse(o.OIDCIssuerURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return errors.New("--api-oidc-issuer-url must be an https:// URL")
		}
		if o.OIDCClientID == "" {
			return errors.New("--api-oidc-client-id is required with --api-oidc-issuer-url")
		}
	}
	if o.MaxBodyBytes <= 0 {
		return errors.New("--api-max-body-bytes must be positive")
	}
	if o.RateLimit < 0 || (o.RateLimit > 0 && o.RateBurst < 1) {
		return errors.New("--api-rate-limit must be >= 0 and --api-rate-burst >= 1")
	}
	if o.AuthFailureRate < 0 || (o.AuthFailureRate > 0 && o.AuthFailureBurst < 1) {
		return errors.New("--api-auth-failure-rate must be >= 0 and --api-auth-failure-burst >= 1")
	}
	if o.AuthReviewRate < 0 || (o.AuthReviewRate > 0 && o.AuthReviewBurst < 1) ||
		o.AuthSignedReviewRate < 0 || (o.AuthSignedReviewRate > 0 && o.AuthSignedReviewBurst < 1) {
		return errors.New("--api-auth-review-rate and --api-auth-signed-review-rate must be >= 0, with bursts >= 1")
	}
	if o.MaxRequestsInFlight < 0 || o.MaxRequestsInFlightPerPrincipal < 0 || o.MaxRequestsInFlightPerProject < 0 || o.MaxAuthenticationsInFlightPerAddress < 0 {
		return errors.New("--api-max-requests-in-flight and its shares (per principal, per project, per address) must be >= 0")
	}
	if o.BodyReadTimeout < 0 {
		return errors.New("--api-body-read-timeout must be >= 0")
	}
	return nil
}

func splitComma(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
