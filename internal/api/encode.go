package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	toolscache "k8s.io/client-go/tools/cache"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

// encodedInstance is an instance's API JSON at one resourceVersion.
type encodedInstance struct {
	resourceVersion string
	// region and project are part of the body (selfLink): a namespace
	// relabelled to another project makes the entry stale.
	region, project string
	// body is the JSON with a trailing newline, as json.Encoder writes it.
	body []byte
	etag string
}

// json is the body without its newline: an element of a list page.
func (e *encodedInstance) json() []byte { return e.body[:len(e.body)-1] }

// encodedCache keeps the API JSON of the informer's instances, encoded once
// per resourceVersion, keyed by UID: a GET writes stored bytes and a list
// page is assembled from them. An entry is replaced when its instance
// changes and dropped with it; a deleted instance's entry made by a read
// that raced the delete is dropped by that read (see get).
type encodedCache struct {
	entries sync.Map // types.UID -> *encodedInstance
	// store is the informer's store the instances come from.
	store toolscache.Store
}

// get returns in's encoding, from the cache when it is current. in must be
// the store's own object: only those are cached, so only those are dropped.
func (c *encodedCache) get(region, project string, in *computev1alpha1.Instance) (*encodedInstance, error) {
	if v, ok := c.entries.Load(in.UID); ok {
		e := v.(*encodedInstance)
		if e.resourceVersion == in.ResourceVersion && e.region == region && e.project == project {
			return e, nil
		}
	}
	e, err := encodeInstance(region, project, in)
	if err != nil {
		return nil, err
	}
	c.entries.Store(in.UID, e)
	// The informer removes an object from its store before it tells the
	// handlers: if the instance is gone by now, its delete may have been
	// handled before the Store above, so the entry goes here.
	if obj, exists, err := c.store.Get(in); err != nil || !exists || obj.(*computev1alpha1.Instance).UID != in.UID {
		c.entries.CompareAndDelete(in.UID, e)
	}
	return e, nil
}

// forget drops the entry of a deleted instance (the informer's delete handler).
func (c *encodedCache) forget(obj any) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if in, ok := obj.(*computev1alpha1.Instance); ok {
		c.entries.Delete(in.UID)
	}
}

// len counts the entries (tests).
func (c *encodedCache) len() int {
	n := 0
	c.entries.Range(func(any, any) bool { n++; return true })
	return n
}

// encodeInstance renders in as the API's JSON.
func encodeInstance(region, project string, in *computev1alpha1.Instance) (*encodedInstance, error) {
	buf := responseBuffers.Get().(*bytes.Buffer)
	defer putResponseBuffer(buf)
	if err := json.NewEncoder(buf).Encode(toAPI(region, project, in)); err != nil {
		return nil, fmt.Errorf("failed to encode instance %s: %w", in.Name, err)
	}
	// Kept in a slice of its own size: a buffer grown by doubling would
	// hold up to twice the bytes for as long as the entry lives.
	return &encodedInstance{
		resourceVersion: in.ResourceVersion, region: region, project: project,
		body: bytes.Clone(buf.Bytes()), etag: instanceETag(in.ResourceVersion),
	}, nil
}

// encoded is in's encoding: from the cache for the informer's objects,
// afresh for others (an object read from the API server).
func (op *operation) encoded(in *computev1alpha1.Instance, fromStore bool) (*encodedInstance, error) {
	if fromStore && op.s.encodings != nil {
		return op.s.encodings.get(op.rt.region, op.rt.project, in)
	}
	return encodeInstance(op.rt.region, op.rt.project, in)
}

// instanceETag is an instance's entity tag: its resourceVersion, which
// names one state of one object.
func instanceETag(resourceVersion string) string {
	return `"` + resourceVersion + `"`
}

// pageETag is a list page's entity tag, derived from the UIDs and
// resourceVersions of its instances and the next page's token: it changes
// when any of them changes, joins or leaves the page.
func pageETag(page []*computev1alpha1.Instance, nextPageToken string) string {
	h := uint64(fnvOffset)
	for _, in := range page {
		h = fnvString(h, string(in.UID))
		h = fnvString(h, in.ResourceVersion)
	}
	h = fnvString(h, nextPageToken)
	var b [2 + 16 + 1]byte
	out := append(b[:0], `"p`...)
	out = strconv.AppendUint(out, h, 16)
	return string(append(out, '"'))
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnvString adds s and a terminator to an FNV-1a hash.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	h ^= 0xff
	return h * fnvPrime
}
