package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux the benchmark is meant for.
const clockTicks = 100

// cpuSeconds is the user+system CPU time a process has used, from
// /proc/<pid>/stat; 0 when it cannot be read (not Linux, process gone).
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15 of the whole line.
	s := string(data)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(rest) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(rest[11], 64)
	stime, _ := strconv.ParseFloat(rest[12], 64)
	return (utime + stime) / clockTicks
}

// childPIDs finds this process's children by command name (the envtest
// kube-apiserver and etcd, which envtest does not expose).
func childPIDs(name string) []int {
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(data)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		rest := strings.Fields(s[closing+1:])
		if len(rest) > 1 && s[open+1:closing] == name && rest[1] == self {
			out = append(out, pid)
		}
	}
	return out
}

// cpuUse is the CPU seconds the parts of the benchmark have used.
type cpuUse struct {
	Operator, APIServer, Etcd, Bench float64
}

func (a cpuUse) minus(b cpuUse) cpuUse {
	return cpuUse{a.Operator - b.Operator, a.APIServer - b.APIServer, a.Etcd - b.Etcd, a.Bench - b.Bench}
}

// cpu reads the CPU used so far by the control plane, the benchmark and, if
// given, an operator process.
func (c *cluster) cpu(op *operatorProcess) cpuUse {
	u := cpuUse{Bench: cpuSeconds(os.Getpid())}
	for _, pid := range childPIDs("kube-apiserver") {
		u.APIServer += cpuSeconds(pid)
	}
	for _, pid := range childPIDs("etcd") {
		u.Etcd += cpuSeconds(pid)
	}
	if op != nil {
		u.Operator = cpuSeconds(op.cmd.Process.Pid)
	}
	return u
}
