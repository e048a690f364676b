package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiters bounds the memory of the per-principal limiters; past it the
// idle ones are dropped.
const maxLimiters = 10000

// rateLimiter is a token bucket per principal.
type rateLimiter struct {
	perSecond rate.Limit
	burst     int

	mu       sync.Mutex
	limiters map[string]*principalLimiter
}

type principalLimiter struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimiter{perSecond: rate.Limit(perSecond), burst: burst, limiters: map[string]*principalLimiter{}}
}

// limit takes a token for key; when none is left it says how long to wait.
func (l *rateLimiter) limit(key string) (retryAfter time.Duration, limited bool) {
	if l == nil {
		return 0, false
	}
	_, retryAfter, ok := l.reserve(key, time.Now())
	return retryAfter, !ok
}

// reserve takes a token from key's bucket and returns it as a reservation
// the caller may give back (CancelAt); when the bucket is empty ok is false,
// with how long to wait, and nothing is taken.
func (l *rateLimiter) reserve(key string, now time.Time) (r *rate.Reservation, retryAfter time.Duration, ok bool) {
	r = l.limiterFor(key, now).ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return nil, delay, false
	}
	return r, 0, true
}

// charge takes a token from key's bucket even when it is empty, so that
// the bucket owes it: a failure known only after the fact still counts.
func (l *rateLimiter) charge(key string, now time.Time) {
	if l == nil {
		return
	}
	l.limiterFor(key, now).ReserveN(now, 1)
}

// limiterFor is key's bucket, made when key has none.
func (l *rateLimiter) limiterFor(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	pl, found := l.limiters[key]
	if !found {
		if len(l.limiters) >= maxLimiters {
			l.evictIdle(now)
		}
		pl = &principalLimiter{limiter: rate.NewLimiter(l.perSecond, l.burst)}
		l.limiters[key] = pl
	}
	pl.lastSeen = now
	return pl.limiter
}

// evictIdle drops limiters whose bucket has refilled; the caller holds mu.
func (l *rateLimiter) evictIdle(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.perSecond) * float64(time.Second))
	for k, pl := range l.limiters {
		if now.Sub(pl.lastSeen) > full {
			delete(l.limiters, k)
		}
	}
	if len(l.limiters) >= maxLimiters {
		l.limiters = map[string]*principalLimiter{}
	}
}

func writeRateLimited(w http.ResponseWriter, retry time.Duration) {
	secs := int(math.Ceil(retry.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, newError(http.StatusTooManyRequests, ReasonRateLimited,
		"too many requests from this caller; retry after "+strconv.Itoa(secs)+"s", map[string]string{"retryAfterSeconds": strconv.Itoa(secs)}))
}
