// Command bench measures the product on the real local control plane and
// prints a table for people and one `BENCH <name> <value>` line per figure
// for machines: the REST API's GET beside the same GET made directly against
// kube-apiserver, the time for N instances to converge to RUNNING beside a bare
// client's floor of the same writes, and the manager's peak memory holding
// many instances. Every figure is measured side by side with its baseline in
// the same run, because this machine is shared and noisy: ratios hold,
// absolute times do not. `make bench` runs it; BENCH_N makes it small.
package main
