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
// stage stops everything it started. Cancelling the context sends SIGTERM
// to the whole group; Wait then gives the group grace to close the
// command's output before it kills the command. The returned end, called
// after Wait, SIGKILLs whatever is left of the group.
func inGroup(cmd *exec.Cmd, grace time.Duration) (end func()) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	return func() {
		if cmd.Process != nil {
			_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

// signalGroup signals the process group led by pid; os.ErrProcessDone
// when the group is empty.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
