package browsertest

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill cmd when the process that started it dies. Chromium then
// exits too: it is driven over a pipe from node, and exits when that closes.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
