package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// laggingCache is an informer cache that has not caught up with instances
// yet: it knows none. Namespaces it reads from the suite's cache (a project
// is looked up in the cache only: a stranger's request for a project the
// cache does not know must cost kube-apiserver nothing,
// TestStrangerCostsNoKubeAPIServerRead). Writes go through to the API server.
type laggingCache struct{ client.Client }

func (laggingCache) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{Group: "compute.k0rdent.ai", Resource: "instances"}, key.Name)
}

// TestLiveReadBeforeNotFound: when the cache does not know the instance yet
// (a create a moment ago), the server reads the API server before
// answering 404, once the caller is authorized.
func TestLiveReadBeforeNotFound(t *testing.T) {
	createWithStatus(t, seedInstance("instance-lagging"), runningStatus())
	s := &Server{opts: srv.opts, mgr: srv.mgr, kubeClient: laggingCache{srv.kubeClient}, live: env.Client,
		authn: srv.authn, authz: srv.authz, base: srv.base, rate: newRateLimiter(1e6, 1e6)}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for path, want := range map[string]int{
		instancePath("instance-lagging"): http.StatusOK,
		instancePath("no-such-instance"): http.StatusNotFound,
	} {
		if r := callAt(t, ts.URL, http.MethodGet, path, tokens["viewer"], nil); r.StatusCode != want {
			t.Errorf("%s = %d, want %d: %s", path, r.StatusCode, want, r.body)
		}
	}
}
