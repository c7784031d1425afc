package gitops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

const maxEnvLockBytes = 64 << 20

// Package is one locked or installed Python distribution.
type Package struct {
	Name    string `json:"name"` // normalised (PEP 503)
	Version string `json:"version"`
	Source  string `json:"source,omitempty"` // registry, editable, virtual, git, …
}

// EnvLock is a parsed environment lock file.
type EnvLock struct {
	File     string    `json:"file"`
	Digest   string    `json:"digest"`
	Packages []Package `json:"packages"`
}

// uvLock is the part of uv.lock that medcad reads; uv owns the format, so
// keys medcad does not know are ignored.
type uvLock struct {
	Version  int `toml:"version"`
	Packages []struct {
		Name    string         `toml:"name"`
		Version string         `toml:"version"`
		Source  map[string]any `toml:"source"`
	} `toml:"package"`
}

// ReadEnvLock reads and digests an environment lock file. uv.lock files are
// parsed into packages; any other lock file is digested only.
func ReadEnvLock(dir, rel string) (*EnvLock, error) {
	data, err := readBounded(filepath.Join(dir, rel), maxEnvLockBytes)
	if err != nil {
		return nil, fmt.Errorf("env lock: %w", err)
	}
	return ParseEnvLock(rel, data)
}

// ParseEnvLock digests an environment lock file's content (read from disk
// or from a git revision); uv.lock files are parsed into packages.
func ParseEnvLock(rel string, data []byte) (*EnvLock, error) {
	if len(data) > maxEnvLockBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", rel, maxEnvLockBytes)
	}
	sum := sha256.Sum256(data)
	l := &EnvLock{File: rel, Digest: "sha256:" + hex.EncodeToString(sum[:])}
	if filepath.Base(rel) != "uv.lock" {
		return l, nil
	}
	var u uvLock
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&u); err != nil {
		return nil, fmt.Errorf("%s: not a valid uv.lock: %s", rel, strings.TrimPrefix(err.Error(), "toml: "))
	}
	for _, p := range u.Packages {
		if p.Name == "" {
			return nil, fmt.Errorf("%s: a [[package]] has no name", rel)
		}
		l.Packages = append(l.Packages, Package{Name: NormalizePackage(p.Name), Version: p.Version, Source: sourceKind(p.Source)})
	}
	sort.Slice(l.Packages, func(i, j int) bool { return l.Packages[i].Name < l.Packages[j].Name })
	return l, nil
}

func sourceKind(src map[string]any) string {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, "+")
}

var pep503 = regexp.MustCompile(`[-_.]+`)

// NormalizePackage normalises a Python distribution name (PEP 503).
func NormalizePackage(name string) string {
	return pep503.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "-")
}

// installedScript prints the installed distributions as JSON, from their
// dist-info / egg-info metadata.
const installedScript = `import importlib.metadata as m, json, sys
d = {}
for dist in m.distributions():
    n = dist.metadata["Name"]
    if n:
        d[n] = dist.version
json.dump({"python": sys.version.split()[0], "packages": d}, sys.stdout)`

// Installed lists the distributions installed in a Python environment and
// its Python version.
func Installed(ctx context.Context, python string) (string, []Package, error) {
	out, err := exec.CommandContext(ctx, python, "-c", installedScript).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
			lines := strings.Split(strings.TrimSpace(string(ee.Stderr)), "\n")
			return "", nil, fmt.Errorf("%s: %s", python, lines[len(lines)-1])
		}
		return "", nil, fmt.Errorf("%s: %w", python, err)
	}
	var res struct {
		Python   string            `json:"python"`
		Packages map[string]string `json:"packages"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return "", nil, fmt.Errorf("%s: unexpected output: %w", python, err)
	}
	pkgs := make([]Package, 0, len(res.Packages))
	for n, v := range res.Packages {
		pkgs = append(pkgs, Package{Name: NormalizePackage(n), Version: v})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return res.Python, pkgs, nil
}

// Drift is one difference between a lock and an environment.
type Drift struct {
	Name      string `json:"name"`
	Locked    string `json:"locked,omitempty"`    // "" when not in the lock
	Installed string `json:"installed,omitempty"` // "" when not installed
}

func (d Drift) String() string {
	switch {
	case d.Installed == "":
		return fmt.Sprintf("missing   %s %s", d.Name, d.Locked)
	case d.Locked == "":
		return fmt.Sprintf("extra     %s %s", d.Name, d.Installed)
	}
	return fmt.Sprintf("changed   %s %s → %s", d.Name, d.Locked, d.Installed)
}

// Compare lists the drift between locked and installed packages. The
// project itself (an editable or virtual source) is not compared.
func Compare(locked, installed []Package) []Drift {
	inst := map[string]string{}
	for _, p := range installed {
		inst[p.Name] = p.Version
	}
	lk := map[string]bool{}
	var drift []Drift
	for _, p := range locked {
		lk[p.Name] = true
		if p.Source == "editable" || p.Source == "virtual" {
			continue
		}
		v, ok := inst[p.Name]
		switch {
		case !ok:
			drift = append(drift, Drift{Name: p.Name, Locked: p.Version})
		case v != p.Version:
			drift = append(drift, Drift{Name: p.Name, Locked: p.Version, Installed: v})
		}
	}
	for _, p := range installed {
		if !lk[p.Name] {
			drift = append(drift, Drift{Name: p.Name, Installed: p.Version})
		}
	}
	sort.Slice(drift, func(i, j int) bool { return drift[i].Name < drift[j].Name })
	return drift
}
