package kubevirt

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// TestSubresourcePauserWire checks the requests the real cluster gets, which
// envtest cannot serve: PUT on virt-api's pause and unpause subresources, as
// virtctl sends them, and virt-api's 409 surfacing as a Conflict.
func TestSubresourcePauserWire(t *testing.T) {
	type call struct{ method, path, contentType, body string }
	var (
		mu    sync.Mutex
		calls []call
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(body)})
		mu.Unlock()
		if r.URL.Path == "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/busy/pause" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"VMI is already paused","reason":"Conflict","code":409}`)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	p, err := NewSubresourcePauser(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Pause(ctx, "ns", "vm-1"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := p.Unpause(ctx, "ns", "vm-1"); err != nil {
		t.Fatalf("Unpause: %v", err)
	}
	if err := p.Pause(ctx, "ns", "busy"); !apierrors.IsConflict(err) {
		t.Errorf("Pause of a paused VMI: err = %v, want a Conflict", err)
	}
	want := []call{
		{http.MethodPut, "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm-1/pause", "application/json", "{}"},
		{http.MethodPut, "/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm-1/unpause", "application/json", "{}"},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 || calls[0] != want[0] || calls[1] != want[1] {
		t.Errorf("calls = %+v, want %+v then the busy pause", calls, want)
	}
}
