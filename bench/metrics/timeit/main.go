// Command timeit runs a command and appends "WALL_S PEAK_RSS_KB CPU_S" (CPU
// = user + system) to a file, like GNU time's "%e %M" but available
// wherever Go is. Usage: timeit FILE CMD [ARG...]; the command's stdout and
// stderr pass through and its exit status is returned.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: timeit FILE CMD [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start).Seconds()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "timeit:", err)
		os.Exit(1)
	}
	line := fmt.Sprintf("%.3f %d %.3f\n", wall, peakRSSKB(cmd.ProcessState), (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
	f, ferr := os.OpenFile(os.Args[1], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if ferr == nil {
		_, ferr = f.WriteString(line)
		if cerr := f.Close(); ferr == nil {
			ferr = cerr
		}
	}
	if ferr != nil {
		fmt.Fprintln(os.Stderr, "timeit:", ferr)
		os.Exit(1)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
