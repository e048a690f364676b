package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// TestKeptAliveConnectionSkipsOnlyTheRepeatedToken: on one kept-alive
// connection, the token that authenticated is answered from the
// connection's memory without reaching the authenticators again, while an
// extra credential, a different token or an oversized one still goes
// through every check.
func TestKeptAliveConnectionSkipsOnlyTheRepeatedToken(t *testing.T) {
	createWithStatus(t, seedInstance("instance-conn"), runningStatus())
	var calls, conns atomic.Int64
	s := &Server{
		opts: srv.opts, mgr: srv.mgr, kubeClient: srv.kubeClient, live: srv.live, authz: srv.authz, base: srv.base,
		authn: countingAuthenticator(&calls), guard: newAuthGuard(1e6, 1e6, time.Minute),
	}
	s.ready.Store(true)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Config.ConnContext = withConnectionMemo
	ts.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(headers ...string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+instancePath("instance-conn"), nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Add(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	good := "Bearer " + tokens["viewer"]
	steps := []struct {
		name      string
		headers   []string
		authorize bool // whether it must reach the authenticators
		ok        bool
	}{
		{"first use of the token", []string{"Authorization", good}, true, true},
		{"the same token again", []string{"Authorization", good}, false, true},
		{"the same token with an oversized websocket credential", []string{"Authorization", good,
			"Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io." + strings.Repeat("x", maxTokenBytes+1)}, false, false},
		{"a different token", []string{"Authorization", "Bearer " + randomToken()}, true, false},
		{"the first token after the different one", []string{"Authorization", good}, true, true},
		{"the first token again", []string{"Authorization", good}, false, true},
		{"two Authorization headers", []string{"Authorization", good, "Authorization", good}, true, true},
	}
	for _, step := range steps {
		before := calls.Load()
		code := get(step.headers...)
		if step.ok != (code == http.StatusOK) {
			t.Errorf("%s: answered %d", step.name, code)
		}
		if reached := calls.Load() > before; reached != step.authorize {
			t.Errorf("%s: reached the authenticators: %v, want %v", step.name, reached, step.authorize)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("the requests used %d connections, want one kept alive", n)
	}
}

// countingAuthenticator is the suite's authenticator (OIDC and TokenReview
// behind the token cache), counting the requests it is asked about.
func countingAuthenticator(calls *atomic.Int64) authenticator.Request {
	return authenticator.RequestFunc(func(r *http.Request) (*authenticator.Response, bool, error) {
		calls.Add(1)
		return srv.authn.AuthenticateRequest(r)
	})
}

// countingAuthorizer allows everything and counts the questions (of
// Authorize; the decision cache asks nothing else).
type countingAuthorizer struct {
	authorizer.Authorizer
	asked atomic.Int32
}

func (c *countingAuthorizer) Authorize(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
	c.asked.Add(1)
	return authorizer.DecisionAllow, "", nil
}

// TestDecisionCacheConnectionMemo: a connection answers its last question
// from memory, even once the shared cache has dropped it, but never another
// question, another user's, another connection's, nor past the answer's TTL.
func TestDecisionCacheConnectionMemo(t *testing.T) {
	inner := &countingAuthorizer{}
	c := newDecisionCache(inner, 200*time.Millisecond, 0)
	alice := &user.DefaultInfo{Name: "alice"}
	question := func(u user.Info, verb string) authorizer.Attributes {
		return authorizer.AttributesRecord{User: u, Verb: verb, Namespace: "a", APIGroup: "compute.k0rdent.ai", APIVersion: "v1alpha1",
			Resource: "instances", ResourceRequest: true}
	}
	conn1 := withConnectionMemo(context.Background(), nil)
	conn2 := withConnectionMemo(context.Background(), nil)
	forget := func() { c.answers.RemoveAll(func(any) bool { return true }) }
	steps := []struct {
		name  string
		ctx   context.Context
		attrs authorizer.Attributes
		asked bool
	}{
		{"first question", conn1, question(alice, "get"), true},
		{"the same question on the connection", conn1, question(alice, "get"), false},
		{"the same question on another connection", conn2, question(alice, "get"), true},
		{"another verb on the connection", conn1, question(alice, "list"), true},
		{"the first question after another", conn1, question(alice, "get"), true},
		{"another user of the same name", conn1, question(&user.DefaultInfo{Name: "alice"}, "get"), true},
	}
	for _, step := range steps {
		forget() // only the connection's memo may answer without asking
		before := inner.asked.Load()
		if d, _, err := c.Authorize(step.ctx, step.attrs); d != authorizer.DecisionAllow || err != nil {
			t.Fatalf("%s: %v %v", step.name, d, err)
		}
		if asked := inner.asked.Load() > before; asked != step.asked {
			t.Errorf("%s: asked %v, want %v", step.name, asked, step.asked)
		}
	}
	if _, _, err := c.Authorize(conn1, question(alice, "get")); err != nil {
		t.Fatal(err)
	}
	before := inner.asked.Load()
	time.Sleep(250 * time.Millisecond)
	if _, _, err := c.Authorize(conn1, question(alice, "get")); err != nil || inner.asked.Load() == before {
		t.Errorf("the connection's answer outlived its TTL (err %v)", err)
	}
}
