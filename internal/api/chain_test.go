package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

// TestLazyDeadline: the request's deadline context acts as WithDeadline's:
// it reports the deadline, expires at it, and ends when the request does,
// whether or not anything waited on it.
func TestLazyDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey(99), "v")
	c := &lazyDeadline{Context: parent, deadline: time.Now().Add(50 * time.Millisecond)}
	if d, ok := c.Deadline(); !ok || !d.Equal(c.deadline) || c.Value(ctxKey(99)) != "v" {
		t.Fatalf("Deadline = %v %v, Value = %v", d, ok, c.Value(ctxKey(99)))
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline never expired")
	}
	if !errors.Is(c.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
	}
	c.stop()

	unused := &lazyDeadline{Context: parent, deadline: time.Now().Add(time.Hour)}
	unused.stop()
	if unused.Err() == nil {
		t.Fatal("a stopped context that was never waited on is not done")
	}
	<-unused.Done()

	waited := &lazyDeadline{Context: parent, deadline: time.Now().Add(time.Hour)}
	done := waited.Done()
	waited.stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not end a context that was waited on")
	}

	short, cancel := context.WithDeadline(parent, time.Now().Add(time.Minute))
	defer cancel()
	nested := &lazyDeadline{Context: short, deadline: time.Now().Add(time.Hour)}
	if d, _ := nested.Deadline(); d.After(time.Now().Add(2 * time.Minute)) {
		t.Errorf("Deadline = %v, later than the parent's", d)
	}
	nested.stop()
}

// countingTokens authenticates "good-*" tokens and counts the questions.
type countingTokens struct{ asked atomic.Int32 }

func (c *countingTokens) AuthenticateToken(_ context.Context, token string) (*authenticator.Response, bool, error) {
	c.asked.Add(1)
	if strings.HasPrefix(token, "good-") {
		return &authenticator.Response{User: &user.DefaultInfo{Name: token}}, true, nil
	}
	return nil, false, nil
}

// TestTokenCache: a token is asked about once per TTL, across connections
// and on one; the answer carries system:authenticated; a connection's memo
// does not outlive the shared answer nor serve another token.
func TestTokenCache(t *testing.T) {
	inner := &countingTokens{}
	c := newTokenCache(inner, 200*time.Millisecond)
	conn1 := withConnectionMemo(context.Background(), nil)
	conn2 := withConnectionMemo(context.Background(), nil)
	for _, ctx := range []context.Context{conn1, conn1, conn2, context.Background()} {
		resp, ok, err := c.AuthenticateToken(ctx, "good-alice")
		if !ok || err != nil || resp.User.GetName() != "good-alice" || !slices.Contains(resp.User.GetGroups(), user.AllAuthenticated) {
			t.Fatalf("answer %+v %v %v", resp, ok, err)
		}
	}
	if n := inner.asked.Load(); n != 1 {
		t.Fatalf("asked %d times within the TTL, want 1", n)
	}
	if _, ok, _ := c.AuthenticateToken(conn1, "bad-token"); ok {
		t.Fatal("a connection's memo answered for another token")
	}
	if _, ok, _ := c.AuthenticateToken(conn1, "bad-token"); ok || inner.asked.Load() != 2 {
		t.Fatalf("a refused token was asked about again within the TTL (%d)", inner.asked.Load())
	}
	time.Sleep(250 * time.Millisecond)
	if _, ok, _ := c.AuthenticateToken(conn1, "good-alice"); !ok || inner.asked.Load() != 3 {
		t.Fatalf("after the TTL the token was not asked about again (%d)", inner.asked.Load())
	}
}

// TestWithRouteAlone: the route step by itself answers 404 and 405 (Allow
// from the route table) and passes a routed request on with its operation.
func TestWithRouteAlone(t *testing.T) {
	s := &Server{base: srv.base}
	var passed *operation
	h := s.withRequestID(s.withRoute(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		passed = s.opOf(r)
	})))
	serve := func(method, path string) *httptest.ResponseRecorder {
		passed = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	if rec := serve(http.MethodGet, "/v1/regions/r/projects/p/compute/gadgets"); rec.Code != http.StatusNotFound || passed != nil {
		t.Errorf("unknown route: %d, passed %v", rec.Code, passed != nil)
	}
	if rec := serve(http.MethodPut, "/v1/regions/r/projects/p/compute/instances/x"); rec.Code != http.StatusMethodNotAllowed ||
		rec.Header().Get("Allow") != "GET, PATCH, DELETE" || passed != nil {
		t.Errorf("PUT: %d, Allow %q, passed %v", rec.Code, rec.Header().Get("Allow"), passed != nil)
	}
	serve(http.MethodPost, "/v1/regions/r/projects/p/compute/instances/x:suspend")
	if passed == nil || passed.entry.operationID != "suspendInstance" || passed.entry.verb != "patch" ||
		passed.rt.id != "x" || passed.label != instanceTemplate+":suspend" {
		t.Fatalf("the routed operation is %+v", passed)
	}
}
