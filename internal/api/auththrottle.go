package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// acceptedTokenMemory is how long a token that authenticated passes a
// throttled address.
const acceptedTokenMemory = 15 * time.Minute

// maxTokenCacheEntries bounds each of the guard's token caches; past it the
// expired entries are dropped, and if none were, the cache starts over (a
// flood of distinct tokens must not grow the process).
const maxTokenCacheEntries = 10000

// authGuard keeps clients that send bad tokens from costing kube-apiserver a
// TokenReview each, and keeps them from turning that protection against
// good users. A token never seen before is reviewed from one of two
// budgets (see admitFirst):
//
//   - a service-account token that checks out locally (the cluster's
//     issuer, signed by one of its keys, within its times: saVerifier)
//     from the budget of signed tokens, whatever its address: only the
//     cluster issues these, so a flood of made-up tokens, from any number
//     of addresses, never spends it, and a valid token is not refused
//     because its address was flooded;
//   - any other token from its client address's bucket and the global
//     bucket at once, each given back when the token authenticates.
//
// So only failures spend a budget, the users behind one NAT are not slowed
// by each other, and no number of addresses gets more than the global
// burst of failed reviews. A token whose local check fails (forged) is
// refused with no review. A token that authenticated in the last
// acceptedTokenMemory passes even a throttled address (a real user's, it
// costs at most one review per authentication cache TTL); if it then fails
// (revoked), it is forgotten, its failure is charged to its address's and
// the global budget, and its reviews spend them from then on, signed or not.
// A token that failed is refused from memory, by its hash, for the
// authentication cache TTL.
type authGuard struct {
	failures *rateLimiter // by client address
	// global bounds the failed reviews of tokens that are not signed,
	// from every address together; nil is unbounded.
	global *rate.Limiter
	// signedBudget bounds the failed reviews of signed tokens (revoked
	// ones); nil is unbounded. verifier sorts tokens; nil sorts none.
	signedBudget *rate.Limiter
	verifier     *saVerifier
	ttl          time.Duration

	// firstReviews coalesces concurrent first reviews of one token, so
	// that the clients sharing a token (and often an address) on a replica
	// that has not seen it yet spend one review and one unit of budget,
	// not one each.
	firstReviews singleflight.Group

	mu       sync.Mutex
	rejected map[[sha256.Size]byte]time.Time
	accepted map[[sha256.Size]byte]time.Time
	// revokedTokens are tokens that authenticated and then failed: signed
	// or not, their next reviews spend their address's budget.
	revokedTokens map[[sha256.Size]byte]time.Time
}

func newAuthGuard(perSecond float64, burst int, ttl time.Duration) *authGuard {
	if perSecond <= 0 {
		return nil
	}
	return &authGuard{
		failures: newRateLimiter(perSecond, burst), ttl: ttl,
		rejected:      map[[sha256.Size]byte]time.Time{},
		accepted:      map[[sha256.Size]byte]time.Time{},
		revokedTokens: map[[sha256.Size]byte]time.Time{},
	}
}

// credentialsOf returns every header the authenticators read a token from,
// and their total size.
func credentialsOf(r *http.Request) (key [sha256.Size]byte, size int, present bool) {
	h := sha256.New()
	for _, name := range []string{"Authorization", "Sec-WebSocket-Protocol"} {
		for _, v := range r.Header.Values(name) {
			size += len(v)
			present = present || v != ""
			_, _ = h.Write([]byte(v))
			_, _ = h.Write([]byte{0})
		}
		_, _ = h.Write([]byte{1})
	}
	copy(key[:], h.Sum(nil))
	return key, size, present
}

// rejectedToken remembers credentials that were definitely refused.
func (g *authGuard) rejectedToken(key [sha256.Size]byte, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rejected = remember(g.rejected, key, now.Add(g.ttl), now)
}

func (g *authGuard) succeeded(key [sha256.Size]byte, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accepted = remember(g.accepted, key, now.Add(acceptedTokenMemory), now)
	delete(g.revokedTokens, key)
}

func remember(m map[[sha256.Size]byte]time.Time, key [sha256.Size]byte, until, now time.Time) map[[sha256.Size]byte]time.Time {
	if _, ok := m[key]; !ok && len(m) >= maxTokenCacheEntries {
		for k, exp := range m {
			if now.After(exp) {
				delete(m, k)
			}
		}
		if len(m) >= maxTokenCacheEntries {
			m = map[[sha256.Size]byte]time.Time{}
		}
	}
	m[key] = until
	return m
}

// known says whether key is remembered as rejected (or, with rejected
// false, as accepted) and not expired.
func (g *authGuard) known(rejected bool, key [sha256.Size]byte, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.accepted
	if rejected {
		m = g.rejected
	}
	exp, ok := m[key]
	return ok && now.Before(exp)
}

// errInvalidToken is the one answer to a token that does not authenticate;
// nothing may change it, since every such refusal shares it.
var errInvalidToken = newError(http.StatusUnauthorized, ReasonUnauthenticated, "the bearer token is invalid or expired", nil)

