package simcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// maxBody bounds a request body; an Instance is a few kilobytes.
const maxBody = 1 << 20

// Server serves a simulated cloud over HTTP.
type Server struct {
	cloud  *simulated.Cloud
	log    logr.Logger
	access Access

	mu   sync.Mutex
	dice *mrand.Rand
}

// NewServer serves cloud to the users access admits; seed seeds the dice
// of dropped connections (zero picks a random seed).
func NewServer(cloud *simulated.Cloud, log logr.Logger, seed uint64, access Access) *Server {
	if seed == 0 {
		seed = mrand.Uint64()
	}
	return &Server{cloud: cloud, log: log, access: access, dice: mrand.New(mrand.NewPCG(seed, ^seed))}
}

// Handler routes the provider calls and the operator's knobs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathObserve, s.guard(roleCaller, s.call(func(ctx context.Context, req *callRequest) (*provider.Machine, error) {
		return s.cloud.Observe(ctx, req.Instance)
	})))
	mux.HandleFunc("POST "+pathCreate, s.guard(roleCaller, s.call(func(ctx context.Context, req *callRequest) (*provider.Machine, error) {
		return s.cloud.Create(ctx, req.Instance)
	})))
	mux.HandleFunc("POST "+pathUpdate, s.guard(roleCaller, s.call(func(ctx context.Context, req *callRequest) (*provider.Machine, error) {
		return nil, s.cloud.Update(ctx, req.Instance)
	})))
	mux.HandleFunc("POST "+pathSetPower, s.guard(roleCaller, s.call(func(ctx context.Context, req *callRequest) (*provider.Machine, error) {
		return nil, s.cloud.SetPower(ctx, req.Instance, req.Action)
	})))
	mux.HandleFunc("POST "+pathDelete, s.guard(roleCaller, s.call(func(ctx context.Context, req *callRequest) (*provider.Machine, error) {
		return nil, s.cloud.Delete(ctx, req.Instance)
	})))
	mux.HandleFunc("GET "+PathMachines, s.guard(roleEither, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, redacted(s.cloud.Machines()))
	}))
	mux.HandleFunc("GET "+PathFaults, s.guard(roleAdmin, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.cloud.Faults())
	}))
	mux.HandleFunc("PUT "+PathFaults, s.guard(roleAdmin, func(w http.ResponseWriter, r *http.Request) {
		var f simulated.Faults
		if !decode(w, r, &f) {
			return
		}
		if err := s.cloud.SetFaults(f); err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Kind: kindPermanent, Message: err.Error()})
			return
		}
		s.log.Info("faults changed", "faults", f)
		writeJSON(w, http.StatusOK, s.cloud.Faults())
	}))
	mux.HandleFunc("PUT "+PathCapacity, s.guard(roleAdmin, func(w http.ResponseWriter, r *http.Request) {
		var c CapacityRequest
		if !decode(w, r, &c) {
			return
		}
		if c.InstanceType == "" || c.Machines < 0 {
			writeJSON(w, http.StatusBadRequest, errorResponse{Kind: kindPermanent, Message: "instanceType is required and machines must be 0 or more"})
			return
		}
		s.cloud.SetCapacity(c.InstanceType, c.Machines)
		s.log.Info("capacity changed", "instanceType", c.InstanceType, "machines", c.Machines)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/machines/{id}/fail-host", s.guard(roleAdmin, func(w http.ResponseWriter, r *http.Request) {
		s.inspect(w, s.cloud.FailHost(r.PathValue("id")))
	}))
	mux.HandleFunc("POST /v1/machines/{id}/lose", s.guard(roleAdmin, func(w http.ResponseWriter, r *http.Request) {
		s.inspect(w, s.cloud.Lose(r.PathValue("id")))
	}))
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

// Redacted stands for an instanceMetadata value in the cloud's listing.
const Redacted = "<redacted>"

// redacted keeps each machine's metadata keys, which say what a machine was
// given, and drops the values, which are the users' ssh keys and secrets,
// and the create tokens: no caller of the listing needs them, and the
// controllers read a machine's metadata back through Observe.
func redacted(machines []simulated.MachineInfo) []simulated.MachineInfo {
	for i := range machines {
		machines[i].Token = ""
		for j := range machines[i].Metadata {
			machines[i].Metadata[j].Value = Redacted
		}
	}
	return machines
}

func (s *Server) inspect(w http.ResponseWriter, err error) {
	if err != nil {
		writeJSON(w, http.StatusNotFound, errorResponse{Kind: kindNotFound, Message: err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// call runs one provider call. The call runs under the request's context,
// so a caller that gives up (a timeout, a dropped connection) ends an
// injected slow call as it would end the wait at a real cloud.
func (s *Server) call(op func(context.Context, *callRequest) (*provider.Machine, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req callRequest
		if !decode(w, r, &req) {
			return
		}
		if req.Instance == nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Kind: kindPermanent, Message: "the call names no instance"})
			return
		}
		m, err := op(r.Context(), &req)
		if s.drop() {
			// The cloud acted; the caller never hears of it.
			panic(http.ErrAbortHandler)
		}
		if err != nil {
			status, body := errorFor(err)
			writeJSON(w, status, body)
			return
		}
		writeJSON(w, http.StatusOK, callResponse{Machine: m})
	}
}

func (s *Server) drop() bool {
	rate := s.cloud.Faults().DropRate
	if rate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dice.Float64() < rate
}

// errorFor maps the cloud's errors onto statuses the client maps back.
func errorFor(err error) (int, errorResponse) {
	if errors.Is(err, provider.ErrNotFound) {
		return http.StatusNotFound, errorResponse{Kind: kindNotFound, Message: err.Error()}
	}
	if p, ok := provider.AsPermanent(err); ok {
		return http.StatusUnprocessableEntity, errorResponse{Kind: kindPermanent, Reason: p.Reason, Message: p.Message}
	}
	return http.StatusServiceUnavailable, errorResponse{Kind: kindTransient, Message: err.Error()}
}

func decode(w http.ResponseWriter, r *http.Request, into any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	if err := dec.Decode(into); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Kind: kindPermanent, Message: fmt.Sprintf("malformed request body: %v", err)})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Serve serves s on ln until ctx ends, then shuts down, giving calls under
// way up to five seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// An injected slow call may take minutes; the caller's timeout ends it.
		IdleTimeout: 90 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve the simulated cloud on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("failed to shut down the simulated cloud's server: %w", err)
	}
	return nil
}
