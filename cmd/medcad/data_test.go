package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/medcad/medcad/gitops/cas/castest"
	"github.com/medcad/medcad/internal/testenv"
)

// project makes a medcad project with the given [remote] table.
func project(t *testing.T, bin, remote string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj")
	medcad(t, bin, "", nil, "init", dir)
	if remote != "" {
		cfg := filepath.Join(dir, "medcad.toml")
		data, _ := os.ReadFile(cfg)
		data = bytes.Replace(data, []byte("[remote]\n"), []byte("[remote]\n"+remote+"\n"), 1)
		if err := os.WriteFile(cfg, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// medcad runs the binary in dir and fails the test on error.
func medcad(t *testing.T, bin, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := medcadErr(bin, dir, env, args...)
	if err != nil {
		t.Fatalf("medcad %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func medcadErr(bin, dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// makeFiles writes n small files (and, with big, one 8 MiB file) under dir
// and returns their contents by slash path.
func makeFiles(t *testing.T, dir string, n int, big bool) map[string]string {
	return makeFilesSeed(t, dir, n, big, 7)
}

// makeFilesSeed is makeFiles with contents chosen by seed.
func makeFilesSeed(t *testing.T, dir string, n int, big bool, seed uint64) map[string]string {
	t.Helper()
	files := map[string]string{}
	r := rand.New(rand.NewPCG(uint64(n), seed))
	for i := range n {
		b := make([]byte, 100+r.IntN(4000))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		files[fmt.Sprintf("case-%02d/%04d.dcm", i%10, i)] = string(b)
	}
	if big {
		files["labels/big.nii"] = strings.Repeat(fmt.Sprintf("%016x", seed), 8<<20/16)
	}
	past := time.Now().Add(-time.Hour)
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(full, past, past)
	}
	return files
}

func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func s3Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + castest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + castest.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// TestDataS3RoundTrip pushes to versitygw (a real S3 server that checks
// signatures) and pulls into a second project.
func TestDataS3RoundTrip(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	srv := castest.Versitygw(t)
	_, bucket := srv.NewBucket(t)
	remote := fmt.Sprintf("url = \"s3://%s/team/store\"\nendpoint = %q\npath_style = true", bucket, srv.Endpoint)
	env := s3Env()

	a := project(t, bin, remote)
	files := makeFiles(t, filepath.Join(a, "data", "b1"), 300, true)
	medcad(t, bin, a, env, "data", "add", "data/b1", "--name", "b1")
	out := medcad(t, bin, a, env, "data", "push", "--jobs", "16")
	if !strings.Contains(out, "302 objects") { // 300 files, the big one, the manifest
		t.Errorf("push: %s", out)
	}
	if out := medcad(t, bin, a, env, "data", "status", "--remote"); !strings.Contains(out, "b1: up to date (301 files); pushed") {
		t.Errorf("status --remote: %s", out)
	}
	b := project(t, bin, remote)
	os.MkdirAll(filepath.Join(b, "data"), 0o755)
	ptr, _ := os.ReadFile(filepath.Join(a, "data", "b1.dataset.toml"))
	os.WriteFile(filepath.Join(b, "data", "b1.dataset.toml"), ptr, 0o644)
	medcad(t, bin, b, env, "data", "pull")
	if diff := cmp.Diff(files, readFiles(t, filepath.Join(b, "data", "b1"))); diff != "" {
		t.Errorf("pulled files differ (-want +got):\n%.2000s", diff)
	}
	// The objects really are on the server's disk, under the prefix.
	if _, err := os.Stat(filepath.Join(srv.Dir, bucket, "team", "store", "complete")); err != nil {
		t.Errorf("no complete marker on the server: %v", err)
	}
}

// faultProxy forwards to target and, on about rate of the requests,
// answers 500 or 503 or drops the connection. It counts requests and
// faults.
func faultProxy(t *testing.T, target string, rate float64) (string, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	var faults, requests atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if rand.Float64() < rate {
			faults.Add(1)
			switch rand.IntN(3) {
			case 0:
				http.Error(w, "<Error><Code>InternalError</Code></Error>", http.StatusInternalServerError)
			case 1:
				w.Header().Set("Retry-After", "0")
				http.Error(w, "<Error><Code>SlowDown</Code></Error>", http.StatusServiceUnavailable)
			default:
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						c.Close()
						return
					}
				}
			}
			return
		}
		rp.ServeHTTP(w, r)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String(), &faults, &requests
}

// TestDataFaults pushes and pulls through a proxy that fails ~10% of the
// requests: both complete and the data arrives intact.
func TestDataFaults(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	srv := castest.Versitygw(t)
	_, bucket := srv.NewBucket(t)
	proxy, faults, _ := faultProxy(t, srv.Endpoint, 0.10)
	remote := fmt.Sprintf("url = \"s3://%s/p\"\nendpoint = %q\npath_style = true", bucket, proxy)
	env := s3Env()
	a := project(t, bin, remote)
	files := makeFiles(t, filepath.Join(a, "data", "b1"), 400, false)
	medcad(t, bin, a, env, "data", "add", "data/b1", "--name", "b1")
	medcad(t, bin, a, env, "data", "push")
	b := project(t, bin, remote)
	os.MkdirAll(filepath.Join(b, "data"), 0o755)
	ptr, _ := os.ReadFile(filepath.Join(a, "data", "b1.dataset.toml"))
	os.WriteFile(filepath.Join(b, "data", "b1.dataset.toml"), ptr, 0o644)
	medcad(t, bin, b, env, "data", "pull")
	if diff := cmp.Diff(files, readFiles(t, filepath.Join(b, "data", "b1"))); diff != "" {
		t.Errorf("pulled files differ (-want +got):\n%.2000s", diff)
	}
	out := medcad(t, bin, b, env, "data", "verify", "--remote")
	if !strings.Contains(out, "0 corrupt") {
		t.Errorf("verify: %s", out)
	}
	if faults.Load() < 20 {
		t.Errorf("only %d faults injected; the test proves little", faults.Load())
	}
	t.Logf("%d faults injected", faults.Load())
}

// TestDataStatusRemoteOneRequest: whether a dataset is fully pushed costs
// one request, whatever its size.
func TestDataStatusRemoteOneRequest(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	srv := castest.Versitygw(t)
	_, bucket := srv.NewBucket(t)
	proxy, _, requests := faultProxy(t, srv.Endpoint, 0)
	remote := fmt.Sprintf("url = \"s3://%s/p\"\nendpoint = %q\npath_style = true", bucket, proxy)
	env := s3Env()
	a := project(t, bin, remote)
	makeFiles(t, filepath.Join(a, "data", "b1"), 500, false)
	medcad(t, bin, a, env, "data", "add", "data/b1", "--name", "b1")
	medcad(t, bin, a, env, "data", "push")
	before := requests.Load()
	out := medcad(t, bin, a, env, "data", "status", "--remote")
	if n := requests.Load() - before; n != 1 || !strings.Contains(out, "; pushed") {
		t.Errorf("status --remote of a 500-file dataset made %d requests (want 1): %s", n, out)
	}
	before = requests.Load()
	medcad(t, bin, a, env, "data", "push")
	if n := requests.Load() - before; n != 1 {
		t.Errorf("push of a complete dataset made %d requests, want 1", n)
	}
}

// TestDataDiskFull: when writes fail, add fails with a clear error,
// records nothing, leaves no bad object and does not touch the source
// files; with room again, it works. Two ways: a file size limit, and
// (as root) a project on a small file system that fills up.
func TestDataDiskFull(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	t.Run("size limit", func(t *testing.T) {
		prlimit := "/usr/bin/prlimit"
		if _, err := os.Stat(prlimit); err != nil {
			t.Skip("prlimit (util-linux) not found")
		}
		a := project(t, bin, "")
		src := filepath.Join(t.TempDir(), "in")
		files := makeFiles(t, src, 50, true) // the 8 MiB file cannot be written
		out, err := medcadErr(prlimit, a, nil, "--fsize=4000000", "--", bin, "data", "add", src, "--name", "full")
		checkFailedAdd(t, bin, a, src, files, out, err, "file too large")
	})
	t.Run("full file system", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("mounting a file system takes root")
		}
		disk := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", disk).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small file system: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", disk).Run() })
		a := filepath.Join(disk, "proj")
		medcad(t, bin, "", nil, "init", a)
		src := filepath.Join(t.TempDir(), "in")
		files := makeFiles(t, src, 50, true) // 8 MiB do not fit in 3
		out, err := medcadErr(bin, a, nil, "data", "add", src, "--name", "full")
		if out, err := exec.Command("mount", "-o", "remount,size=64m", disk).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v: %s", err, out)
		}
		checkFailedAdd(t, bin, a, src, files, out, err, "no space left on device")
	})
}

