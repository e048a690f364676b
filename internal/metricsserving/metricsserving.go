package metricsserving

import (
	"crypto/tls"
	"flag"
	"net/http"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// DefaultBindAddress is where the metrics are served unless told otherwise.
const DefaultBindAddress = ":8443"

// Flags are the manager's metrics flags.
type Flags struct {
	BindAddress string
	Secure      bool
	EnableHTTP2 bool
	// Guard, when set, screens every scrape's bearer token before the
	// filter reviews it (the REST API's bad-token guard, so that both
	// ports spend the same budgets); nil reviews every token.
	Guard Guard
}

// Guard wraps a handler that authenticates bearer tokens by TokenReview,
// refusing the tokens it must not review.
type Guard interface {
	Wrap(h http.Handler) http.Handler
}

// BindFlags registers --metrics-bind-address, --metrics-secure and
// --metrics-enable-http2 on fs.
func BindFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.BindAddress, "metrics-bind-address", DefaultBindAddress,
		"Address of the Prometheus metrics endpoint; 0 turns it off.")
	fs.BoolVar(&f.Secure, "metrics-secure", true,
		"Serve metrics over HTTPS and let only callers whose token the kube-apiserver authorizes "+
			"for get on /metrics (the metrics-reader ClusterRole) scrape them; false serves plain HTTP to anyone.")
	fs.BoolVar(&f.EnableHTTP2, "metrics-enable-http2", false,
		"Allow HTTP/2 on the metrics endpoint; off by default because of the HTTP/2 rapid reset and stream cancellation CVEs.")
	return f
}

// Options are the manager's metrics server options for f. Secure serving
// uses a self-signed certificate unless the options are given one
// (CertDir); Prometheus's ServiceMonitor then scrapes with
// insecureSkipVerify and its service account's bearer token.
func (f Flags) Options() metricsserver.Options {
	opts := metricsserver.Options{BindAddress: f.BindAddress, SecureServing: f.Secure}
	if f.Secure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
		if f.Guard != nil {
			opts.FilterProvider = guarded(f.Guard, opts.FilterProvider)
		}
	}
	if !f.EnableHTTP2 {
		opts.TLSOpts = append(opts.TLSOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	return opts
}

// guarded is provide's filter behind g.
func guarded(g Guard, provide func(*rest.Config, *http.Client) (metricsserver.Filter, error)) func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
	return func(c *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
		filter, err := provide(c, hc)
		if err != nil {
			return nil, err
		}
		return func(log logr.Logger, h http.Handler) (http.Handler, error) {
			inner, err := filter(log, h)
			if err != nil {
				return nil, err
			}
			return g.Wrap(inner), nil
		}, nil
	}
}
