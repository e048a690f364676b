package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// waitServed waits until a GET of id answers the instance at its current
// resourceVersion (the informer cache is eventually consistent) and
// returns that answer.
func waitServed(t *testing.T, id string) response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err := getResource(t, id)
		if err != nil {
			t.Fatal(err)
		}
		r := call(t, http.MethodGet, instancePath(id), tokens["deployer"], nil)
		if r.StatusCode == http.StatusOK && r.Header.Get("ETag") == instanceETag(in.ResourceVersion) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never served resourceVersion %s: %d %s %s", id, in.ResourceVersion, r.StatusCode, r.Header.Get("ETag"), r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestETagAndNotModified: a GET carries the instance's ETag; If-None-Match
// with it is a 304 with no body until the instance changes, then a 200 with
// the new tag.
func TestETagAndNotModified(t *testing.T) {
	in := createWithStatus(t, seedInstance("instance-etag"), runningStatus())
	r := waitServed(t, "instance-etag")
	etag := r.Header.Get("ETag")
	if etag != `"`+in.ResourceVersion+`"` {
		t.Fatalf("ETag = %s, want the quoted resourceVersion %s", etag, in.ResourceVersion)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		nm := call(t, http.MethodGet, instancePath("instance-etag"), tokens["viewer"], nil, "If-None-Match", inm)
		if nm.StatusCode != http.StatusNotModified || len(nm.body) != 0 || nm.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: %d, ETag %s, body %q; want 304, %s, no body", inm, nm.StatusCode, nm.Header.Get("ETag"), nm.body, etag)
		}
	}
	if stale := call(t, http.MethodGet, instancePath("instance-etag"), tokens["viewer"], nil, "If-None-Match", `"1"`); stale.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match of another version: %d, want 200", stale.StatusCode)
	}
	// Permission before anything: a stranger with the tag learns nothing.
	call(t, http.MethodGet, instancePath("instance-etag"), tokens["stranger"], nil, "If-None-Match", etag).
		envelope(t, http.StatusForbidden, ReasonPermissionDenied)

	in.Status.Lifecycle.StatusMessage = "changed"
	if err := env.Client.Status().Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	changed := waitServed(t, "instance-etag")
	if changed.Header.Get("ETag") == etag {
		t.Fatal("the ETag did not change with the instance")
	}
	var got Instance
	changed.json(t, &got)
	if got.Lifecycle.StatusMessage != "changed" {
		t.Errorf("served statusMessage %q after the change", got.Lifecycle.StatusMessage)
	}
	if r := call(t, http.MethodGet, instancePath("instance-etag"), tokens["viewer"], nil, "If-None-Match", etag); r.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match of the old tag after a change: %d, want 200", r.StatusCode)
	}
}

// TestListPageETag: a list page carries an ETag that If-None-Match answers
// with 304, and that changes when an instance of the page changes.
func TestListPageETag(t *testing.T) {
	in := createWithStatus(t, seedInstance("instance-page-etag"), runningStatus())
	waitServed(t, "instance-page-etag")
	page := call(t, http.MethodGet, collectionPath+"?pageSize=500", tokens["viewer"], nil)
	etag := page.Header.Get("ETag")
	if page.StatusCode != http.StatusOK || etag == "" {
		t.Fatalf("list = %d, ETag %q", page.StatusCode, etag)
	}
	nm := call(t, http.MethodGet, collectionPath+"?pageSize=500", tokens["viewer"], nil, "If-None-Match", etag)
	if nm.StatusCode != http.StatusNotModified || len(nm.body) != 0 {
		t.Fatalf("If-None-Match of the page's tag: %d %q, want 304 and no body", nm.StatusCode, nm.body)
	}
	in.Status.Lifecycle.StatusMessage = "changed for the page"
	if err := env.Client.Status().Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	waitServed(t, "instance-page-etag")
	again := call(t, http.MethodGet, collectionPath+"?pageSize=500", tokens["viewer"], nil, "If-None-Match", etag)
	if again.StatusCode != http.StatusOK || again.Header.Get("ETag") == etag {
		t.Errorf("after a change on the page: %d, ETag %s (was %s); want 200 and a new tag", again.StatusCode, again.Header.Get("ETag"), etag)
	}
}

