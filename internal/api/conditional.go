package api

import (
	"fmt"
	"net/http"
	"strings"
)

// ifNoneMatch reports whether the request's If-None-Match names etag (or
// is "*"): then a GET is answered 304. Comparison is weak, as RFC 9110
// asks for If-None-Match.
func ifNoneMatch(r *http.Request, etag string) bool {
	v := r.Header.Get("If-None-Match")
	return v != "" && etagListMatches(v, etag, true)
}

// checkIfMatch answers 412 when the request has an If-Match that does not
// name current (strong comparison, RFC 9110); no If-Match always passes.
func checkIfMatch(r *http.Request, current string) *apiError {
	v := r.Header.Get("If-Match")
	if v == "" || etagListMatches(v, current, false) {
		return nil
	}
	return preconditionFailed(fmt.Sprintf("the instance has changed since it was read: If-Match %s, now %s", truncate(v, 128), current),
		map[string]string{"etag": current})
}

func preconditionFailed(message string, metadata map[string]string) *apiError {
	return newError(http.StatusPreconditionFailed, ReasonPreconditionFailed, message, metadata)
}

// etagListMatches reports whether the If-Match or If-None-Match list
// (`*`, or entity tags separated by commas) names etag. weak allows W/
// tags to match; a strong comparison never matches a weak tag.
func etagListMatches(list, etag string, weak bool) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	for list != "" {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			break
		}
		isWeak := strings.HasPrefix(list, "W/")
		if isWeak {
			list = list[2:]
		}
		if list == "" || list[0] != '"' {
			return false // not an entity tag: the list is malformed
		}
		end := strings.IndexByte(list[1:], '"')
		if end < 0 {
			return false
		}
		tag := list[:end+2]
		list = list[end+2:]
		if tag == etag && (weak || !isWeak) {
			return true
		}
	}
	return false
}
