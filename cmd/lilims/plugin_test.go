package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets os.Executable re-exec work under go test: started by the plugin host with
// `isolation: process`, the test binary serves the built-in stage instead of running tests.
func TestMain(m *testing.M) {
	if serveBuiltinPlugin() {
		os.Exit(0)
	}
	// Keep the tests' builds out of the user's cache.
	dir, err := os.MkdirTemp("", "lilims-test-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("LILIMS_CACHE_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	closePlugins()
	os.Exit(code)
}

// sameTree reports every file that differs between two artifact directories.
func sameTree(t *testing.T, a, b string) (files int) {
	t.Helper()
	err := filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, path)
		x, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			t.Errorf("%s: only in the in-process build (%v)", rel, err)
			return nil
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs: %d bytes in process, %d bytes out of process", rel, len(x), len(y))
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// The stories pipeline with every stage a plugin process (--isolation process) builds the
// same artifacts, byte for byte, and generates the same text as in process: greedy, 16 tokens
// (llama.cpp's greedy continuation of "Once upon a time" begins ", there was a little girl
// named Lily. She loved to play").
func TestIsolationProcessIdentical(t *testing.T) {
	t.Setenv("LILIMS_MODEL", filepath.Join(oracle, "models", "stories260K.gguf"))
	yaml := filepath.Join("..", "..", "pipelines", "stories.yaml")
	dirs := map[string]string{}
	texts := map[string]string{}
	for _, mode := range []string{"inprocess", "process"} {
		dirs[mode] = t.TempDir()
		_, errOut, code := runCLI(t, "", "build", yaml, "-o", dirs[mode], "--no-cache", "--isolation", mode)
		if code != 0 {
			t.Fatalf("%s: build: exit %d: %s", mode, code, errOut)
		}
		out, errOut, code := runCLI(t, "", "run", yaml, "--no-cache", "--isolation", mode,
			"--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "16")
		if code != 0 {
			t.Fatalf("%s: run: exit %d: %s", mode, code, errOut)
		}
		texts[mode] = out
	}
	if n := sameTree(t, dirs["inprocess"], dirs["process"]); n < 3 {
		t.Errorf("compared only %d files", n)
	}
	if texts["inprocess"] != texts["process"] {
		t.Errorf("in process: %q\nout of process: %q", texts["inprocess"], texts["process"])
	}
	if want := ", there was a little girl named Lily. She loved to play"; !strings.HasPrefix(texts["process"], want) {
		t.Errorf("generated %q, llama.cpp's greedy text begins %q", texts["process"], want)
	}
}

func TestIsolationFlagUsage(t *testing.T) {
	_, errOut, code := runCLI(t, "", "build", "x.yaml", "-o", t.TempDir(), "--isolation", "thread")
	if code != exitUsage || !strings.Contains(errOut, `--isolation: "thread" is not process or inprocess`) {
		t.Errorf("exit %d, %q; want a usage error", code, errOut)
	}
}
