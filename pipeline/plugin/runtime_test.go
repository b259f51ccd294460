package plugin

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// runtimePlan is stories260K exported (C = 64, N = 16, chunks as given) and run by the
// reference runtime, with the export and runtime stages isolated as given.
func runtimePlan(t *testing.T, h *Host, chunks int, exportIso, runtimeIso string) (*pipeline.Plan, []pipeline.Built) {
	t.Helper()
	spec := &pipeline.Spec{Name: "rt", Model: stories, Stages: []*pipeline.StageSpec{
		{ID: "load", Uses: "loader/gguf", With: map[string]any{}},
		{ID: "export", Uses: "export/mil", With: map[string]any{"context": 64, "prefill_chunk": 16, "chunks": chunks}, Isolation: exportIso},
		{ID: "compile", Uses: "compile/coreml", With: map[string]any{"coremlcompiler": "never"}},
		{ID: "runtime", Uses: "runtime/reference", With: map[string]any{"precision": "fp32", "threads": 1}, Isolation: runtimeIso},
	}}
	reg := builtin.Registry()
	reg.External = h.External
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		t.Fatal(err)
	}
	built, err := plan.Build(context.Background(), pipeline.BuildOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return plan, built
}

// A runtime in its own process — the way Core ML runs on a Mac — returns the
// logits the in-process runtime returns, bit for bit (float32 travels exactly over gRPC); when
// that process dies mid-conversation, as an Objective-C exception would kill it, the next
// call fails naming the plugin and how it died, and the host carries on.
func TestRuntimeProcess(t *testing.T) {
	h := newTestHost(t, Options{})
	ctx := context.Background()
	plan, built := runtimePlan(t, h, 1, "", "process")
	remote, err := plan.OpenSession(ctx, built)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	inproc, built2 := runtimePlan(t, h, 1, "", "")
	near, err := inproc.OpenSession(ctx, built2)
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()

	prompt := []int32{1, 403, 407, 261, 378, 1, 9, 30, 7, 5, 3, 100, 2, 8, 6, 4, 11, 12}
	a, err := remote.Prefill(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := near.Prefill(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("prefill row %d differs between the plugin and the host process", i)
		}
	}
	for _, tok := range []int32{5, 6, 7} {
		x, err := remote.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		y, err := near.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(x, y) {
			t.Fatalf("decode of %d differs between the plugin and the host process", tok)
		}
	}

	h.mu.Lock()
	p := h.procs["builtin:runtime/reference"]
	h.mu.Unlock()
	if p == nil || p.pid() == 0 {
		t.Fatal("no runtime plugin process")
	}
	pid := p.pid()
	syscall.Kill(pid, syscall.SIGKILL)
	_, err = remote.Decode(ctx, 9)
	if err == nil {
		t.Fatal("decode succeeded on a killed plugin")
	}
	for _, w := range []string{"built-in runtime/reference (isolation: process)", "died during Decode", "signal: killed"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	assertGone(t, pid)
	if _, err := near.Decode(ctx, 9); err != nil {
		t.Errorf("the host's own session after the plugin died: %v", err)
	}
}

// A chunked export built out of process (isolation: process, as an architecture plugin
// serving the export stage would build it) is a directory of packages with chunks.json and
// no Manifest.json of its own: the host accepts it, and the runtime runs it.
func TestChunkedExportProcess(t *testing.T) {
	h := newTestHost(t, Options{})
	plan, built := runtimePlan(t, h, 2, "process", "")
	var art stage.Artifact
	for _, b := range built {
		if b.Artifact.Kind == "mlpackage" && b.ID == "export" {
			art = b.Artifact
		}
	}
	for _, name := range []string{mlpackage.ChunkIndexFile, "chunk_0.mlpackage", "chunk_1.mlpackage"} {
		if _, err := os.Stat(filepath.Join(art.Path, name)); err != nil {
			t.Error(err)
		}
	}
	sess, err := plan.OpenSession(context.Background(), built)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.Prefill(context.Background(), []int32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
}
