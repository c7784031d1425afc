//go:build unix

package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Set makes cmd start in a process group of its own. Cancelling the
// command's context sends SIGTERM to the whole group; Wait then gives the
// group grace to close the command's output before it kills the command.
// The returned end, called after Wait, SIGKILLs whatever is left of the
// group.
func Set(cmd *exec.Cmd, grace time.Duration) (end func()) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	dieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error { return Signal(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	return func() {
		if cmd.Process != nil {
			_ = Signal(cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

// Signal signals the process group led by pid; os.ErrProcessDone when
// the group is empty.
func Signal(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// Alive reports whether process group pgid still has a member.
func Alive(pgid int) bool { return Signal(pgid, 0) != os.ErrProcessDone }
