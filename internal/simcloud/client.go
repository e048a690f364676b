package simcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	clienttransport "k8s.io/client-go/transport"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
	"github.com/k0rdent-ai/instance-operator/internal/provider"
	"github.com/k0rdent-ai/instance-operator/internal/provider/simulated"
)

// ClientOptions tune the client's network behaviour.
type ClientOptions struct {
	// CallTimeout bounds a call that comes without a deadline of its own;
	// the reconciler gives each call one, so this is a backstop.
	CallTimeout time.Duration
	// DialTimeout bounds connecting, so an unreachable cloud fails a call
	// fast instead of eating its whole deadline.
	DialTimeout time.Duration
	// Attempts is how many times an idempotent call (Observe, Create) is
	// tried when the connection fails before an answer; at least 1.
	Attempts int
	// RetryDelay is the pause between those attempts.
	RetryDelay time.Duration
	// TokenFile holds the bearer token the cloud authenticates the client
	// by: a projected service-account token with the cloud's audience,
	// which the kubelet rotates. It is re-read every minute and at once
	// after the cloud answers 401, so a rotated token is picked up.
	TokenFile string
}

// DefaultClientOptions suit a cloud on the same network.
func DefaultClientOptions() ClientOptions {
	return ClientOptions{CallTimeout: 30 * time.Second, DialTimeout: 2 * time.Second, Attempts: 3, RetryDelay: 100 * time.Millisecond}
}

// Client is the `simulated` provider over the network: each call goes to the
// simcloud service at its base URL.
type Client struct {
	base string
	http *http.Client
	opts ClientOptions
}

var _ provider.Provider = (*Client)(nil)

// NewClient returns a provider that calls the simcloud service at baseURL
// (http://host:port).
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("the simulated cloud's URL %q is not http:// or https://", baseURL)
	}
	if opts.Attempts < 1 {
		opts.Attempts = 1
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.MaxIdleConnsPerHost = 64
	var rt http.RoundTripper = transport
	if opts.TokenFile != "" {
		if _, err := os.Stat(opts.TokenFile); err != nil {
			return nil, fmt.Errorf("failed to read the simulated cloud's token: %w", err)
		}
		rt = clienttransport.ResettableTokenSourceWrapTransport(clienttransport.NewCachedFileTokenSource(opts.TokenFile))(rt)
	}
	return &Client{
		base: strings.TrimSuffix(baseURL, "/"),
		http: &http.Client{Transport: rt, Timeout: opts.CallTimeout},
		opts: opts,
	}, nil
}

// Name implements provider.Provider: it is the simulated cloud, wherever it runs.
func (c *Client) Name() string { return simulated.Name }

// Observe implements provider.Provider; a read, so retried on a broken connection.
func (c *Client) Observe(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	return c.do(ctx, pathObserve, callRequest{Instance: inst}, true)
}

// Create implements provider.Provider; retried on a broken connection, as
// the create token makes a second call return the machine of the first.
func (c *Client) Create(ctx context.Context, inst *computev1alpha1.Instance) (*provider.Machine, error) {
	return c.do(ctx, pathCreate, callRequest{Instance: inst}, inst.Status.Machine.CreateToken != "")
}

// Update implements provider.Provider; not retried here: the reconciler
// calls again on its next pass.
func (c *Client) Update(ctx context.Context, inst *computev1alpha1.Instance) error {
	_, err := c.do(ctx, pathUpdate, callRequest{Instance: inst}, false)
	return err
}

// SetPower implements provider.Provider; not retried here.
func (c *Client) SetPower(ctx context.Context, inst *computev1alpha1.Instance, action provider.PowerAction) error {
	_, err := c.do(ctx, pathSetPower, callRequest{Instance: inst, Action: action}, false)
	return err
}

// Delete implements provider.Provider; not retried here.
func (c *Client) Delete(ctx context.Context, inst *computev1alpha1.Instance) error {
	_, err := c.do(ctx, pathDelete, callRequest{Instance: inst}, false)
	return err
}

// errNoAnswer marks a call whose connection failed before an answer came:
// the cloud may or may not have acted.
var errNoAnswer = errors.New("no answer from the simulated cloud")

func (c *Client) do(ctx context.Context, path string, req callRequest, idempotent bool) (*provider.Machine, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the call to the simulated cloud: %w", err)
	}
	attempts := 1
	if idempotent {
		attempts = c.opts.Attempts
	}
	for attempt := 1; ; attempt++ {
		m, err := c.once(ctx, path, body)
		if err == nil || !errors.Is(err, errNoAnswer) || attempt >= attempts || ctx.Err() != nil {
			return m, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(c.opts.RetryDelay):
		}
	}
}

func (c *Client) once(ctx context.Context, path string, body []byte) (*provider.Machine, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to build the call to the simulated cloud: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to reach the simulated cloud at %s: %w: %w", c.base, errNoAnswer, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("failed to read the simulated cloud's answer: %w: %w", errNoAnswer, err)
	}
	if resp.StatusCode == http.StatusOK {
		var out callResponse
		if err := json.Unmarshal(data, &out); err != nil {
			return nil, fmt.Errorf("failed to decode the simulated cloud's answer: %w", err)
		}
		return out.Machine, nil
	}
	var e errorResponse
	if err := json.Unmarshal(data, &e); err != nil || e.Message == "" {
		return nil, fmt.Errorf("the simulated cloud answered %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	switch e.Kind {
	case kindNotFound:
		return nil, fmt.Errorf("%s: %w", e.Message, provider.ErrNotFound)
	case kindPermanent:
		return nil, provider.Permanent(e.Reason, "%s", e.Message)
	}
	return nil, fmt.Errorf("the simulated cloud answered %d: %s", resp.StatusCode, e.Message)
}

// Machines lists the cloud's machines, as its operator sees them.
func (c *Client) Machines(ctx context.Context) ([]simulated.MachineInfo, error) {
	var out []simulated.MachineInfo
	if err := c.admin(ctx, http.MethodGet, PathMachines, nil, &out); err != nil {
		return nil, fmt.Errorf("failed to list the simulated cloud's machines: %w", err)
	}
	return out, nil
}

// SetFaults replaces the cloud's fault rates.
func (c *Client) SetFaults(ctx context.Context, f simulated.Faults) error {
	if err := c.admin(ctx, http.MethodPut, PathFaults, f, nil); err != nil {
		return fmt.Errorf("failed to set the simulated cloud's faults: %w", err)
	}
	return nil
}

// SetCapacity sets how many machines of an instance type fit.
func (c *Client) SetCapacity(ctx context.Context, instanceType string, machines int) error {
	if err := c.admin(ctx, http.MethodPut, PathCapacity, CapacityRequest{InstanceType: instanceType, Machines: machines}, nil); err != nil {
		return fmt.Errorf("failed to set the simulated cloud's capacity: %w", err)
	}
	return nil
}

func (c *Client) admin(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the simulated cloud answered %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
