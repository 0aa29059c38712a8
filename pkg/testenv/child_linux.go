package testenv

import (
	"os/exec"
	"syscall"
)

// KillWithTest makes the kernel kill cmd's process (SIGKILL) when the test binary that starts
// it dies, so that a test run killed half-way (a CI timeout, ^C twice) leaves no server behind
// on its ports. Call it before cmd.Start; it keeps any other SysProcAttr fields already set.
// The kernel ties the child to the OS thread that started it: start it from a goroutine that
// has not called runtime.LockOSThread, whose thread Go may end when the goroutine returns.
func KillWithTest(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
