package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lilims/lilims/pipeline"
)

// sourceFile, beside a built plugin, holds the package directory it was built from.
const sourceFile = "source"

// DefaultCacheDir is where plugins built from Go packages are kept: "plugins" under the build
// cache (pipeline.DefaultCacheDir), so that one directory, one setting ($LILIMS_CACHE_DIR)
// and one command (`lilims cache`) cover everything lilims caches.
func DefaultCacheDir() (string, error) {
	d, err := pipeline.DefaultCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for built plugins: %w", err)
	}
	return CacheDirIn(d), nil
}

// CacheDirIn is the built-plugin directory of the build cache at dir.
func CacheDirIn(dir string) string { return filepath.Join(dir, "plugins") }

// BuiltPlugin is a plugin binary built from a Go package.
type BuiltPlugin struct {
	Path   string    `json:"path"`
	Source string    `json:"source"` // the package directory ("" when not recorded)
	Size   int64     `json:"size"`
	Used   time.Time `json:"used"` // built or last started
}

// BuiltPlugins lists the plugins built into dir (a DefaultCacheDir), most recently used first.
func BuiltPlugins(dir string) ([]BuiltPlugin, error) {
	keys, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []BuiltPlugin
	for _, k := range keys {
		if !k.IsDir() || strings.HasPrefix(k.Name(), ".") {
			continue
		}
		kdir := filepath.Join(dir, k.Name())
		files, err := os.ReadDir(kdir)
		if err != nil {
			continue
		}
		for _, f := range files {
			if f.Name() == sourceFile || strings.HasPrefix(f.Name(), ".") || !f.Type().IsRegular() {
				continue
			}
			b := BuiltPlugin{Path: filepath.Join(kdir, f.Name())}
			if fi, err := f.Info(); err == nil {
				b.Size = fi.Size()
			}
			if fi, err := os.Stat(kdir); err == nil {
				b.Used = fi.ModTime()
			}
			if src, err := os.ReadFile(filepath.Join(kdir, sourceFile)); err == nil {
				b.Source = strings.TrimSpace(string(src))
			}
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Used.After(out[j].Used) })
	return out, nil
}

// PruneBuilt removes the built plugins of dir not used since before cutoff (every one when
// cutoff is the zero time, as `cache prune --all` asks), with their build leftovers; a
// pipeline that needs one again rebuilds it. It returns how many binaries and bytes went.
func PruneBuilt(dir string, cutoff time.Time) (n int, bytes int64, err error) {
	keys, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	for _, k := range keys {
		kdir := filepath.Join(dir, k.Name())
		fi, err := os.Stat(kdir)
		if err != nil || !fi.IsDir() || (!cutoff.IsZero() && !fi.ModTime().Before(cutoff)) {
			continue
		}
		files, _ := os.ReadDir(kdir)
		for _, f := range files {
			if info, err := f.Info(); err == nil && f.Name() != sourceFile && !strings.HasPrefix(f.Name(), ".") {
				n++
				bytes += info.Size()
			}
		}
		if err := os.RemoveAll(kdir); err != nil {
			return n, bytes, err
		}
	}
	return n, bytes, nil
}
