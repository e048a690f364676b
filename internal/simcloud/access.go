package simcloud

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// DefaultAudience is the audience a caller's service-account token must be
// minted for (a projected token volume's audience, or `kubectl create token
// --audience simcloud`): kube-apiserver refuses such a token, and the REST
// API, which wants its own audience, refuses it too, so a token stolen from
// the cloud's traffic opens nothing else.
const DefaultAudience = "simcloud"

// Access says who may call the cloud. Every route but /healthz needs a
// bearer token that Authenticator accepts; then the user's name decides:
// Callers make the provider calls (the controllers), Admins turn the
// operator's knobs (faults, capacity, host failures), and either may list
// the machines, with the values of their instanceMetadata left out.
type Access struct {
	Authenticator authenticator.Request
	Callers       []string
	Admins        []string
}

// role is who a route admits.
type role int

const (
	roleCaller role = iota
	roleAdmin
	roleEither
)

// NewTokenReviewAuthenticator authenticates bearer tokens with
// kube-apiserver's TokenReview, for audience, through k8s.io/apiserver's
// delegating authenticator: answers (accepted or refused) are cached for
// cacheTTL, so the controllers' hot path costs one review per token per
// TTL, and a revoked token works for at most that long.
func NewTokenReviewAuthenticator(cfg *rest.Config, audience string, cacheTTL time.Duration) (authenticator.Request, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for TokenReviews: %w", err)
	}
	auds := authenticator.Audiences{audience}
	auth, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		TokenAccessReviewClient:  cs.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		// kube-apiserver's own defaults for its authentication webhook.
		WebhookRetryBackoff: &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5},
		CacheTTL:            cacheTTL,
		APIAudiences:        auds,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("failed to build the TokenReview authenticator: %w", err)
	}
	// The review asks for the audiences the request's context names (as
	// kube-apiserver's WithAuthentication filter sets them); with none it
	// would ask for kube-apiserver's own and admit its tokens.
	return authenticator.RequestFunc(func(req *http.Request) (*authenticator.Response, bool, error) {
		return auth.AuthenticateRequest(req.WithContext(authenticator.WithAudiences(req.Context(), auds)))
	}), nil
}

// guard admits a request to h only when its token authenticates (401
// otherwise) as a user that r admits (403 otherwise). With no
// Authenticator, nobody is admitted: the cloud has no open mode.
func (s *Server) guard(r role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if s.access.Authenticator == nil {
			writeJSON(w, http.StatusUnauthorized, errorResponse{Kind: kindPermanent, Message: "the simulated cloud has no authenticator configured"})
			return
		}
		resp, ok, err := s.access.Authenticator.AuthenticateRequest(req)
		if err != nil || !ok {
			if err != nil {
				s.log.V(1).Info("refused a call that did not authenticate", "remote", req.RemoteAddr, "error", err.Error())
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="simcloud"`)
			writeJSON(w, http.StatusUnauthorized, errorResponse{Kind: kindPermanent, Message: "a bearer token for the simulated cloud's audience is required"})
			return
		}
		name := resp.User.GetName()
		if !s.admits(r, name) {
			s.log.Info("refused a call from a user the cloud does not admit", "user", name, "path", req.URL.Path)
			writeJSON(w, http.StatusForbidden, errorResponse{Kind: kindPermanent, Message: fmt.Sprintf("%s may not call %s %s", name, req.Method, req.URL.Path)})
			return
		}
		h(w, req)
	}
}

func (s *Server) admits(r role, name string) bool {
	caller, admin := slices.Contains(s.access.Callers, name), slices.Contains(s.access.Admins, name)
	switch r {
	case roleCaller:
		return caller
	case roleAdmin:
		return admin
	default:
		return caller || admin
	}
}
