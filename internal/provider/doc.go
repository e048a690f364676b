// Package provider owns the contract between the Instance reconciler and the
// clouds that run machines: the Provider interface, the machine as a provider
// reports it, and the error classes the reconciler acts on. Implementations
// live in sub-packages (simulated, kubevirt).
package provider
