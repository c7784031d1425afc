//go:build windows

package runner

import (
	"errors"
	"os/exec"
)

// runAs is not available on Windows: the agent runs on Linux instances.
func runAs(*exec.Cmd, string) (string, error) {
	return "", errors.New("the runner agent runs on Linux")
}

// chownTree is not available on Windows: the agent runs on Linux instances.
func chownTree(string, string) error { return errors.New("the runner agent runs on Linux") }