// TestIfMatch: PATCH, a custom method and DELETE with an If-Match that is
// no longer current are 412 PRECONDITION_FAILED and change nothing; with
// the current one they go through and answer the new ETag.
func TestIfMatch(t *testing.T) {
	in := createWithStatus(t, seedInstance("instance-if-match"), runningStatus())
	stale := instanceETag(in.ResourceVersion)
	in.Spec.Description = "changed by someone else"
	if err := env.Client.Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	current := instanceETag(in.ResourceVersion)

	e := call(t, http.MethodPatch, instancePath("instance-if-match"), tokens["deployer"], map[string]any{"displayName": "mine"},
		"If-Match", stale).envelope(t, http.StatusPreconditionFailed, ReasonPreconditionFailed)
	if e.Error.Details[0]["metadata"].(map[string]any)["etag"] != current {
		t.Errorf("the 412 does not name the current ETag %s: %+v", current, e.Error.Details[0])
	}
	call(t, http.MethodPost, instancePath("instance-if-match")+":stop", tokens["deployer"], nil, "If-Match", stale).
		envelope(t, http.StatusPreconditionFailed, ReasonPreconditionFailed)
	call(t, http.MethodDelete, instancePath("instance-if-match"), tokens["deployer"], nil, "If-Match", stale).
		envelope(t, http.StatusPreconditionFailed, ReasonPreconditionFailed)
	// A weak tag never matches If-Match.
	call(t, http.MethodPatch, instancePath("instance-if-match"), tokens["deployer"], map[string]any{"displayName": "mine"},
		"If-Match", "W/"+current).envelope(t, http.StatusPreconditionFailed, ReasonPreconditionFailed)
	after, err := getResource(t, "instance-if-match")
	if err != nil {
		t.Fatalf("the instance is gone after refused writes: %v", err)
	}
	if after.ResourceVersion != in.ResourceVersion || after.Spec.DisplayName != "string" || after.Spec.PowerState == computev1alpha1.PowerStateStopped {
		t.Fatalf("a refused write changed the instance: rv %s -> %s, %+v", in.ResourceVersion, after.ResourceVersion, after.Spec)
	}

	ok := call(t, http.MethodPatch, instancePath("instance-if-match"), tokens["deployer"], map[string]any{"displayName": "mine"}, "If-Match", current)
	if ok.StatusCode != http.StatusOK {
		t.Fatalf("PATCH with the current If-Match = %d: %s", ok.StatusCode, ok.body)
	}
	after, err = getResource(t, "instance-if-match")
	if err != nil {
		t.Fatal(err)
	}
	if after.Spec.DisplayName != "mine" || ok.Header.Get("ETag") != instanceETag(after.ResourceVersion) {
		t.Fatalf("after PATCH: displayName %q, ETag %s, resource at %s", after.Spec.DisplayName, ok.Header.Get("ETag"), after.ResourceVersion)
	}
	stop := call(t, http.MethodPost, instancePath("instance-if-match")+":stop", tokens["deployer"], nil, "If-Match", ok.Header.Get("ETag"))
	if stop.StatusCode != http.StatusOK {
		t.Fatalf(":stop with the current If-Match = %d: %s", stop.StatusCode, stop.body)
	}
	if r := call(t, http.MethodDelete, instancePath("instance-if-match"), tokens["deployer"], nil, "If-Match", stop.Header.Get("ETag")); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE with the current If-Match = %d: %s", r.StatusCode, r.body)
	}
	if _, err := getResource(t, "instance-if-match"); !apierrors.IsNotFound(err) {
		t.Errorf("the instance is still there after DELETE: %v", err)
	}
}

// TestLostUpdateRace: two callers read the same ETag and PATCH at once with
// it. Exactly one wins; the other gets 412 instead of silently overwriting
// the winner's change. Without If-Match both would answer 200 and one
// change would be lost; the first round shows that.
func TestLostUpdateRace(t *testing.T) {
	createWithStatus(t, seedInstance("instance-race"), runningStatus())
	race := func(ifMatch string) (codes [2]int, bodies [2]string) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, name := range []string{"alice", "bob"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var headers []string
				if ifMatch != "" {
					headers = []string{"If-Match", ifMatch}
				}
				r := call(t, http.MethodPatch, instancePath("instance-race"), tokens["deployer"], map[string]any{"displayName": name}, headers...)
				codes[i], bodies[i] = r.StatusCode, string(r.body)
			}()
		}
		close(start)
		wg.Wait()
		return codes, bodies
	}
	if codes, bodies := race(""); codes != [2]int{http.StatusOK, http.StatusOK} {
		t.Fatalf("without If-Match: %v %v; want both 200 (the lost update)", codes, bodies)
	}
	for round := range 10 {
		in, err := getResource(t, "instance-race")
		if err != nil {
			t.Fatal(err)
		}
		// Each round starts from a name neither caller asks for, so neither
		// PATCH is a no-op (which would answer 200 without a write).
		in.Spec.DisplayName = "reset"
		if err := env.Client.Update(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		codes, bodies := race(instanceETag(in.ResourceVersion))
		winner := -1
		switch codes {
		case [2]int{http.StatusOK, http.StatusPreconditionFailed}:
			winner = 0
		case [2]int{http.StatusPreconditionFailed, http.StatusOK}:
			winner = 1
		default:
			t.Fatalf("round %d: answers %v %v; want one 200 and one 412", round, codes, bodies)
		}
		after, err := getResource(t, "instance-race")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"alice", "bob"}[winner]; after.Spec.DisplayName != want {
			t.Fatalf("round %d: %s won but displayName is %q", round, want, after.Spec.DisplayName)
		}
	}
}

func TestETagListMatches(t *testing.T) {
	for _, tc := range []struct {
		list, etag string
		weak, want bool
	}{
		{`"5"`, `"5"`, false, true},
		{`"4", "5"`, `"5"`, false, true},
		{`"4","5"`, `"5"`, false, true},
		{`*`, `"5"`, false, true},
		{`W/"5"`, `"5"`, false, false},
		{`W/"5"`, `"5"`, true, true},
		{`"55"`, `"5"`, true, false},
		{`5`, `"5"`, true, false},
		{`"a,b", "5"`, `"5"`, false, true},
		{`"a,b"`, `"a"`, false, false},
		{`"5`, `"5"`, true, false},
		{``, `"5"`, true, false},
	} {
		if got := etagListMatches(tc.list, tc.etag, tc.weak); got != tc.want {
			t.Errorf("etagListMatches(%q, %q, weak %v) = %v, want %v", tc.list, tc.etag, tc.weak, got, tc.want)
		}
	}
}
