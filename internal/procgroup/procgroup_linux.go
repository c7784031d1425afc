package procgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dieWithParent has the kernel kill the command when medcad dies.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

// SignalGroupsBelow sends sig to every process group, other than pid's
// own, that holds a descendant of pid: the groups that stages started
// under a runner. It returns the groups signalled.
func SignalGroupsBelow(pid int, sig syscall.Signal) ([]int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	parent, group := map[int]int{}, map[int]int{}
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parens.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(data[i+1:])
		if len(f) < 3 {
			continue
		}
		id, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		parent[id], _ = strconv.Atoi(string(f[1]))
		group[id], _ = strconv.Atoi(string(f[2]))
	}
	own := group[pid]
	var out []int
	seen := map[int]bool{}
	for id := range parent {
		below := false
		for a, n := parent[id], 0; a > 1 && n < 4096; a, n = parent[a], n+1 {
			if a == pid {
				below = true
				break
			}
		}
		if g := group[id]; below && g != own && g > 1 && !seen[g] {
			seen[g] = true
			if err := syscall.Kill(-g, sig); err == nil {
				out = append(out, g)
			}
		}
	}
	return out, nil
}