// checkFailedAdd checks what a `data add` of src into project a that
// failed for want of room (out, err) left behind, then adds again.
func checkFailedAdd(t *testing.T, bin, a, src string, files map[string]string, out string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("add without room succeeded: %s", out)
	}
	if !strings.Contains(out, want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("error is not one line saying %q: %s", want, out)
	}
	if _, err := os.Stat(filepath.Join(a, "data", "full.dataset.toml")); err == nil {
		t.Error("a pointer was written")
	}
	checkObjects(t, filepath.Join(a, ".medcad", "cache"))
	if diff := cmp.Diff(files, readFiles(t, src)); diff != "" {
		t.Error("source files changed")
	}
	if out := medcad(t, bin, a, nil, "data", "verify"); !strings.Contains(out, " 0 corrupt") {
		t.Errorf("verify: %s", out)
	}
	medcad(t, bin, a, nil, "data", "add", src, "--name", "full") // with room it works
	if diff := cmp.Diff(files, readFiles(t, filepath.Join(a, "data", "full"))); diff != "" {
		t.Error("the files checked out after the add differ from the source")
	}
}

// TestDataRemoteUnreachable: a clear error after retries, cache intact.
func TestDataRemoteUnreachable(t *testing.T) {
	t.Parallel()
	bin := medcadBinary(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	a := project(t, bin, fmt.Sprintf("url = \"s3://bucket/p\"\nendpoint = \"http://%s\"\npath_style = true", addr))
	makeFiles(t, filepath.Join(a, "data", "b1"), 20, false)
	medcad(t, bin, a, s3Env(), "data", "add", "data/b1", "--name", "b1")
	start := time.Now()
	out, err := medcadErr(bin, a, s3Env(), "data", "push")
	if err == nil {
		t.Fatal("push to an unreachable remote succeeded")
	}
	if !strings.Contains(out, "s3://bucket/p") || !strings.Contains(out, "after 6 attempts") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("error is not one clear line naming the remote and the retries:\n%s", out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("giving up took %v", d)
	}
	if out := medcad(t, bin, a, nil, "data", "verify"); !strings.Contains(out, "0 corrupt") {
		t.Errorf("verify after a failed push: %s", out)
	}
	// repro --push finds out before any stage runs, in one line, exit 1.
	out, err = medcadErr(bin, a, s3Env(), "repro", "--push")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.HasPrefix(out, "medcad: repro --push: remote s3://bucket/p: ") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("repro --push to an unreachable remote: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(a, "medcad.lock")); !os.IsNotExist(err) {
		t.Errorf("a stage ran: medcad.lock %v", err)
	}
}

// killAt runs medcad and kills it with SIGKILL after d (or lets it
// finish); it reports whether it killed it.
func killAt(t *testing.T, bin, dir string, d time.Duration, args ...string) bool {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return true
	}
}

