package stages

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// EnvFacts describes the machine a run executes on: Go and Python
// versions, OS, CPU, and GPU with driver when nvidia-smi answers. Facts
// that cannot be read are left out, never guessed.
func EnvFacts(ctx context.Context, python string) map[string]string {
	f := map[string]string{
		"go":   runtime.Version(),
		"os":   runtime.GOOS + "/" + runtime.GOARCH,
		"cpus": strconv.Itoa(runtime.NumCPU()),
		"cpu":  cpuModel(),
	}
	if k := kernel(); k != "" {
		f["kernel"] = k
	}
	if python != "" {
		if v := firstLine(ctx, python, "--version"); v != "" {
			f["python"] = strings.TrimPrefix(v, "Python ")
		}
	}
	if g := firstLine(ctx, "nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"); g != "" {
		name, driver, _ := strings.Cut(g, ",")
		f["gpu"] = strings.TrimSpace(name)
		f["gpu_driver"] = strings.TrimSpace(driver)
	}
	for k, v := range f {
		if v == "" {
			delete(f, k)
		}
	}
	return f
}

func cpuModel() string {
	fh, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// firstLine runs a program briefly and returns the first line it printed.
func firstLine(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
