package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillWithTest: a process started with KillWithTest dies with the test binary that started
// it. The test runs itself again as that binary (a helper that starts `sleep 60`, prints its pid
// and exits without any cleanup, as a killed test run would) and checks the sleep is gone.
func TestKillWithTest(t *testing.T) {
	if os.Getenv("TESTENV_KILL_HELPER") == "1" {
		cmd := exec.Command("sleep", "60")
		KillWithTest(cmd)
		if err := cmd.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		os.Exit(0) // no Wait, no Kill: the kernel must do it
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestKillWithTest$")
	helper.Env = append(os.Environ(), "TESTENV_KILL_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	helper.Wait()
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Gone, or a zombie waiting for init to reap it: either way no longer running.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the child (pid %d) outlived the process that started it by 10 s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