// checkObjects re-hashes every object under a store or remote folder.
func checkObjects(t *testing.T, root string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(root, "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		name := filepath.Base(filepath.Dir(p)) + filepath.Base(p)
		if hex.EncodeToString(sum[:]) != name {
			t.Errorf("%s: wrong content under a good name", p)
		}
		n++
		return nil
	})
	return n
}

// crashTrials is how many runs of each command the crash tests kill.
const crashTrials = 20

// TestCrashSafety kills data add, data push and data pull with SIGKILL at
// random moments (crashTrials each); afterwards no object is corrupt and a
// rerun completes. The three run side by side, each on its own project.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	bin := medcadBinary(t)
	// seeded is a project with a folder remote and the dataset t0 (200
	// small files and one of 8 MiB) added.
	seeded := func(t *testing.T) (a, remoteDir string) {
		remoteDir = filepath.Join(t.TempDir(), "remote")
		a = project(t, bin, fmt.Sprintf("url = \"file://%s\"", remoteDir))
		src := filepath.Join(t.TempDir(), "in")
		makeFilesSeed(t, src, 200, true, 0)
		medcad(t, bin, a, nil, "data", "add", src, "--name", "t0")
		return a, remoteDir
	}
	t.Run("add", func(t *testing.T) {
		t.Parallel()
		a := project(t, bin, "")
		crashAdds(t, bin, a, filepath.Join(t.TempDir(), "in"))
	})
	t.Run("push", func(t *testing.T) {
		t.Parallel()
		a, remoteDir := seeded(t)
		// Measure, then kill at random moments against a fresh remote.
		start := time.Now()
		medcad(t, bin, a, nil, "data", "push")
		full := time.Since(start)
		killed := 0
		for i := range crashTrials {
			os.RemoveAll(remoteDir)
			if killAt(t, bin, a, time.Duration(rand.Int64N(int64(full)+1)), "data", "push") {
				killed++
			}
			checkObjects(t, remoteDir)
			// A complete marker is never written before every object.
			ptrOut := medcad(t, bin, a, nil, "data", "status", "--remote", "t0")
			if strings.Contains(ptrOut, "; pushed") {
				if out, err := medcadErr(bin, a, nil, "data", "verify", "--remote"); err != nil {
					t.Fatalf("push trial %d: marked complete but: %s", i, out)
				}
			}
			medcad(t, bin, a, nil, "data", "push")
			if out := medcad(t, bin, a, nil, "data", "verify", "--remote"); !strings.Contains(out, " 0 corrupt") || strings.Contains(out, "not on remote") {
				t.Fatalf("push trial %d: after rerun: %s", i, out)
			}
			checkObjects(t, remoteDir)
		}
		t.Logf("push: %d of %d runs killed (an uninterrupted run takes %v)", killed, crashTrials, full)
	})
	t.Run("pull", func(t *testing.T) {
		t.Parallel()
		a, remoteDir := seeded(t)
		medcad(t, bin, a, nil, "data", "push")
		// pull (fetch + checkout) into a fresh clone, killed at random moments.
		files := readFiles(t, filepath.Join(a, "data", "t0"))
		pointer, err := os.ReadFile(filepath.Join(a, "data", "t0.dataset.toml"))
		if err != nil {
			t.Fatal(err)
		}
		clone := func() string {
			b := project(t, bin, fmt.Sprintf("url = \"file://%s\"", remoteDir))
			if err := os.WriteFile(filepath.Join(b, "data", "t0.dataset.toml"), pointer, 0o644); err != nil {
				t.Fatal(err)
			}
			return b
		}
		b := clone()
		start := time.Now()
		medcad(t, bin, b, nil, "data", "pull")
		full := time.Since(start)
		killed := 0
		for i := range crashTrials {
			b := clone()
			if killAt(t, bin, b, time.Duration(rand.Int64N(int64(full)+1)), "data", "pull") {
				killed++
			}
			if out := medcad(t, bin, b, nil, "data", "verify"); !strings.Contains(out, " 0 corrupt") {
				t.Fatalf("pull trial %d: verify after kill: %s", i, out)
			}
			checkObjects(t, filepath.Join(b, ".medcad", "cache"))
			medcad(t, bin, b, nil, "data", "pull")
			if diff := cmp.Diff(files, readFiles(t, filepath.Join(b, "data", "t0"))); diff != "" {
				t.Fatalf("pull trial %d: files after rerun differ", i)
			}
		}
		t.Logf("pull: %d of %d runs killed (an uninterrupted run takes %v)", killed, crashTrials, full)
	})
}

