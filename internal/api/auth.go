package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	apiserverapi "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	unionrequest "k8s.io/apiserver/pkg/authentication/request/union"
	tokencache "k8s.io/apiserver/pkg/authentication/token/cache"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
	"k8s.io/client-go/kubernetes"
)

// webhookBackoff is the retry policy of TokenReview and SubjectAccessReview
// calls, the one aggregated API servers use.
var webhookBackoff = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// newAuthenticator chains OIDC (when configured) before the cluster's
// TokenReview; each caches its answers for AuthnCacheTTL.
func newAuthenticator(ctx context.Context, o *Options, cs kubernetes.Interface) (authenticator.Request, error) {
	var chain []authenticator.Request
	if o.OIDCIssuerURL != "" {
		oidcAuth, err := newOIDC(ctx, o)
		if err != nil {
			return nil, err
		}
		if len(o.TokenAudiences) > 0 {
			// The JWT's own audience is --api-oidc-client-id; the request's
			// audiences are the API's.
			oidcAuth = authenticator.WrapAudienceAgnosticToken(o.TokenAudiences, oidcAuth)
		}
		chain = append(chain, bearertoken.New(tokencache.New(oidcAuth, false, o.AuthnCacheTTL, o.AuthnCacheTTL)))
	}
	delegating, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient:  cs.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      &webhookBackoff,
		CacheTTL:                 o.AuthnCacheTTL,
		APIAudiences:             o.TokenAudiences,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("failed to set up TokenReview authentication: %w", err)
	}
	chain = append(chain, delegating)
	return group.NewAuthenticatedGroupAdder(unionrequest.New(chain...)), nil
}

// maxTokenBytes bounds the tokens passed on to the authenticators: no real
// token is near it, and a huge one should cost no TokenReview.
const maxTokenBytes = 16 << 10

// staticCA is the OIDC issuer's CA bundle read from --api-oidc-ca-file.
type staticCA []byte

func (c staticCA) CurrentCABundleContent() []byte { return c }

func newOIDC(ctx context.Context, o *Options) (authenticator.Token, error) {
	usernamePrefix := o.OIDCUsernamePrefix
	if usernamePrefix == "-" {
		usernamePrefix = ""
	}
	jwt := apiserverapi.JWTAuthenticator{
		Issuer: apiserverapi.Issuer{URL: o.OIDCIssuerURL, Audiences: []string{o.OIDCClientID}},
		ClaimMappings: apiserverapi.ClaimMappings{
			Username: apiserverapi.PrefixedClaimOrExpression{Claim: o.OIDCUsernameClaim, Prefix: &usernamePrefix},
		},
	}
	if o.OIDCGroupsClaim != "" {
		groupsPrefix := o.OIDCGroupsPrefix
		jwt.ClaimMappings.Groups = apiserverapi.PrefixedClaimOrExpression{Claim: o.OIDCGroupsClaim, Prefix: &groupsPrefix}
	}
	opts := oidc.Options{JWTAuthenticator: jwt, SupportedSigningAlgs: o.OIDCSigningAlgs}
	if o.OIDCCAFile != "" {
		ca, err := os.ReadFile(o.OIDCCAFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read --api-oidc-ca-file: %w", err)
		}
		opts.CAContentProvider = staticCA(ca)
	}
	a, err := oidc.New(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to set up OIDC authentication: %w", err)
	}
	return a, nil
}

// newAuthorizer asks the cluster by SubjectAccessReview and caches the answers.
func newAuthorizer(o *Options, cs kubernetes.Interface) (authorizer.Authorizer, error) {
	a, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cs.AuthorizationV1(),
		AllowCacheTTL:             o.AuthzAllowTTL,
		DenyCacheTTL:              o.AuthzDenyTTL,
		WebhookRetryBackoff:       &webhookBackoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("failed to set up SubjectAccessReview authorization: %w", err)
	}
	return a, nil
}

// authenticateDetailed returns the caller, or the 401 to answer and whether
// the token was definitely refused (false when an authenticator erred).
func (s *Server) authenticateDetailed(r *http.Request) (*authenticator.Response, bool, *apiError) {
	if r.Header.Get("Authorization") == "" {
		return nil, true, newError(http.StatusUnauthorized, ReasonUnauthenticated, "the request has no bearer token: send Authorization: Bearer <token>", nil)
	}
	if len(r.Header.Get("Authorization")) > maxTokenBytes {
		return nil, true, newError(http.StatusUnauthorized, ReasonUnauthenticated, "the bearer token is invalid or expired", nil)
	}
	if len(s.opts.TokenAudiences) > 0 {
		// The TokenReview asks for these audiences (the webhook reads them from the context).
		r = r.WithContext(authenticator.WithAudiences(r.Context(), s.opts.TokenAudiences))
	}
	resp, ok, err := s.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		if err != nil {
			s.log(r).V(1).Info("authentication failed", "error", err.Error())
		}
		return nil, !transientAuthError(err), newError(http.StatusUnauthorized, ReasonUnauthenticated, "the bearer token is invalid or expired", nil)
	}
	return resp, false, nil
}
