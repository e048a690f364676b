package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/k0rdent-ai/instance-operator/test/load"
)

// The floor is a bare net/http server that answers each GET path with the
// bytes (headers and body) the REST API answered for it, doing no work at
// all: what Go's net/http costs on this machine, the most the API could
// reach. It runs as this program started again with floorDataEnv set, so it
// is a process of its own, as the manager is.
const (
	floorDataEnv = "BENCH_FLOOR_DATA"
	floorAddrEnv = "BENCH_FLOOR_ADDRESS"
)

// floorAnswer is one recorded answer of the API.
type floorAnswer struct {
	Header http.Header `json:"header"`
	Body   []byte      `json:"body"`
}

// startFloor records the API's answers to GETs of paths and starts the
// floor serving them; it returns the floor's base URL and a stop function.
func (b *bench) startFloor(ctx context.Context, client *http.Client, paths []string) (string, int, func(), error) {
	answers := map[string]floorAnswer{}
	for _, path := range paths {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, nil, fmt.Errorf("failed to record the API's answer for the floor: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", 0, nil, fmt.Errorf("failed to record the API's answer for the floor: status %d", resp.StatusCode)
		}
		if err != nil {
			return "", 0, nil, fmt.Errorf("failed to record the API's answer for the floor: %w", err)
		}
		resp.Header.Del("Date") // net/http writes its own
		answers[path] = floorAnswer{Header: resp.Header, Body: body}
	}
	data, err := json.Marshal(answers)
	if err != nil {
		return "", 0, nil, err
	}
	file := filepath.Join(b.work, "floor.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", 0, nil, err
	}
	port, err := load.FreePort()
	if err != nil {
		return "", 0, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorDataEnv+"="+file, floorAddrEnv+"="+addr)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("failed to start the floor server: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(url + paths[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, cmd.Process.Pid, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", 0, nil, fmt.Errorf("the floor server never answered: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveFloor is the floor process: the recorded answers, by path, with the
// API server's own http.Server settings (timeouts cost a deadline per request).
func serveFloor() error {
	data, err := os.ReadFile(os.Getenv(floorDataEnv))
	if err != nil {
		return err
	}
	var answers map[string]floorAnswer
	if err := json.Unmarshal(data, &answers); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", os.Getenv(floorAddrEnv))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, ok := answers[r.URL.Path]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			h := w.Header()
			for k, v := range a.Header {
				h[k] = v
			}
			_, _ = w.Write(a.Body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
	return srv.Serve(ln)
}
