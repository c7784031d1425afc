//go:build unix

package stages

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// inGroup starts cmd in a process group of its own, so that stopping the
// stage stops everything it started: cancelling the context sends SIGTERM
// to the whole group and SIGKILL grace later; Wait gives up on the
// group's output grace after the command exits or is cancelled.
func inGroup(cmd *exec.Cmd, grace time.Duration) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		pid := cmd.Process.Pid
		time.AfterFunc(grace, func() { _ = signalGroup(pid, syscall.SIGKILL) })
		return signalGroup(pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = grace
}

// killGroup kills what is left of cmd's process group once Wait returned:
// nothing a stage started outlives it.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
}

// signalGroup signals the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
