//go:build !linux

package testenv

import "os/exec"

// KillWithTest does nothing where the kernel cannot tie a child's life to its parent's (see
// child_linux.go): the test's own cleanup still stops the process.
func KillWithTest(*exec.Cmd) {}
