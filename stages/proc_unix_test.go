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
	plan, err := NewPlan(p.cfg, ws{dir: p.dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Repro(ctx, Options{Dir: p.dir, Config: p.cfg, Plan: plan, Store: p.store, Data: p.data, Version: "test", Jobs: 1})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Repro returned after %v, want within 3s", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Repro: %v, want %v", err, context.DeadlineExceeded)
	}
	var pid int
	if _, err := fmt.Sscan(p.read("out/pid"), &pid); err != nil || pid <= 0 {
		t.Fatalf("pid file: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived the cancelled stage", pid)
		}
	}
}

// alive reports whether pid is a running process; a zombie waiting for an
// init that does not reap counts as gone.
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
	var pid int
	if _, err := fmt.Sscan(p.read("out/pid"), &pid); err != nil || pid <= 0 {
		t.Fatalf("pid file: %v", err)
	}
	for deadline := time.Now().Add(2 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background process %d outlived its stage", pid)
		}
	}
}
