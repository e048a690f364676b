// Package simcloud puts the simulated cloud behind the network, as a real
// cloud is: Server serves a simulated.Cloud (its journal, capacity, catalog
// and faults) over HTTP, for cmd/simcloud, and Client is the `simulated`
// provider the manager uses to reach it, with the timeouts a network call
// needs and retries only for the calls that are idempotent (Observe, and
// Create by its create token). Every manager replica talks to the one
// service, so they all see one cloud.
package simcloud
