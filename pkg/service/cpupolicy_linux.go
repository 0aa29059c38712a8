package service

import (
	"errors"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// applyBatch sets SCHED_BATCH on every thread of the process. It walks /proc/self/task until a
// pass changes nothing, so that a thread started during a pass (by a thread not yet changed) is
// caught by the next one. It uses sched_setscheduler, which keeps the thread's nice value and
// which container seccomp profiles allow for the non-real-time policies.
func applyBatch() error {
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			pol, _, errno := unix.RawSyscall(unix.SYS_SCHED_GETSCHEDULER, uintptr(tid), 0, 0)
			if errno == unix.ESRCH {
				continue // the thread has exited
			}
			if errno != 0 {
				return errno
			}
			if pol == unix.SCHED_BATCH {
				continue
			}
			var param struct{ priority int32 } // struct sched_param; 0 for SCHED_BATCH
			_, _, errno = unix.RawSyscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(tid), unix.SCHED_BATCH, uintptr(unsafe.Pointer(&param)))
			if errno != 0 && errno != unix.ESRCH {
				return errno
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return errors.New("threads kept appearing with another policy")
}
