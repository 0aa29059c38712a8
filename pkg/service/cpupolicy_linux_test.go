package service

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCPUPolicyBatch: in a child process (the policy is the whole process's), Apply(CPUBatch)
// puts every thread under SCHED_BATCH with its nice value kept, threads started afterwards
// inherit it, and CPUNormal leaves a process alone.
func TestCPUPolicyBatch(t *testing.T) {
	if os.Getenv("STREAMDET_TEST_CPU_POLICY_CHILD") == "1" {
		cpuPolicyChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCPUPolicyBatch$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STREAMDET_TEST_CPU_POLICY_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func policies(t *testing.T) map[int]*unix.SchedAttr {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]*unix.SchedAttr{}
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		if a, err := unix.SchedGetAttr(tid, 0); err == nil {
			m[tid] = a
		}
	}
	return m
}

func cpuPolicyChild(t *testing.T) {
	// A thread with a nice value of its own, to see that Apply keeps it.
	niced := make(chan int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 7); err != nil {
			t.Error(err)
		}
		niced <- tid
		<-release
	}()
	tid := <-niced
	if err := CPUNormal.Apply(); err != nil {
		t.Fatal(err)
	}
	for id, a := range policies(t) {
		if a.Policy != unix.SCHED_NORMAL {
			t.Errorf("after normal: thread %d has policy %d", id, a.Policy)
		}
	}
	if err := CPUBatch.Apply(); err != nil {
		t.Fatal(err)
	}
	before := len(policies(t))
	// Threads started afterwards: goroutines locked to threads of their own while others wait.
	var wg sync.WaitGroup
	started := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			started <- struct{}{}
			<-release
		}()
	}
	for i := 0; i < 4; i++ {
		<-started
	}
	all := policies(t)
	if len(all) <= before {
		t.Logf("no new thread was started (%d before, %d after)", before, len(all))
	}
	for id, a := range all {
		if a.Policy != unix.SCHED_BATCH {
			t.Errorf("thread %d has policy %d, want SCHED_BATCH (%d)", id, a.Policy, unix.SCHED_BATCH)
		}
	}
	if a := all[tid]; a == nil || a.Nice != 7 {
		t.Errorf("the niced thread: %+v, want nice 7 kept", a)
	}
	close(release)
	wg.Wait()
	if err := CPUPolicy("fifo").Apply(); err == nil {
		t.Error("fifo: applied, want an error naming STREAMDET_CPU_POLICY")
	}
}