// authenticatedOnConnection is the answer for a request whose only
// credential is the bearer token this kept-alive connection authenticated
// last, while that answer is fresh. The guard's checks (the size cap, the
// rejected-token cache, the address's budget) passed for that token then,
// and making them again for each request (hashing the token, three locks,
// two copies of the request) was most of authentication's cost at one
// client. A revoked token still passes here until the answer's expiry, as
// it does through the token cache (--api-authentication-cache-ttl).
func authenticatedOnConnection(r *http.Request, now time.Time) (*authenticator.Response, bool) {
	cm := memoOf(r.Context())
	if cm == nil {
		return nil, false
	}
	m := cm.token.Load()
	if m == nil || !m.ok || m.err != nil || m.resp == nil || !now.Before(m.expires) {
		return nil, false
	}
	if _, ok := r.Header["Sec-Websocket-Protocol"]; ok {
		return nil, false
	}
	auth := r.Header["Authorization"]
	const scheme = "Bearer "
	if len(auth) != 1 || len(auth[0]) != len(scheme)+len(m.token) || auth[0][:len(scheme)] != scheme || auth[0][len(scheme):] != m.token {
		return nil, false
	}
	return m.resp, true
}

// authenticateGuarded authenticates the request, or answers it (401, or 429
// for a throttled address) and returns false. Only requests that pass the
// size cap, the rejected-token cache and the guard's budgets reach the
// authenticators.
func (s *Server) authenticateGuarded(w http.ResponseWriter, r *http.Request) (*authenticator.Response, bool) {
	now := time.Now()
	if resp, ok := authenticatedOnConnection(r, now); ok {
		return resp, true
	}
	key, size, present := credentialsOf(r)
	addr := remoteHost(r)
	g := s.guard
	deny := func(aerr *apiError) (*authenticator.Response, bool) {
		if retry, limited := s.rate.limit("ip:" + addr); limited {
			writeRateLimited(w, retry)
			return nil, false
		}
		writeError(w, aerr)
		return nil, false
	}
	if !present || r.Header.Get("Authorization") == "" {
		return deny(newError(http.StatusUnauthorized, ReasonUnauthenticated, "the request has no bearer token: send Authorization: Bearer <token>", nil))
	}
	if g == nil {
		if size > maxTokenBytes {
			return deny(errInvalidToken)
		}
		resp, _, aerr := s.authenticateDetailed(r)
		if aerr != nil {
			return deny(aerr)
		}
		return resp, true
	}
	out := g.review(key, addr, bearerToken(r), size, now, true, func() (*authenticator.Response, bool, *apiError) {
		return s.authenticateDetailed(r)
	})
	switch {
	case out.throttled:
		writeThrottled(w, out.retry)
		return nil, false
	case out.aerr != nil:
		return deny(out.aerr)
	}
	return out.resp, true
}

// review authenticates a request's credentials (key, of size; token when
// it is a bearer token alone) through the guard, calling authenticate only
// when the guard lets it. coalesce shares a first review among the
// concurrent requests that carry the same credentials (authenticate must
// then only authenticate).
func (g *authGuard) review(key [sha256.Size]byte, addr, token string, size int, now time.Time, coalesce bool,
	authenticate func() (*authenticator.Response, bool, *apiError)) firstReview {
	if g.known(true, key, now) || size > maxTokenBytes {
		return firstReview{aerr: errInvalidToken}
	}
	// A token that authenticated recently is in the authenticator's cache:
	// it costs no TokenReview and passes even a throttled address.
	if g.known(false, key, now) {
		resp, definite, aerr := authenticate()
		if aerr != nil {
			if definite {
				g.revoked(key, addr, now)
			}
			return firstReview{aerr: aerr}
		}
		g.succeeded(key, now)
		return firstReview{resp: resp}
	}
	if !coalesce {
		return g.first(key, addr, token, now, authenticate)
	}
	v, _, _ := g.firstReviews.Do(string(key[:]), func() (any, error) {
		return g.first(key, addr, token, now, authenticate), nil
	})
	return v.(firstReview)
}

// first is a token's first review, from the budget admitFirst chose.
func (g *authGuard) first(key [sha256.Size]byte, addr, token string, now time.Time,
	authenticate func() (*authenticator.Response, bool, *apiError)) firstReview {
	l, v, retry, ok := g.admitFirst(key, addr, token, now)
	if !ok {
		return firstReview{throttled: true, retry: retry}
	}
	if v == forged {
		g.rejectedToken(key, now)
		return firstReview{aerr: errInvalidToken}
	}
	resp, definite, aerr := authenticate()
	if aerr != nil {
		if definite {
			g.rejectedToken(key, now)
		}
		return firstReview{aerr: aerr}
	}
	l.giveBack(now)
	g.succeeded(key, now)
	return firstReview{resp: resp}
}

// firstReview is the outcome of a guarded review, shared by the requests
// that carried the token meanwhile.
type firstReview struct {
	resp      *authenticator.Response
	aerr      *apiError
	throttled bool
	retry     time.Duration
}

// writeThrottled answers a client address that spent its budget of failed
// authentications.
func writeThrottled(w http.ResponseWriter, retry time.Duration) {
	secs := max(1, int(math.Ceil(retry.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, newError(http.StatusTooManyRequests, ReasonRateLimited,
		"too many failed authentications from this address; retry after "+strconv.Itoa(secs)+"s", map[string]string{"retryAfterSeconds": strconv.Itoa(secs)}))
}

// transientAuthError says whether an authenticator failed to get an answer
// (kube-apiserver unreachable, busy or timing out) rather than refusing the
// token: kube-apiserver's TokenReview reports a refused token as a plain
// message in status.error, which the webhook authenticator returns as an
// error too.
func transientAuthError(err error) bool {
	if err == nil {
		return false
	}
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			if transientAuthError(e) {
				return true
			}
		}
		return false
	}
	var status apierrors.APIStatus
	var netErr net.Error
	return errors.As(err, &status) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
