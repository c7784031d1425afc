//go:build windows

package procgroup

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// Set starts cmd in a process group of its own; cancelling the context
// kills the command (exec's default), and Wait gives up on its output
// grace after the command exits or is cancelled. Without a job object the
// processes the command started are not tracked, so the returned end does
// nothing.
func Set(cmd *exec.Cmd, grace time.Duration) (end func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
	cmd.WaitDelay = grace
	return func() {}
}

// SignalGroupsBelow is Linux only (it reads /proc).
func SignalGroupsBelow(int, syscall.Signal) ([]int, error) { return nil, errors.ErrUnsupported }

// Alive is Linux and Unix only; on Windows no group is tracked.
func Alive(int) bool { return false }
