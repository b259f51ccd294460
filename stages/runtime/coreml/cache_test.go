package coreml

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The compiled model lives at a path fixed by the package digest: the second open of the
// same package compiles nothing and loads from the very same path (Core ML keys its
// device-specialisation cache by that path); another package gets another entry; a
// compiled .mlmodelc opened with its package seeds the entry without compiling.
func TestCompiledModelCache(t *testing.T) {
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	cache := t.TempDir()

	first := &fakeCoreML{}
	s1, err := openWith(first, pkg, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	digest, err := PackageDigest(pkg)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(cache, "coreml", digest[:2], digest, "model.mlmodelc")
	if s1.Report.Compiled[0] != want || s1.Report.CacheHit || !slices.Contains(first.calls, "compile") {
		t.Errorf("first open: compiled %s (cache hit %v, calls %v), want a compile into %s", s1.Report.Compiled, s1.Report.CacheHit, first.calls, want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("Close removed the cached compiled model: %v", err)
	}

	second := &fakeCoreML{}
	s2, err := openWith(second, pkg, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Report.Compiled[0] != want || !s2.Report.CacheHit || slices.Contains(second.calls, "compile") {
		t.Errorf("second open: compiled %s (cache hit %v, calls %v), want %s reused without compiling", s2.Report.Compiled, s2.Report.CacheHit, second.calls, want)
	}
	// No temporary directory is left beside the entries.
	left, _ := filepath.Glob(filepath.Join(cache, "coreml", "*", ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary entries left: %v", left)
	}

	// Another package (another context) has another digest, so another entry.
	other := exportPackage(t, "tiny-phi2-f16.gguf", 32, 8)
	d2, err := PackageDigest(other)
	if err != nil {
		t.Fatal(err)
	}
	if d2 == digest {
		t.Fatal("two different packages share a digest")
	}

	// A compiled model from elsewhere (the compile stage's, in a temporary work
	// directory) seeds the entry of its package once; the session loads the cached copy.
	seedCache := t.TempDir()
	compiled, err := (&fakeCoreML{}).compileModel(other, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	third := &fakeCoreML{}
	s3, err := openWith(third, compiled, Options{Package: other, CacheDir: seedCache})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if !strings.HasPrefix(s3.Report.Compiled[0], CompiledCacheDir(seedCache, d2)) || slices.Contains(third.calls, "compile") {
		t.Errorf("seeded open loaded %s (calls %v), want the cache entry %s and no compile", s3.Report.Compiled, third.calls, CompiledCacheDir(seedCache, d2))
	}
}

// The digest covers every file of the package: changing one byte of the weights changes it.
func TestPackageDigest(t *testing.T) {
	src := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	pkg := filepath.Join(t.TempDir(), "copy.mlpackage")
	if err := copyTree(src, pkg); err != nil {
		t.Fatal(err)
	}
	a, err := PackageDigest(pkg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := PackageDigest(src)
	if a != b {
		t.Errorf("a copy digests to %s, the original to %s", a, b)
	}
	var weights string
	filepath.WalkDir(pkg, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "weight.bin" {
			weights = p
		}
		return nil
	})
	if weights == "" {
		t.Fatal("no weight.bin in the package")
	}
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	os.Remove(weights) // a hard link to the original: write a new file
	if err := os.WriteFile(weights, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _ := PackageDigest(pkg); c == a {
		t.Error("changing a weight byte left the digest unchanged")
	}
	if b2, _ := PackageDigest(src); b2 != b {
		t.Error("the original package changed")
	}
}
