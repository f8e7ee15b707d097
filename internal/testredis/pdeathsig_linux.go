package testredis

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when the test process dies
// without running its cleanups (a test timeout, a kill), so no redis-server
// outlives its test.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// DieWithParent is dieWithParent for other test helpers that start
// processes (e.g. eventsvctest).
func DieWithParent(cmd *exec.Cmd) { dieWithParent(cmd) }
