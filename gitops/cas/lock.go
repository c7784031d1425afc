package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// LockFile is the store's lock, relative to the project folder.
const LockFile = stateDir + "/lock"

// lockPoll is how often a waiting Lock tries again.
const lockPoll = 20 * time.Millisecond

// errLocked is what tryLock returns when another holder has the lock.
var errLocked = errors.New("lock held")

// Lock takes the store's lock, .medcad/lock, waiting for it while ctx
// allows. Every operation that writes objects or relies on objects
// already in the cache (add, pull, checkout, push, verify, a pipeline
// run) holds it shared; garbage collection holds it exclusive, so it
// never removes an object that an operation in progress has stored or
// found but no pointer names yet. The lock belongs to the open file, so
// two Stores of one process exclude each other as two processes do, and
// the system drops it when its holder exits: a crashed command never
// leaves the store locked. unlock releases it.
//
// The lock is flock(2) on Unix and LockFileEx on Windows; on other
// systems Lock takes nothing.
func (s *Store) Lock(ctx context.Context, exclusive bool) (unlock func() error, err error) {
	f, err := s.openLock()
	if err != nil {
		return nil, err
	}
	for {
		err := tryLock(f, exclusive)
		if err == nil {
			return releaser(f), nil
		}
		if !errors.Is(err, errLocked) {
			f.Close()
			return nil, fmt.Errorf("store lock: %w", err)
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another medcad command is using the store): %w", f.Name(), context.Cause(ctx))
		case <-t.C:
		}
	}
}

// TryLock is Lock without waiting: ok is false, and unlock nil, when
// another holder has the lock.
func (s *Store) TryLock(exclusive bool) (unlock func() error, ok bool, err error) {
	f, err := s.openLock()
	if err != nil {
		return nil, false, err
	}
	err = tryLock(f, exclusive)
	if err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("store lock: %w", err)
	}
	return releaser(f), true, nil
}

// openLock opens (creating when needed) the lock file.
func (s *Store) openLock() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.root, filepath.FromSlash(LockFile)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store lock: %w", err)
	}
	return f, nil
}

// releaser unlocks and closes the locked file f.
func releaser(f *os.File) func() error {
	return func() error {
		err := unlockFile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("store unlock: %w", err)
		}
		return nil
	}
}
