// Package simulated owns the simulated cloud: a provider that behaves like a
// real one (per-step latencies, capacity per instance and GPU type, unique
// addresses per network, state that survives an operator restart, injected
// faults) and is the default backend for development and tests.
//
// Time in the simulated cloud is lazy: a machine's next step happens when a
// call observes it after the step's deadline, so no goroutine runs per
// machine and every call does work independent of how many machines exist.
package simulated
