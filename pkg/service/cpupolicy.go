package service

import (
	"fmt"
	"log/slog"
)

// CPUPolicy is the Linux scheduling policy of a service's threads (STREAMDET_CPU_POLICY).
//
// On a machine where the claim-check side (ingest, sink, and the brokers) shares cores with
// detect, every wake-up of an I/O thread — a fetch answered, an object stored — preempts the
// inference running on that core: a context switch, a cold cache for ONNX Runtime, and on a
// virtual machine an interrupt between cores. Under SCHED_BATCH a woken thread does not preempt
// the running one; it waits for the core to be free or for the next scheduler tick. The work is
// the same; the preemptions are not.
type CPUPolicy string

const (
	// CPUNormal leaves the process with the policy it was started with (Linux's default,
	// SCHED_OTHER, unless systemd's CPUSchedulingPolicy= or chrt set another).
	CPUNormal CPUPolicy = "normal"
	// CPUBatch is SCHED_BATCH: the process's wake-ups do not preempt other threads.
	CPUBatch CPUPolicy = "batch"
)

// Validate names a value that is not a policy.
func (p CPUPolicy) Validate() error {
	switch p {
	case CPUNormal, CPUBatch:
		return nil
	}
	return fmt.Errorf("STREAMDET_CPU_POLICY %q: must be %q or %q", string(p), CPUNormal, CPUBatch)
}

// Apply sets CPUBatch on every thread of the process, keeping each thread's nice value;
// threads created later inherit it from the thread that creates them. CPUNormal changes
// nothing. It is for a command's main: the policy is the whole process's, so a process running
// several services (detctl dev) does not call it.
func (p CPUPolicy) Apply() error {
	if err := p.Validate(); err != nil || p == CPUNormal {
		return err
	}
	if err := applyBatch(); err != nil {
		return fmt.Errorf("setting the CPU policy %s: %w", p, err)
	}
	return nil
}

// ApplyCPUPolicy applies p for a command's main and logs the outcome. A policy that cannot be
// set (a seccomp profile refusing sched_setscheduler) is a warning, not a failure: the service works
// the same, it only shares its cores less well.
func ApplyCPUPolicy(p CPUPolicy, log *slog.Logger) {
	if err := p.Apply(); err != nil {
		log.Warn("CPU policy not applied", "policy", string(p), "err", err)
		return
	}
	if p != CPUNormal {
		log.Info("CPU policy", "policy", string(p))
	}
}
