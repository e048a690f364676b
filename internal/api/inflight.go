package api

import (
	"net/http"
	"strconv"
)

// inFlightRetryAfter is the Retry-After of a request refused for load: the
// requests ahead of it finish within about a second.
const inFlightRetryAfter = 1

// inFlight bounds the API requests served at once, so that no number of
// clients can make the process hold more request state (bodies, list pages,
// goroutines) than its memory limit allows. nil is unbounded.
type inFlight chan struct{}

func newInFlight(limit int) inFlight {
	if limit <= 0 {
		return nil
	}
	return make(inFlight, limit)
}

// serve runs next when a slot is free, or answers 503 with Retry-After at once.
func (f inFlight) serve(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	if f == nil {
		next(w, r)
		return
	}
	select {
	case f <- struct{}{}:
		defer func() { <-f }()
		next(w, r)
	default:
		w.Header().Set("Retry-After", strconv.Itoa(inFlightRetryAfter))
		writeError(w, newError(http.StatusServiceUnavailable, ReasonUnavailable,
			"the service is serving as many requests as it can; retry after "+strconv.Itoa(inFlightRetryAfter)+"s",
			map[string]string{"retryAfterSeconds": strconv.Itoa(inFlightRetryAfter)}))
	}
}
