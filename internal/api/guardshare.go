package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// TokenGuard is a process's bad-token guard (authGuard), shared by the REST
// API and the metrics endpoint, so that both spend one set of budgets and a
// flood on either port is bounded by the same numbers. It is a Runnable:
// it reads the cluster's service-account keys in the background.
type TokenGuard struct {
	g *authGuard
	// verifier reads its keys while the guard runs; nil when the guard is off.
	verifier *saVerifier
}

var _ manager.LeaderElectionRunnable = (*TokenGuard)(nil)

// NewTokenGuard makes the guard o's --api-auth-* flags describe, reading the
// cluster's service-account keys through cfg. With --api-auth-failure-rate 0
// the guard is off and every token is reviewed.
func NewTokenGuard(cfg *rest.Config, o Options) (*TokenGuard, error) {
	g := newAuthGuard(o.AuthFailureRate, o.AuthFailureBurst, o.AuthnCacheTTL).
		withBudgets(o.AuthReviewRate, o.AuthReviewBurst, o.AuthSignedReviewRate, o.AuthSignedReviewBurst)
	if g == nil {
		return &TokenGuard{}, nil
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a clientset for the token guard: %w", err)
	}
	g.verifier = newSAVerifier(func(ctx context.Context, path string) ([]byte, error) {
		return cs.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
	})
	return &TokenGuard{g: g, verifier: g.verifier}, nil
}

// NeedLeaderElection is false: every replica guards its own ports.
func (t *TokenGuard) NeedLeaderElection() bool { return false }

// Start reads the service-account keys until ctx ends. Without them (the
// manager may not read /openid/v1/jwks) every token is reviewed from its
// address's and the global budget, as a token of another issuer is.
func (t *TokenGuard) Start(ctx context.Context) error {
	if t.verifier == nil {
		<-ctx.Done()
		return nil
	}
	log := ctrl.Log.WithName("api").WithName("token-guard")
	t.verifier.run(ctx, func(err error) {
		log.Info("cannot read the cluster's service-account keys; service-account tokens are reviewed from their address's budget", "error", err.Error())
	})
	return nil
}

// Wrap guards h, an endpoint that authenticates bearer tokens by
// TokenReview itself (controller-runtime's metrics filter): a token the
// guard refuses never reaches it, and h's answer tells the guard how the
// token fared (401 refused; 500, the filter's answer when TokenReview
// errs, a failure that is not remembered; anything else authenticated).
func (t *TokenGuard) Wrap(h http.Handler) http.Handler {
	if t == nil || t.g == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, size, present := credentialsOf(r)
		if !present {
			// No token: h refuses it without a review.
			h.ServeHTTP(w, r)
			return
		}
		served := false
		out := t.g.review(key, remoteHost(r), bearerToken(r), size, time.Now(), false, func() (*authenticator.Response, bool, *apiError) {
			rec := &statusRecorder{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			served = true
			switch rec.status {
			case http.StatusUnauthorized:
				return nil, true, errInvalidToken
			case http.StatusInternalServerError:
				return nil, false, errInvalidToken
			}
			return &authenticator.Response{}, false, nil
		})
		switch {
		case served:
		case out.throttled:
			writeThrottled(w, out.retry)
		default:
			writeError(w, out.aerr)
		}
	})
}
