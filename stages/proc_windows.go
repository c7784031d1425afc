//go:build windows

package stages

import (
	"os/exec"
	"syscall"
	"time"
)

// inGroup starts cmd in a process group of its own; cancelling the
// context kills the command (exec's default), and Wait gives up on its
// output grace after the command exits or is cancelled. Without a job
// object the processes the command started are not tracked, so the
// returned end does nothing.
func inGroup(cmd *exec.Cmd, grace time.Duration) (end func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
	cmd.WaitDelay = grace
	return func() {}
}
