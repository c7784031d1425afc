//go:build unix && !linux

package procgroup

import (
	"errors"
	"syscall"
)

func dieWithParent(*syscall.SysProcAttr) {}

// SignalGroupsBelow is Linux only (it reads /proc).
func SignalGroupsBelow(int, syscall.Signal) ([]int, error) { return nil, errors.ErrUnsupported }
