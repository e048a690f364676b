//go:build !linux

package kubevirt

import "os/exec"

// stopWithParent does nothing where there is no parent-death signal; the
// suite's deferred stop ends the server.
func stopWithParent(*exec.Cmd) {}
