package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "gopkg.in/go-jose/go-jose.v2"
	"gopkg.in/go-jose/go-jose.v2/jwt"
)

// verdict is what a token's local check says before any TokenReview.
type verdict int

const (
	// notLocal: not a service-account token of this cluster whose key is
	// known here; the TokenReview decides, at the address's budget.
	notLocal verdict = iota
	// signed: a service-account token signed by one of the cluster's keys,
	// of its issuer and within its times. Only the cluster issues these, so
	// it is reviewed from the budget of signed tokens, whatever its address.
	signed
	// forged: it names the cluster's issuer and a key of the cluster, but
	// the signature or its times do not hold: refused with no review.
	forged
)

// jwksRefresh is how often the cluster's service-account keys are read
// again; jwksRetry how soon after a failed read, or a token naming an
// unknown key (a key rotated in), at the earliest.
const (
	jwksRefresh = 10 * time.Minute
	jwksRetry   = 30 * time.Second
	// jwtLeeway is the clock skew allowed on exp and nbf.
	jwtLeeway = 30 * time.Second
)

// saVerifier checks service-account tokens against the keys the
// kube-apiserver publishes for them (service account issuer discovery:
// /.well-known/openid-configuration and /openid/v1/jwks, which every
// service account may read), so that a valid token is known valid before
// its review and a forged one costs none. The keys are read in the
// background: a check never waits on the network. Until the first read
// succeeds (or when the manager may not read them) every token is
// notLocal, as before the verifier existed.
type saVerifier struct {
	fetch func(ctx context.Context, path string) ([]byte, error)

	mu        sync.RWMutex
	issuer    string
	keys      *jose.JSONWebKeySet
	lastFetch time.Time
	refresh   chan struct{}
}

func newSAVerifier(fetch func(ctx context.Context, path string) ([]byte, error)) *saVerifier {
	return &saVerifier{fetch: fetch, refresh: make(chan struct{}, 1)}
}

// run reads the keys now, every jwksRefresh, and when a check asks, until
// ctx ends.
func (v *saVerifier) run(ctx context.Context, onError func(error)) {
	t := time.NewTicker(jwksRefresh)
	defer t.Stop()
	for {
		if err := v.load(ctx); err != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-v.refresh:
			// At most one read per jwksRetry, however many tokens ask.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(v.fetchedAt().Add(jwksRetry))):
			}
		}
	}
}

func (v *saVerifier) fetchedAt() time.Time {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastFetch
}

// load reads the issuer and its keys.
func (v *saVerifier) load(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v.mu.Lock()
	v.lastFetch = time.Now()
	v.mu.Unlock()
	raw, err := v.fetch(ctx, "/.well-known/openid-configuration")
	if err != nil {
		return fmt.Errorf("failed to read the service account issuer: %w", err)
	}
	var discovery struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(raw, &discovery); err != nil || discovery.Issuer == "" {
		return fmt.Errorf("failed to read the service account issuer: %q", truncate(string(raw), 128))
	}
	raw, err = v.fetch(ctx, "/openid/v1/jwks")
	if err != nil {
		return fmt.Errorf("failed to read the service account keys: %w", err)
	}
	keys := &jose.JSONWebKeySet{}
	if err := json.Unmarshal(raw, keys); err != nil {
		return fmt.Errorf("failed to parse the service account keys: %w", err)
	}
	v.mu.Lock()
	v.issuer, v.keys = discovery.Issuer, keys
	v.mu.Unlock()
	return nil
}

// check is token's verdict at now. It makes no network call.
func (v *saVerifier) check(token string, now time.Time) verdict {
	if v == nil || strings.Count(token, ".") != 2 {
		return notLocal
	}
	v.mu.RLock()
	issuer, keys := v.issuer, v.keys
	v.mu.RUnlock()
	if issuer == "" {
		return notLocal
	}
	tok, err := jwt.ParseSigned(token)
	if err != nil || len(tok.Headers) != 1 {
		return notLocal
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer != issuer {
		return notLocal
	}
	kid := tok.Headers[0].KeyID
	if kid == "" || len(keys.Key(kid)) == 0 {
		// A key rotated in since the last read: read again soon; the
		// review decides meanwhile.
		select {
		case v.refresh <- struct{}{}:
		default:
		}
		return notLocal
	}
	var claims jwt.Claims
	if err := tok.Claims(keys, &claims); err != nil {
		return forged
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: issuer, Time: now}, jwtLeeway); err != nil {
		return forged
	}
	return signed
}
