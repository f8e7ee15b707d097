//go:build !linux

package devmesh

import "os/exec"

// setParentDeathSignal is Linux only: elsewhere a subprocess outlives an
// angzarr dev killed with SIGKILL.
func setParentDeathSignal(*exec.Cmd) {}
