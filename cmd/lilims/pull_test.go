package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/internal/hub/hubtest"
)

// pull, ls, rm and pull-on-first-use through a fake Hub (HF_ENDPOINT): a model named
// OWNER/REPO generates exactly what the same file does from disk.
func TestPullCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a model")
	}
	h, store := storiesHub(t)
	cache := t.TempDir()

	gen := []string{"--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "12", "--cache-dir", cache}
	want, stderr, code := runCLI(t, "", append([]string{"run", stories}, gen...)...)
	if code != 0 {
		t.Fatalf("run from disk: exit %d: %s", code, stderr)
	}

	// First use pulls, later uses find the local copy (the Hub is not asked again).
	got, stderr, code := runCLI(t, "", append([]string{"run", "karpathy/stories-GGUF"}, gen...)...)
	if code != 0 {
		t.Fatalf("run by Hub name: exit %d: %s", code, stderr)
	}
	if got != want {
		t.Errorf("run by Hub name printed %q, from disk %q", got, want)
	}
	n := h.Downloads()
	if got, _, code = runCLI(t, "", append([]string{"run", "karpathy/stories-GGUF:F32"}, gen...)...); code != 0 || got != want || h.Downloads() != n {
		t.Errorf("second run: exit %d, %d new downloads, output %q", code, h.Downloads()-n, got)
	}
	file := filepath.Join(store, "karpathy", "stories-GGUF", "stories260K-F32.gguf")

	// pull prints the file; ls lists it with its architecture and type; rm removes it.
	out, stderr, code := runCLI(t, "", "pull", "karpathy/stories-GGUF:F32")
	if code != 0 || strings.TrimSpace(out) != file {
		t.Errorf("pull: exit %d, %q, %s", code, out, stderr)
	}
	out, _, code = runCLI(t, "", "ls")
	if code != 0 || !strings.Contains(out, "hf://karpathy/stories-GGUF/stories260K-F32.gguf") || !strings.Contains(out, "llama") {
		t.Errorf("ls: exit %d:\n%s", code, out)
	}
	if _, stderr, code = runCLI(t, "", "rm", "karpathy/stories-GGUF:Q4_0"); code != 1 || !strings.Contains(stderr, "no local model") {
		t.Errorf("rm of a model that is not there: exit %d: %s", code, stderr)
	}
	if out, stderr, code = runCLI(t, "", "rm", "karpathy/stories-GGUF"); code != 0 || !strings.Contains(out, "removed hf://karpathy/stories-GGUF/stories260K-F32.gguf") {
		t.Errorf("rm: exit %d: %s%s", code, out, stderr)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("file still there after rm: %v", err)
	}

	// Bad names and unknown repositories: clear errors, usage errors exit 2.
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"pull", "not-a-name"}, 2, "want OWNER/REPO"},
		{[]string{"pull", "acme/missing"}, 1, "HTTP 404"},
		{[]string{"pull", "karpathy/stories-GGUF:Q4_K_M"}, 1, "no .gguf file for quantization Q4_K_M (it has stories260K-F32.gguf)"},
		{[]string{"run", "acme/missing", "--prompt", "x"}, 1, "model acme/missing:"},
		{[]string{"run", "no/such/file.gguf", "--prompt", "x"}, 1, "lilims pull OWNER/REPO[:QUANT]"},
	} {
		_, stderr, code := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}

// storiesHub serves stories260K.gguf as karpathy/stories-GGUF's stories260K-F32.gguf from a
// fake Hub, points HF_ENDPOINT at it (no token) and LILIMS_MODELS at an empty store, which
// it returns.
func storiesHub(t *testing.T) (*hubtest.Server, string) {
	t.Helper()
	model, err := os.ReadFile(stories)
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.New(t)
	h.Add("karpathy/stories-GGUF", "stories260K-F32.gguf", model)
	t.Setenv("HF_ENDPOINT", h.URL())
	t.Setenv("HF_TOKEN", "")
	store := t.TempDir()
	t.Setenv("LILIMS_MODELS", store)
	return h, store
}

// A quantization tag whose files lilims cannot read (IQ1–IQ3, TQ, MXFP4) is refused before
// the Hub is asked anything (here: no Hub at all), by pull and by a command given the name.
func TestPullUnreadableQuant(t *testing.T) {
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1") // nothing listens: a request would fail otherwise
	t.Setenv("LILIMS_MODELS", t.TempDir())
	for _, args := range [][]string{
		{"pull", "acme/model-GGUF:IQ3_M"},
		{"pull", "acme/model-GGUF:iq2_xxs"},
		{"run", "acme/model-GGUF:TQ1_0", "--prompt", "x"},
	} {
		_, stderr, code := runCLI(t, "", args...)
		if code != 1 || !strings.Contains(stderr, "lilims cannot read") || !strings.Contains(stderr, "acme/model-GGUF:Q4_K_M") {
			t.Errorf("%v: exit %d, %q; want exit 1 naming the tag and a quantization to use", args, code, stderr)
		}
	}
}
