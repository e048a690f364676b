package api

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// withBudgets sets the global budget of failed reviews and the budget of
// signed tokens' (0 per second leaves one unbounded).
func (g *authGuard) withBudgets(globalRate float64, globalBurst int, signedRate float64, signedBurst int) *authGuard {
	if g == nil {
		return nil
	}
	if globalRate > 0 {
		g.global = rate.NewLimiter(rate.Limit(globalRate), globalBurst)
	}
	if signedRate > 0 {
		g.signedBudget = rate.NewLimiter(rate.Limit(signedRate), signedBurst)
	}
	return g
}

// lease is the budget a first review holds until its outcome is known:
// given back when the token authenticates, kept when it fails.
type lease []*rate.Reservation

func (l lease) giveBack(now time.Time) {
	for _, r := range l {
		r.CancelAt(now)
	}
}

// take reserves one failure from lim; nil lim is unbounded.
func take(lim *rate.Limiter, now time.Time) (*rate.Reservation, time.Duration, bool) {
	if lim == nil {
		return nil, 0, true
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, false
	}
	return r, 0, true
}

// admitFirst takes the budget of a token's first review before it is
// reviewed, so that concurrent requests cannot all pass an empty bucket:
// the signed tokens' budget for a token that checks out locally, its
// address's and the global one for any other. ok is false, with the wait,
// when the budget is spent; v is forged for a token to refuse unreviewed.
func (g *authGuard) admitFirst(key [sha256.Size]byte, addr, token string, now time.Time) (l lease, v verdict, retry time.Duration, ok bool) {
	if !g.wasRevoked(key, now) {
		v = g.verifier.check(token, now)
	}
	switch v {
	case forged:
		return nil, v, 0, true
	case signed:
		r, retry, ok := take(g.signedBudget, now)
		if !ok {
			return nil, v, retry, false
		}
		return lease{r}, v, 0, true
	}
	byAddr, retry, ok := g.failures.reserve(addr, now)
	if !ok {
		return nil, v, retry, false
	}
	all, retry, ok := take(g.global, now)
	if !ok {
		byAddr.CancelAt(now)
		return nil, v, retry, false
	}
	if all == nil {
		return lease{byAddr}, v, 0, true
	}
	return lease{byAddr, all}, v, 0, true
}

// revoked forgets a token that authenticated before and failed now, and
// charges the failure to its address's budget and the global one, even
// into debt; for acceptedTokenMemory its reviews spend them as a bad
// token's do, even when it is signed: a pile of once-valid tokens costs
// what as many bad ones do, and never the budget of signed tokens.
func (g *authGuard) revoked(key [sha256.Size]byte, addr string, now time.Time) {
	g.mu.Lock()
	delete(g.accepted, key)
	g.rejected = remember(g.rejected, key, now.Add(g.ttl), now)
	g.revokedTokens = remember(g.revokedTokens, key, now.Add(acceptedTokenMemory), now)
	g.mu.Unlock()
	g.failures.charge(addr, now)
	if g.global != nil {
		g.global.ReserveN(now, 1)
	}
}

func (g *authGuard) wasRevoked(key [sha256.Size]byte, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	exp, ok := g.revokedTokens[key]
	return ok && now.Before(exp)
}

// bearerToken is the request's bearer token when Authorization is its only
// credential; "" otherwise (its local check then says notLocal).
func bearerToken(r *http.Request) string {
	if _, ok := r.Header["Sec-Websocket-Protocol"]; ok {
		return ""
	}
	auth := r.Header["Authorization"]
	const scheme = "Bearer "
	if len(auth) != 1 || !strings.HasPrefix(auth[0], scheme) {
		return ""
	}
	return auth[0][len(scheme):]
}
