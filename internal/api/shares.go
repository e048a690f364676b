package api

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// ReasonRequestTimeout answers a request whose body did not arrive within
// --api-body-read-timeout (408).
const ReasonRequestTimeout = "REQUEST_TIMEOUT"

// shares bounds the API requests that one key (a client address, a
// principal, a project) holds at once, so that no one of them can hold
// every slot of the global bound (inFlight): the slots a client holds while
// its body trickles in, or its token is being reviewed, are its own share's,
// and another principal's or project's requests find the rest free. A key's
// count lives only while it holds a request, so the map holds at most as
// many keys as requests are in flight. nil is unbounded.
type shares struct {
	limit int

	mu   sync.Mutex
	held map[string]int
}

func newShares(limit int) *shares {
	if limit <= 0 {
		return nil
	}
	return &shares{limit: limit, held: map[string]int{}}
}

// acquire takes one of key's slots; false when key holds its share already.
func (s *shares) acquire(key string) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[key] >= s.limit {
		return false
	}
	s.held[key]++
	return true
}

// release gives back a slot acquire took.
func (s *shares) release(key string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.held[key]; n <= 1 {
		delete(s.held, key)
	} else {
		s.held[key] = n - 1
	}
}

// writeShareSpent answers a request past its caller's (or address's, or
// project's) share of the requests in flight: 429, since the caller's own
// requests hold the slots, and they finish or time out within the body
// read timeout.
func writeShareSpent(w http.ResponseWriter, whose string) {
	w.Header().Set("Retry-After", strconv.Itoa(inFlightRetryAfter))
	writeError(w, newError(http.StatusTooManyRequests, ReasonRateLimited,
		"too many requests in flight from this "+whose+"; retry after "+strconv.Itoa(inFlightRetryAfter)+"s",
		map[string]string{"retryAfterSeconds": strconv.Itoa(inFlightRetryAfter)}))
}

func (s *Server) withAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if op.entry.public() {
			next.ServeHTTP(w, r)
			return
		}
		// An address holds at most its share of the requests being
		// authenticated (a TokenReview can take seconds), so that one
		// address's clients cannot hold every slot before they are known.
		addr := remoteHost(r)
		if !s.addressShares.acquire(addr) {
			writeShareSpent(w, "address")
			return
		}
		// authenticateGuarded answers a refusal itself: 401, or 429 for an
		// address whose failures spent its budget before any TokenReview.
		user, ok := s.authenticateGuarded(w, r)
		s.addressShares.release(addr)
		if !ok {
			return
		}
		op.user = user
		next.ServeHTTP(w, r)
	})
}

// withPrincipalShare bounds the requests in flight of one authenticated
// principal, from authentication to the answer.
func (s *Server) withPrincipalShare(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if op.user == nil || s.principalShares == nil {
			next.ServeHTTP(w, r)
			return
		}
		key := op.user.User.GetName()
		if !s.principalShares.acquire(key) {
			writeShareSpent(w, "caller")
			return
		}
		defer s.principalShares.release(key)
		next.ServeHTTP(w, r)
	})
}

// withProjectShare bounds the requests in flight in one project past their
// authorization: only the project's own callers hold its share (a stranger
// is refused before), and they never hold more than it, so the rest of the
// global bound stays free for every other project.
func (s *Server) withProjectShare(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := s.opOf(r)
		if op.entry.public() || s.projectShares == nil {
			next.ServeHTTP(w, r)
			return
		}
		key := scopeKey(op.rt.region, op.rt.project)
		if !s.projectShares.acquire(key) {
			writeShareSpent(w, "project")
			return
		}
		defer s.projectShares.release(key)
		next.ServeHTTP(w, r)
	})
}

// withBodyDeadline gives a request's body a read deadline of its own, from
// the moment the request is allowed: a client whose body never finishes
// holds its slots for --api-body-read-timeout, not the whole read timeout.
// The read then fails and readBody answers 408 (bodyReadError).
func (s *Server) withBodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.BodyReadTimeout > 0 && r.Body != nil && r.Body != http.NoBody && !s.opOf(r).entry.public() {
			// A writer without deadlines (a test's recorder) keeps the server's.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// bodyReadError is the answer to a body read that failed: 408 when the
// body's deadline passed, nil otherwise.
func bodyReadError(err error, timeout time.Duration) *apiError {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return newError(http.StatusRequestTimeout, ReasonRequestTimeout,
		"the request body did not arrive within "+timeout.String(), nil)
}
