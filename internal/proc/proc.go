// Package proc reads this machine's processes and processors from /proc
// (Linux), and prepares the environment of the child processes that the
// benchmark and the tests start. It serves measurements, not the service;
// it is the one copy of these readers (the benchmark, the crash test and
// the activities' delivery benchmark use it).
package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is Linux's USER_HZ, the unit of CPU times in /proc/PID/stat
// and /proc/stat (100 on every architecture Go supports).
const ClockTicks = 100

// Stat reads a process's name, parent, CPU time (user + system) and the
// CPU time of its children that have exited and been waited for. ok is
// false when the process is gone or /proc is not there.
func Stat(pid string) (name string, ppid int, cpu, reaped time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, 0, 0, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", 0, 0, 0, false
	}
	// Fields after the name: state ppid ... utime (12th) stime (13th)
	// cutime (14th) cstime (15th).
	fields := strings.Fields(s[closing+1:])
	if len(fields) < 15 {
		return "", 0, 0, 0, false
	}
	ticks := func(i int) time.Duration {
		n, _ := strconv.ParseInt(fields[i], 10, 64)
		return time.Duration(n) * time.Second / ClockTicks
	}
	ppid, _ = strconv.Atoi(fields[1])
	return s[open+1 : closing], ppid, ticks(11) + ticks(12), ticks(13) + ticks(14), true
}

// PeakRSS reads a process's peak resident set size (VmHWM) in bytes.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for process %d", pid)
}

// ChildPID returns the PID of a child of this process whose name starts
// with prefix, or 0.
func ChildPID(prefix string) int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if name, ppid, _, _, ok := Stat(e.Name()); ok && ppid == self && strings.HasPrefix(name, prefix) {
			return pid
		}
	}
	return 0
}

// NamedCPU sums the CPU time of every process named name, including their
// children that exited (a server's short-lived backends); ok is false when
// there is none.
func NamedCPU(name string) (total time.Duration, ok bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if n, _, cpu, reaped, found := Stat(e.Name()); found && n == name {
			total += cpu + reaped
			ok = true
		}
	}
	return total, ok
}

// MachineBusy reads the CPU time all processors spent on anything but
// idling (every process, the kernel) since boot, from /proc/stat. ok is
// false where there is no such file.
func MachineBusy() (busy time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	// user nice system idle iowait irq softirq steal
	for i, f := range fields[1:9] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 {
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / ClockTicks, true
}

// ChildEnv is this process's environment without any setting that could
// point a child elsewhere (database, Temporal, task queue, keys), plus set.
func ChildEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || strings.HasPrefix(name, "TEMPORAL_") || strings.HasPrefix(name, "INTEGRATIONS_") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}
