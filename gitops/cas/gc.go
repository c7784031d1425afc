package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Reachable expands roots to every object they keep alive: a root that is
// a manifest keeps its files. Manifests missing from the cache are read
// from b when b is not nil; roots found nowhere are kept (they cost
// nothing) but not expanded.
func Reachable(ctx context.Context, s *Store, b Backend, roots []ID) (map[ID]bool, error) {
	keep := make(map[ID]bool, len(roots))
	for _, id := range roots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if keep[id] {
			continue
		}
		keep[id] = true
		data, err := readManifestBytes(ctx, s, b, id)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		m, err := ParseManifest(data)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", id.Short(), err)
		}
		for _, e := range m.Entries {
			keep[e.ID] = true
		}
	}
	return keep, nil
}

// readManifestBytes returns the object when it is a manifest, nil when it
// is not or cannot be found.
func readManifestBytes(ctx context.Context, s *Store, b Backend, id ID) ([]byte, error) {
	var r io.ReadCloser
	f, err := s.Open(id)
	switch {
	case err == nil:
		r = f
	case errors.Is(err, ErrNotFound) && b != nil:
		r, err = b.Get(ctx, objectKey(id))
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	case errors.Is(err, ErrNotFound):
		return nil, nil
	default:
		return nil, err
	}
	defer r.Close()
	head := make([]byte, len(manifestHeader))
	if _, err := io.ReadFull(r, head); err != nil || !IsManifest(head) {
		return nil, nil
	}
	rest, err := io.ReadAll(io.LimitReader(r, MaxManifestBytes))
	if err != nil {
		return nil, err
	}
	data := append(head, rest...)
	if Sum(data) != id {
		return nil, fmt.Errorf("manifest %s: %w", id.Short(), ErrCorrupt)
	}
	return data, nil
}

// GCResult counts what garbage collection removed (or would remove).
type GCResult struct {
	Kept         int   `json:"kept"`
	Removed      int   `json:"removed"`
	RemovedBytes int64 `json:"removed_bytes"`
}

// CollectGarbage removes cache objects not in keep (with dryRun, only
// counts them) and stale temporary files.
func CollectGarbage(ctx context.Context, s *Store, keep map[ID]bool, dryRun bool) (*GCResult, error) {
	res := &GCResult{}
	err := s.Each(func(id ID, size int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if keep[id] {
			res.Kept++
			return nil
		}
		if !dryRun {
			if err := s.Remove(id); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		res.Removed++
		res.RemovedBytes += size
		return nil
	})
	if err == nil && !dryRun {
		err = s.CleanTemp()
	}
	return res, err
}

// CollectRemoteGarbage removes objects of b not in keep, and the complete
// markers of manifests not in keep (with dryRun, only counts them).
func CollectRemoteGarbage(ctx context.Context, b Backend, keep map[ID]bool, dryRun bool) (*GCResult, error) {
	res := &GCResult{}
	var doomed []string
	var sizes []int64
	err := b.List(ctx, "objects/", func(key string, size int64) error {
		id, ok := parseObjectKey(key)
		if !ok {
			return nil // not ours
		}
		if keep[id] {
			res.Kept++
			return nil
		}
		doomed = append(doomed, key)
		sizes = append(sizes, size)
		return nil
	})
	if err != nil {
		return res, err
	}
	err = b.List(ctx, "complete/", func(key string, size int64) error {
		id, err := ParseID(IDPrefix + strings.TrimPrefix(key, "complete/"))
		if err == nil && !keep[id] {
			doomed = append(doomed, key)
			sizes = append(sizes, 0)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	// Markers go first, so an interrupted gc never leaves a marker that
	// claims a manifest complete whose objects are gone.
	order := make([]int, 0, len(doomed))
	for i, k := range doomed {
		if strings.HasPrefix(k, "complete/") {
			order = append(order, i)
		}
	}
	for i, k := range doomed {
		if !strings.HasPrefix(k, "complete/") {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if !dryRun {
			if err := b.Delete(ctx, doomed[i]); err != nil && !errors.Is(err, ErrNotFound) {
				return res, err
			}
		}
		if strings.HasPrefix(doomed[i], "objects/") {
			res.Removed++
			res.RemovedBytes += sizes[i]
		}
	}
	return res, nil
}
