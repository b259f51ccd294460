package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// keyLock is a held lock on one cache key.
type keyLock struct{ f *os.File }

func (l keyLock) unlock() {
	flockRelease(l.f)
	l.f.Close()
}

func (c *Cache) openLock(key string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.dir, "locks", key+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return f, nil
}

// lock takes the key's lock, shared or exclusive, waiting (by polling, so that ctx can cancel
// the wait) while another run holds it.
func (c *Cache) lock(ctx context.Context, key string, exclusive bool) (keyLock, error) {
	f, err := c.openLock(key)
	if err != nil {
		return keyLock{}, err
	}
	wait := 2 * time.Millisecond
	for {
		ok, err := flockTry(f, exclusive)
		if err != nil {
			f.Close()
			return keyLock{}, fmt.Errorf("cache: lock %s: %w", key[:12], err)
		}
		if ok {
			return keyLock{f}, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return keyLock{}, ctx.Err()
		case <-time.After(wait):
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}

// tryLock takes the key exclusively if no one holds it.
func (c *Cache) tryLock(key string) (keyLock, bool, error) {
	f, err := c.openLock(key)
	if err != nil {
		return keyLock{}, false, err
	}
	ok, err := flockTry(f, true)
	if err != nil || !ok {
		f.Close()
		return keyLock{}, false, err
	}
	return keyLock{f}, true, nil
}
