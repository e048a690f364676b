package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkGet measures the seed GET through the whole server (real HTTP,
// cached authentication and authorization, cache read, encoding):
// go test -run '^$' -bench BenchmarkGet ./internal/api/
func BenchmarkGet(b *testing.B) {
	// The benchmark function runs several times: the instance is made once.
	if _, err := getResource(b, "instance-bench"); err != nil {
		createWithStatus(b, seedInstance("instance-bench"), runningStatus())
	}
	url := baseURL + instancePath("instance-bench")
	transport := &http.Transport{MaxIdleConnsPerHost: 256}
	client := &http.Client{Transport: transport}
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != http.StatusOK {
		b.Fatalf("status %d", code)
	}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code := get(); code != http.StatusOK {
				b.Errorf("status %d", code)
				return
			}
		}
	})
}

// BenchmarkHandler is the seed GET through the handler alone, no network:
// what the request path itself costs and allocates.
// go test -run '^$' -bench BenchmarkHandler -benchmem ./internal/api/
func BenchmarkHandler(b *testing.B) {
	if _, err := getResource(b, "instance-bench"); err != nil {
		createWithStatus(b, seedInstance("instance-bench"), runningStatus())
	}
	h := srv.Handler()
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, instancePath("instance-bench"), nil)
		req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for deadline := time.Now().Add(10 * time.Second); get().Code != http.StatusOK; {
		if time.Now().After(deadline) {
			b.Fatal("the instance is never served")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
