// Package promql keeps the alerts (config/prometheus) and the Grafana
// dashboard (config/grafana) honest: every expression parses with
// Prometheus's own parser, the alerts fire in Prometheus's own rule engine
// when they should and not otherwise, and every metric they name is
// exported by a running manager.
//
// It is a module of its own because github.com/prometheus/prometheus would
// upgrade some thirty of the operator's dependencies (client_golang, grpc,
// otel, golang.org/x/...) for tests alone; run it with
// `cd test/promql && go test ./...` (make test-promql).
package promql
