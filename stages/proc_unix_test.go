//go:build unix

package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReproCancelKillsStageProcessGroup cancels a stage whose shell left a
// grandchild running: Repro returns promptly and the grandchild is gone.
func TestReproCancelKillsStageProcessGroup(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "hang"
run = "sh -c 'sleep 60 & echo $! > \"$MEDCAD_OUT/pid\"; wait'"
outs = ["out"]
`)
	if took := p.cancelAfter(500 * time.Millisecond); took > 3*time.Second {
		t.Errorf("Repro returned after %v, want within 3s", took)
	}
	p.waitGone(p.pid())
}

// TestReproCancelKillsWhatIgnoresSIGTERM cancels a stage whose processes
// ignore SIGTERM: they are killed once the grace period has passed.
func TestReproCancelKillsWhatIgnoresSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the stop grace period")
	}
	p := newProject(t, `
[[stage]]
name = "stubborn"
run = "trap '' TERM; sleep 60 & echo $! > \"$MEDCAD_OUT/pid\"; wait"
outs = ["out"]
`)
	if took := p.cancelAfter(500 * time.Millisecond); took > stopGrace+2*time.Second {
		t.Errorf("Repro returned after %v, want within the grace period of %v", took, stopGrace)
	}
	p.waitGone(p.pid())
}

// TestReproKillsWhatAStageLeftRunning runs a stage that succeeds with a
// background process still running: it does not outlive the stage.
func TestReproKillsWhatAStageLeftRunning(t *testing.T) {
	p := newProject(t, `
[[stage]]
name = "bg"
run = "sleep 60 >/dev/null 2>&1 & echo $! > \"$MEDCAD_OUT/pid\""
outs = ["out"]
`)
	if got := p.repro(Options{}); got["bg"] != Ran {
		t.Fatalf("bg: %v", got["bg"])
	}
	p.waitGone(p.pid())
}

// cancelAfter runs a repro whose context ends after d, checks that it
// failed with the context's error and returns how long it took.
func (p *project) cancelAfter(d time.Duration) time.Duration {
	p.t.Helper()
	plan, err := NewPlan(p.cfg, ws{dir: p.dir})
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err = Repro(ctx, Options{Dir: p.dir, Config: p.cfg, Plan: plan, Store: p.store, Data: p.data, Version: "test", Jobs: 1})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		p.t.Errorf("Repro: %v, want %v", err, context.DeadlineExceeded)
	}
	return took
}

// pid is the process id a stage wrote to out/pid.
func (p *project) pid() int {
	p.t.Helper()
	var pid int
	if _, err := fmt.Sscan(p.read("out/pid"), &pid); err != nil || pid <= 0 {
		p.t.Fatalf("pid file: %v", err)
	}
	return pid
}

// waitGone fails the test when pid is still running 2 s from now, and
// kills it then.
func (p *project) waitGone(pid int) {
	p.t.Helper()
	for deadline := time.Now().Add(2 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			p.t.Fatalf("process %d outlived its stage", pid)
		}
	}
}

// alive reports whether pid is a running process; a zombie waiting for an
// init that has not reaped it yet counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	if runtime.GOOS != "linux" {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// TestReproFailsWhenLeftoversHoldOutput runs a stage that exits while a
// process it started keeps its output open: the stage fails after the
// grace period, saying so, and the process is gone.
func TestReproFailsWhenLeftoversHoldOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the stop grace period")
	}
	p := newProject(t, `
[[stage]]
name = "holder"
run = "sleep 60 & echo $! > \"$MEDCAD_OUT/pid\""
outs = ["out"]
`)
	plan, err := NewPlan(p.cfg, ws{dir: p.dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Repro(context.Background(), Options{Dir: p.dir, Config: p.cfg, Plan: plan, Store: p.store, Data: p.data, Version: "test", Jobs: 1})
	if err == nil || !strings.Contains(err.Error(), "kept its output open") {
		t.Errorf("Repro: %v, want the leftover named", err)
	}
	p.waitGone(p.pid())
}
