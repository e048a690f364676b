// Package load holds what the benchmark and reliability programs share to
// load the local stack: an unthrottled admin client, project namespaces, many
// instances created at once, a watch that counts them to RUNNING, and the
// small process and output helpers around them.
package load
