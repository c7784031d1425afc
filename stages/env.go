package stages

import "strings"

// stageEnv is the environment of a stage process, in os.Environ form: from
// parent (medcad's environment) only the base variables (PATH, HOME,
// USER, LOGNAME, LANG, LC_*, TZ, TMPDIR; on Windows also SystemRoot,
// ComSpec, PATHEXT, TEMP, TMP, USERPROFILE) and the names in pass, then
// contract, the MEDCAD_* variables the runner sets for the stage, which
// win over parent. No other MEDCAD_ variable of parent is passed, even
// when named in pass: medcad's own settings, such as the signing key or
// the remote, never reach a stage. Tokens and cloud credentials reach it
// only when pass names them. goos is runtime.GOOS; on Windows names
// match case-insensitively.
func stageEnv(goos string, parent, pass, contract []string) []string {
	windows := goos == "windows"
	norm := func(n string) string {
		if windows {
			return strings.ToUpper(n)
		}
		return n
	}
	names := []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"}
	if windows {
		names = append(names, "SystemRoot", "ComSpec", "PATHEXT", "TEMP", "TMP", "USERPROFILE")
	}
	allowed := map[string]bool{}
	for _, n := range append(names, pass...) {
		allowed[norm(n)] = true
	}
	set := map[string]bool{}
	for _, kv := range contract {
		set[norm(envKey(kv))] = true
	}
	env := make([]string, 0, len(names)+len(pass)+len(contract))
	for _, kv := range parent {
		n := norm(envKey(kv))
		if n == "" || set[n] || strings.HasPrefix(strings.ToUpper(n), "MEDCAD_") {
			continue
		}
		if allowed[n] || strings.HasPrefix(n, "LC_") {
			env = append(env, kv)
		}
	}
	return append(env, contract...)
}

// envKey is the name of a NAME=value entry; "" when it has none (such as
// Windows' hidden per-drive "=C:=C:\dir" entries).
func envKey(kv string) string {
	n, _, _ := strings.Cut(kv, "=")
	return n
}
