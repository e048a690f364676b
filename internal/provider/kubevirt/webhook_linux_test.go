package kubevirt

import (
	"os/exec"
	"syscall"
)

// stopWithParent has the kernel kill the webhook server if the test binary
// dies without its deferred stop (a test timeout's panic), so that no server
// outlives the suite.
func stopWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
