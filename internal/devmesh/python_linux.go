package devmesh

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel stop the subprocess when angzarr
// dev dies without a chance to stop it (SIGKILL).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
