//go:build !linux

package testredis

import "os/exec"

// dieWithParent is a no-op where the kernel offers no parent-death signal.
func dieWithParent(*exec.Cmd) {}

// DieWithParent is dieWithParent for other test helpers that start
// processes (e.g. eventsvctest).
func DieWithParent(cmd *exec.Cmd) { dieWithParent(cmd) }
