package coreml

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Compiled models are kept in the lilims cache at a path fixed by the package's digest:
//
//	CACHE/coreml/ab/abcdef…/NAME.mlmodelc
//
// Core ML keeps the device-specialised form of a compiled model (what the ANE compiler
// makes of it on first load) in a cache of its own keyed by the model's path, so a model
// loaded from the same path again skips that work; one compiled into a fresh temporary
// directory on every run never hits it.

// compiledCacheVersion changes when the layout of a cache entry does, so that old entries
// are never read as new ones.
const compiledCacheVersion = "1"

// CompiledCacheDir is the cache entry of the package with the given digest under cacheDir
// (the lilims cache directory).
func CompiledCacheDir(cacheDir, digest string) string {
	return filepath.Join(cacheDir, "coreml", digest[:2], digest)
}

// PackageDigest is the SHA-256 of a package tree: every regular file's path relative to
// pkg and its contents, in lexical order of path, after the cache layout version. Reading
// the weights costs about a second per GB, far less than compiling them.
func PackageDigest(pkg string) (string, error) {
	h := sha256.New()
	io.WriteString(h, "lilims.coreml.compiled/"+compiledCacheVersion+"\x00")
	var files []string
	err := filepath.WalkDir(pkg, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("coreml: digest of %s: %w", pkg, err)
	}
	slices.Sort(files)
	for _, p := range files {
		rel, _ := filepath.Rel(pkg, p)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("coreml: digest of %s: %w", pkg, err)
		}
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("coreml: digest of %s: %w", pkg, err)
		}
		fmt.Fprintf(h, "\x00%d\x00", n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cachedModel returns the compiled model of pkg from the cache entry under cacheDir,
// making the entry when there is none: from seed (a model already compiled from pkg, such
// as the compile stage's) when given, else by compiling pkg. The entry is written into a
// temporary sibling and renamed into place, so a reader never sees half of one and two
// runs racing both end with the same path. hit reports that the entry was there already.
func cachedModel(fw framework, pkg, seed, cacheDir string) (compiled string, hit bool, err error) {
	digest, err := PackageDigest(pkg)
	if err != nil {
		return "", false, err
	}
	entry := CompiledCacheDir(cacheDir, digest)
	if m, ok := compiledIn(entry); ok {
		return m, true, nil
	}
	compiled, err = newCacheEntry(fw, pkg, seed, entry)
	return compiled, false, err
}

func newCacheEntry(fw framework, pkg, seed, entry string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		return "", fmt.Errorf("coreml: compiled-model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(entry), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("coreml: compiled-model cache: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing left once renamed
	var name string
	if seed != "" {
		name = filepath.Base(filepath.Clean(seed))
		if err := copyTree(seed, filepath.Join(tmp, name)); err != nil {
			return "", fmt.Errorf("coreml: copy %s into the compiled-model cache: %w", seed, err)
		}
	} else {
		compiled, err := fw.compileModel(pkg, tmp)
		if err != nil {
			return "", fmt.Errorf("coreml: compile %s: %w", pkg, err)
		}
		name = filepath.Base(compiled)
	}
	if err := os.Rename(tmp, entry); err != nil {
		// Another run made the entry first: use it.
		if m, ok := compiledIn(entry); ok {
			return m, nil
		}
		return "", fmt.Errorf("coreml: compiled-model cache: %w", err)
	}
	return filepath.Join(entry, name), nil
}

// compiledIn returns the one .mlmodelc directory in a cache entry.
func compiledIn(entry string) (string, bool) {
	ms, _ := filepath.Glob(filepath.Join(entry, "*.mlmodelc"))
	if len(ms) != 1 {
		return "", false
	}
	if fi, err := os.Stat(ms[0]); err != nil || !fi.IsDir() {
		return "", false
	}
	return ms[0], true
}

// copyTree copies the directory src to dst, hard-linking files where the file system
// allows (a compiled model's weights are as large as the package's).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		}
		if os.Link(p, out) == nil {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}