// TestCrashSafetyClone: the same for adds that clone files into the cache
// (a project and its files on a file system with reflinks).
func TestCrashSafetyClone(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("slow")
	}
	bin := medcadBinary(t)
	disk := testenv.ReflinkDir(t)
	a := filepath.Join(disk, "proj")
	medcad(t, bin, "", nil, "init", a)
	crashAdds(t, bin, a, filepath.Join(disk, "in"))
}

// crashAdds kills `data add` of new files in src (200 small ones and one
// of 8 MiB) into project a at random moments, crashTrials times; after each,
// `data verify` finds no corrupt object, none is misnamed, and a rerun
// completes with the right files.
func crashAdds(t *testing.T, bin, a, src string) {
	t.Helper()
	makeFilesSeed(t, src, 200, true, 1000)
	// How long does an uninterrupted run take?
	start := time.Now()
	medcad(t, bin, a, nil, "data", "add", src, "--name", "probe")
	full := time.Since(start)
	os.RemoveAll(filepath.Join(a, "data"))
	os.RemoveAll(filepath.Join(a, ".medcad"))
	os.MkdirAll(filepath.Join(a, "data"), 0o755)

	killed := 0
	for i := range crashTrials {
		name := fmt.Sprintf("t%d", i)
		os.RemoveAll(src)
		files := makeFilesSeed(t, src, 200, true, uint64(i)) // new content: nothing deduplicates
		if killAt(t, bin, a, time.Duration(rand.Int64N(int64(full)+1)), "data", "add", src, "--name", name) {
			killed++
		}
		if out := medcad(t, bin, a, nil, "data", "verify"); !strings.Contains(out, " 0 corrupt") {
			t.Fatalf("trial %d: verify after kill: %s", i, out)
		}
		checkObjects(t, filepath.Join(a, ".medcad", "cache"))
		// The rerun completes: without a pointer, the same add again
		// (over what the interrupted one checked out); with one, in place.
		work := filepath.Join(a, "data", name)
		if _, err := os.Stat(filepath.Join(a, "data", name+".dataset.toml")); err != nil {
			start := time.Now()
			medcad(t, bin, a, nil, "data", "add", src, "--name", name)
			full = time.Since(start) // aim the next kill within a whole run
		} else {
			medcad(t, bin, a, nil, "data", "add", "data/"+name, "--name", name)
		}
		if diff := cmp.Diff(files, readFiles(t, work)); diff != "" {
			t.Fatalf("trial %d: files after rerun differ", i)
		}
		if out := medcad(t, bin, a, nil, "data", "status", name); !strings.Contains(out, "up to date") {
			t.Fatalf("trial %d: status: %s", i, out)
		}
		if i > 0 { // keep the project small: only t0 stays
			os.RemoveAll(work)
			os.Remove(filepath.Join(a, "data", name+".dataset.toml"))
			medcad(t, bin, a, nil, "gc")
		}
	}

	t.Logf("add: %d of %d runs killed (an uninterrupted run takes %v)", killed, crashTrials, full)
}
