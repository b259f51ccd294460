package coreml

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

func exportChunks(t *testing.T, file string, chunks int) string {
	t.Helper()
	return exportChunksLayout(t, file, chunks, arch.Standard)
}

func exportChunksLayout(t *testing.T, file string, chunks int, layout arch.Layout) string {
	t.Helper()
	f, err := gguf.Open(filepath.Join(oracleDir, "models", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "model.chunks")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 64, PrefillChunk: 16, Chunks: chunks, Layout: layout}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A chunked export (3 packages of tiny-phi2's 3 layers) through the Core ML backend: each
// package compiled and loaded, one MLState per package, hidden states handed on. The logits
// must equal the reference runtime's over the same chunked export, bit for bit (the hidden
// states travel as the fp16 the packages declare, exactly as the reference chains them),
// for a prompt longer than one prefill chunk followed by greedy decoding; in the standard
// layout ([1, N, E] hidden states) and the ANE one ([1, E, 1, N]).
func TestChunkedExport(t *testing.T) {
	for _, layout := range []arch.Layout{arch.Standard, arch.ANE} {
		t.Run(layout.String(), func(t *testing.T) { testChunkedExport(t, layout) })
	}
}

func testChunkedExport(t *testing.T, layout arch.Layout) {
	dir := exportChunksLayout(t, "tiny-phi2-f16.gguf", 3, layout)
	fake := &fakeCoreML{pad: 3}
	s, err := openWith(fake, dir, Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Backend.Chunks() != 3 || len(s.Report.Compiled) != 3 || fake.loaded != 6 {
		t.Fatalf("%d chunks, %d compiled models, %d functions loaded; want 3, 3, 6", s.Backend.Chunks(), len(s.Report.Compiled), fake.loaded)
	}
	ref, err := runtime.OpenReferenceOptions(dir, reference.Options{Precision: reference.FP32})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	prompt := make([]int32, 21) // a full prefill chunk, then a padded tail
	for i := range prompt {
		prompt[i] = int32(7 + 13*i)
	}
	got, greedy := generate(t, s, prompt, 8)
	want, wantGreedy := generate(t, ref, prompt, 8)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("logits row %d differ from the reference runtime's", i)
		}
	}
	if !slices.Equal(greedy, wantGreedy) {
		t.Errorf("greedy %v, reference %v", greedy, wantGreedy)
	}
	before := fake.states
	if _, err := s.Backend.NewState(); err != nil {
		t.Fatal(err)
	}
	if fake.states-before != 3 {
		t.Errorf("a state of the chunked backend made %d MLStates, want one per package (3)", fake.states-before)
	}
}

// A chunk directory whose second package is missing, or whose index is damaged, is refused
// with the path, before Core ML is asked to do anything.
func TestChunkedExportErrors(t *testing.T) {
	dir := exportChunks(t, "tiny-phi2-f16.gguf", 2)
	missing := filepath.Join(t.TempDir(), "m.chunks")
	if err := copyTree(dir, missing); err != nil {
		t.Fatal(err)
	}
	pkgs, _ := filepath.Glob(filepath.Join(missing, "*.mlpackage"))
	slices.Sort(pkgs)
	os.RemoveAll(pkgs[len(pkgs)-1])
	damaged := filepath.Join(t.TempDir(), "d.chunks")
	if err := copyTree(dir, damaged); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(damaged, "chunks.json"))
	os.WriteFile(filepath.Join(damaged, "chunks.json"), []byte(`{"format": "lilims.chunks", "version": 9}`), 0o644)
	for _, tc := range []struct{ path, want string }{
		{missing, filepath.Base(pkgs[len(pkgs)-1])},
		{damaged, "chunks.json"},
	} {
		fake := &fakeCoreML{}
		_, err := openWith(fake, tc.path, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(fake.calls) != 0 {
			t.Errorf("%s: err %v (calls %v), want an error naming %s before any call", tc.path, err, fake.calls, tc.want)
		}
	}
}

// With PrefillThroughDecode only decode is loaded (the weights are held once), and a
// prompt run through it one token at a time gives the reference's prefill distributions up
// to summation order (the same arithmetic on one row instead of sixteen; |Δlogit| reaches
// about 0.005 on tiny-phi2): max |Δp| ≤ 1e-3, a fifth of the fp16 tolerance, and the same
// greedy continuation.
func TestPrefillThroughDecode(t *testing.T) {
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	fake := &fakeCoreML{}
	s, err := openWith(fake, pkg, Options{PrefillThroughDecode: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(fake.lastFunctions, []string{"decode"}) {
		t.Errorf("loaded %v, want decode only", fake.lastFunctions)
	}
	ref, err := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP32})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	prompt := make([]int32, 21)
	for i := range prompt {
		prompt[i] = int32(3 + 11*i)
	}
	got, greedy := generate(t, s, prompt, 6)
	want, wantGreedy := generate(t, ref, prompt, 6)
	var worst float64
	for i := range want {
		p, q := oracle.Softmax(got[i]), oracle.Softmax(want[i])
		for j := range p {
			worst = max(worst, math.Abs(p[j]-q[j]))
		}
	}
	t.Logf("max |Δp| %.2g", worst)
	if worst > 1e-3 || !slices.Equal(greedy, wantGreedy) {
		t.Errorf("max |Δp| %g, greedy %v vs %v", worst, greedy, wantGreedy)
	}
}
