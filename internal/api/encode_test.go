package api

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// TestEncodedOncePerVersion: a GET stores the instance's encoding, the same
// bytes a fresh encoding gives; a change replaces it; a delete drops it.
func TestEncodedOncePerVersion(t *testing.T) {
	if srv.encodings == nil {
		t.Fatal("the server keeps no encodings")
	}
	in := createWithStatus(t, seedInstance("instance-encoded"), runningStatus())
	r := waitServed(t, "instance-encoded")
	v, ok := srv.encodings.entries.Load(in.UID)
	if !ok {
		t.Fatal("a GET left no stored encoding")
	}
	stored := v.(*encodedInstance)
	fresh, err := encodeInstance(region, project, in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.body, fresh.body) || !bytes.Equal(r.body, fresh.body) {
		t.Fatalf("stored %s\nserved %s\nfresh  %s", stored.body, r.body, fresh.body)
	}

	in.Status.Lifecycle.StatusMessage = "a new version"
	if err := env.Client.Status().Update(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	waitServed(t, "instance-encoded")
	v, _ = srv.encodings.entries.Load(in.UID)
	if e := v.(*encodedInstance); e.resourceVersion != in.ResourceVersion || !bytes.Contains(e.body, []byte("a new version")) {
		t.Fatalf("after a change the entry is at %s: %s", e.resourceVersion, e.body)
	}

	if err := env.Client.Delete(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := srv.encodings.entries.Load(in.UID); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted instance's encoding is still kept")
		}
		time.Sleep(20 * time.Millisecond)
	}
	call(t, http.MethodGet, instancePath("instance-encoded"), tokens["viewer"], nil).envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
}

// TestEncodedCacheDropsARacedDelete: an encoding stored for an instance the
// store no longer holds (its delete was handled before the store) is
// dropped by the read that stored it.
func TestEncodedCacheDropsARacedDelete(t *testing.T) {
	gone := seedInstance("instance-gone")
	gone.UID = "0b0e7bd0-0000-4000-8000-000000000001"
	gone.ResourceVersion = "1"
	c := &encodedCache{store: srv.instanceStore}
	if _, err := c.get(region, project, gone); err != nil {
		t.Fatal(err)
	}
	if c.len() != 0 {
		t.Fatal("the encoding of an instance not in the store was kept")
	}
	var kept *computev1alpha1.Instance
	for _, obj := range srv.instanceStore.List() {
		kept = obj.(*computev1alpha1.Instance)
		break
	}
	if kept == nil {
		createWithStatus(t, seedInstance("instance-kept"), runningStatus())
		waitServed(t, "instance-kept")
		kept = srv.instanceStore.List()[0].(*computev1alpha1.Instance)
	}
	if _, err := c.get(region, project, kept); err != nil {
		t.Fatal(err)
	}
	if c.len() != 1 {
		t.Fatal("the encoding of an instance in the store was not kept")
	}
}
