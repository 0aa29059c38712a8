package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux architecture
// Go supports (the kernel's ABI fixes it, whatever HZ the kernel runs at).
const clockTicks = 100

// Group names a set of processes whose CPU time is reported together.
type Group string

// The groups detctl bench reports: streamdet's own processes, then its dependencies.
const (
	Ingest Group = "ingest"
	Detect Group = "detect"
	Sink   Group = "sink"
	Detctl Group = "detctl" // the embedded all-in-one (detctl dev): all three services in one process
	Kafka  Group = "kafka"
	MinIO  Group = "minio"
	Redis  Group = "redis"
	Jaeger Group = "jaeger"
	Prom   Group = "prometheus"
	// Load is detctl bench itself, the load generator: reported (it shares the machine's cores
	// with what it measures, where real producers would not), never counted in Own or Total.
	Load    Group = "load"
	Unknown Group = ""
)

// Own reports whether g is one of streamdet's processes (as opposed to a dependency).
func (g Group) Own() bool { return g == Ingest || g == Detect || g == Sink || g == Detctl }

// Classify names the group of a process from its command name and command line.
func Classify(comm string, cmdline []string) Group {
	exe := ""
	if len(cmdline) > 0 {
		exe = filepath.Base(cmdline[0])
	}
	switch {
	case exe == "ingest" || comm == "ingest":
		return Ingest
	case exe == "detect" || comm == "detect":
		return Detect
	case exe == "sink" || comm == "sink":
		return Sink
	case (exe == "detctl" || comm == "detctl") && len(cmdline) > 1 && cmdline[1] == "dev":
		return Detctl
	case (exe == "detctl" || comm == "detctl") && len(cmdline) > 1 && cmdline[1] == "bench":
		return Load
	case exe == "java" && containsArg(cmdline, "kafka.Kafka"):
		return Kafka
	case exe == "minio" || comm == "minio":
		return MinIO
	case strings.HasPrefix(comm, "redis-server") || exe == "redis-server":
		return Redis
	case exe == "jaeger" || comm == "jaeger":
		return Jaeger
	case exe == "prometheus" || comm == "prometheus":
		return Prom
	}
	return Unknown
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// CPU is CPU seconds (user + system) per group.
type CPU map[Group]float64

// Procs is one reading of the classified processes' CPU times, per process: a step's CPU is
// the difference of two readings taken per process (Since), so a process that exits between
// them (another test's broker, a restarted replica) takes nothing away from its group.
type Procs map[Proc]ProcTime

// Proc names one process across readings: its pid and its start time (in clock ticks after
// boot), so a pid reused by a new process is a new Proc.
type Proc struct {
	PID   int
	Start uint64
}

// ProcTime is a process's group and its CPU seconds so far.
type ProcTime struct {
	Group Group
	CPU   float64
}

// Sample reads the CPU time of every classified process under procDir (normally /proc).
// Processes that vanish while it reads are skipped.
func Sample(procDir string) (Procs, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", procDir, err)
	}
	out := Procs{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procDir, e.Name())
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		g := Classify(strings.TrimSpace(string(comm)), splitCmdline(cmd))
		if g == Unknown {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		secs, start, err := parseStat(stat)
		if err != nil {
			return nil, fmt.Errorf("%s/stat: %w", dir, err)
		}
		out[Proc{pid, start}] = ProcTime{g, secs}
	}
	return out, nil
}

// CPU sums the reading per group.
func (p Procs) CPU() CPU {
	out := CPU{}
	for _, t := range p {
		out[t.Group] += t.CPU
	}
	return out
}

// Since returns the CPU each group used between prev and p: per process present in both, the
// difference; a process started since prev counts whole (all of its time is since); one gone
// since prev counts nothing, never less than nothing.
func (p Procs) Since(prev Procs) CPU {
	out := CPU{}
	for id, t := range p {
		d := t.CPU - prev[id].CPU
		if d > 0 {
			out[t.Group] += d
		}
	}
	return out
}

func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// ParseStat returns utime+stime, in seconds, from the contents of /proc/<pid>/stat.
func ParseStat(b []byte) (float64, error) {
	secs, _, err := parseStat(b)
	return secs, err
}

// parseStat returns utime+stime, in seconds, and the start time (clock ticks after boot) from
// the contents of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'; a stat cut short before the start
// time (as a test's may be) gives start 0.
func parseStat(b []byte) (secs float64, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ppid(4) … utime(14) stime(15) … starttime(22): indexes 11, 12
	// and 19 here.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("utime %q stime %q", f[11], f[12])
	}
	if len(f) > 19 {
		if start, err = strconv.ParseUint(f[19], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("starttime %q", f[19])
		}
	}
	return float64(u+s) / clockTicks, start, nil
}

// Groups returns the groups present: streamdet's own, its dependencies, then the load
// generator, each part sorted.
func (c CPU) Groups() []Group {
	var gs []Group
	for g := range c {
		gs = append(gs, g)
	}
	rank := func(g Group) int {
		switch {
		case g.Own():
			return 0
		case g == Load:
			return 2
		}
		return 1
	}
	sort.Slice(gs, func(i, j int) bool {
		if ri, rj := rank(gs[i]), rank(gs[j]); ri != rj {
			return ri < rj
		}
		return gs[i] < gs[j]
	})
	return gs
}

// Own is the CPU seconds of streamdet's own processes.
func (c CPU) Own() float64 {
	t := 0.0
	for g, v := range c {
		if g.Own() {
			t += v
		}
	}
	return t
}

// Total is the CPU seconds of streamdet and its dependencies: every group but the load
// generator.
func (c CPU) Total() float64 {
	t := 0.0
	for g, v := range c {
		if g != Load {
			t += v
		}
	}
	return t
}

var readFile = os.ReadFile
