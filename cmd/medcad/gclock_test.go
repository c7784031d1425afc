package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medcad/medcad/gitops/cas"
)

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDataGCWaitsForStoreLock: medcad gc, another process, waits (and says
// so on stderr) while an operation holds the store's lock, and runs once
// it is released; a holder killed with SIGKILL leaves no lock behind.
func TestDataGCWaitsForStoreLock(t *testing.T) {
	bin := medcadBinary(t)
	dir := project(t, bin, "")
	s, err := cas.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "gc")
	cmd.Dir = dir
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("gc ran while the store was locked (%v):\n%s", err, out.String())
	case <-time.After(time.Second):
	}
	if want := "waiting for " + cas.LockFile; !strings.Contains(out.String(), want) {
		t.Errorf("gc waiting for the lock says %q, want %q", out.String(), want)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gc after the lock was released: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gc still waiting 30 s after the lock was released")
	}

	src := filepath.Join(t.TempDir(), "src")
	makeFiles(t, src, 2000, false)
	if !killAt(t, bin, dir, 300*time.Millisecond, "data", "add", src, "--name", "killed") {
		t.Log("the add finished before it could be killed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gc := exec.CommandContext(ctx, bin, "gc")
	gc.Dir = dir
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("gc after an add was killed: %v\n%s", err, out)
	}
}
