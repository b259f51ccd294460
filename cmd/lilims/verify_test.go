package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/runtime/coreml"
)

func exportForVerify(t *testing.T, file string, chunks int) string {
	t.Helper()
	f, err := gguf.Open(filepath.Join(oracle, "models", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(file, ".gguf")+".mlpackage")
	if chunks > 1 {
		out = strings.TrimSuffix(out, ".mlpackage") + ".chunks"
	}
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 64, PrefillChunk: 16, Chunks: chunks}, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Off macOS, verify runs the Core ML path with the emulated framework against the reference
// runtime: every setting agrees exactly (the same fp32 computation behind both), the report
// says that no Core ML ran, and it exits 0 — for a package and for a chunked export.
func TestVerifyEmulated(t *testing.T) {
	t.Setenv("LILIMS_CACHE_DIR", t.TempDir())
	for _, chunks := range []int{1, 3} {
		pkg := exportForVerify(t, "tiny-phi2-f16.gguf", chunks)
		out, errOut, code := runCLI(t, "", "verify", pkg, "--json", "--emulate")
		if code != 0 {
			t.Fatalf("chunks %d: exit %d: %s", chunks, code, errOut)
		}
		var rep verifyReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Backend != "emulated" || !strings.Contains(rep.BackendNote, "no Core ML ran") || rep.Chunks != chunks {
			t.Errorf("chunks %d: backend %q (%s), %d chunks", chunks, rep.Backend, rep.BackendNote, rep.Chunks)
		}
		if rep.Tolerance != 0.005 || rep.Quantized || len(rep.Settings) != 4 || !rep.Pass {
			t.Fatalf("chunks %d: tolerance %g quantized %v, %d settings, pass %v", chunks, rep.Tolerance, rep.Quantized, len(rep.Settings), rep.Pass)
		}
		for _, s := range rep.Settings {
			if s.Error != "" || s.MaxDeltaP != 0 || s.Top1Agreement != 1 || s.Rows == 0 || s.LoadSeconds <= 0 {
				t.Errorf("chunks %d, %s: %+v", chunks, s.Units, s)
			}
		}
		// The compiled models of the first setting are reused by the others.
		if rep.Settings[0].CompileCached || !rep.Settings[1].CompileCached {
			t.Errorf("chunks %d: compile cached %v then %v, want a compile then the cache", chunks, rep.Settings[0].CompileCached, rep.Settings[1].CompileCached)
		}
	}
}

// A quantized export (a pipeline with the int4 quantize stage) is held to 0.05: the
// tolerance follows the package.
func TestVerifyQuantizedTolerance(t *testing.T) {
	t.Setenv("LILIMS_CACHE_DIR", t.TempDir())
	model, err := filepath.Abs(filepath.Join(oracle, "models", "tiny-phi2-q4_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	yml := filepath.Join(t.TempDir(), "q.yaml")
	os.WriteFile(yml, []byte(`name: q
model: `+model+`
stages:
  - id: load
    uses: loader/gguf
  - id: quantize
    uses: quantize/int4
    with: {scheme: channel}
  - id: export
    uses: export/mil
    with: {context: 32, prefill_chunk: 8}
  - id: runtime
    uses: runtime/reference
`), 0o644)
	out, errOut, code := runCLI(t, "", "verify", yml, "--json", "--emulate", "--units", "cpu_and_ne")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Quantized || rep.Tolerance != 0.05 || len(rep.Settings) != 1 || rep.Settings[0].Units != "cpu_and_ne" {
		t.Errorf("quantized %v tolerance %g settings %+v; want a quantized package held to 0.05, one setting", rep.Quantized, rep.Tolerance, rep.Settings)
	}
}

// splitState is a Core ML session whose decode function does not see the KV state its
// prefill function wrote: decode runs on a second session whose cache holds another
// prompt of the same length — the silent failure verify's prefill-then-decode sequence is
// there to expose.
type splitState struct {
	prefill, decode *coreml.Session
}

func (s *splitState) Prefill(ctx context.Context, toks []int32) ([][]float32, error) {
	rows, err := s.prefill.Prefill(ctx, toks)
	if err != nil {
		return nil, err
	}
	other := make([]int32, len(toks))
	for i := range other {
		other[i] = (toks[i] + 1) % int32(s.decode.VocabSize())
	}
	_, err = s.decode.Prefill(ctx, other)
	return rows, err
}

func (s *splitState) Decode(ctx context.Context, tok int32) ([]float32, error) {
	return s.decode.Decode(ctx, tok)
}

func (s *splitState) Reset() { s.prefill.Reset(); s.decode.Reset() }

// verify fails (exit 1) a setting whose decode does not carry the prefill state, and says
// so in the prefill-then-decode figure while the prompt-only sequences agree; and it fails a
// setting running another model's weights (q8_0 for the f16 reference) beyond 0.005.
func TestVerifyDetectsDisagreement(t *testing.T) {
	pkg := exportForVerify(t, "tiny-phi2-f16.gguf", 1)
	other := exportForVerify(t, "tiny-phi2-q8_0.gguf", 1)
	split := verifier{emulated: true, open: func(path string, opts coreml.Options) (*openedSession, error) {
		a, err := coreml.OpenEmulated(path, opts)
		if err != nil {
			return nil, err
		}
		b, err := coreml.OpenEmulated(path, opts)
		if err != nil {
			return nil, err
		}
		return &openedSession{session: &splitState{a, b}, close: func() error { a.Close(); return b.Close() }, report: a.Report}, nil
	}}
	rep, err := split.run(context.Background(), pkg, "", []string{"cpu_and_ne"})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Settings[0]
	if rep.Pass || rep.err() == nil || s.Pass {
		t.Fatalf("a state that does not carry over passed: %+v", s)
	}
	if s.MaxDeltaPBySeq["prefill then decode"] <= 0.005 || s.MaxDeltaPBySeq["short prompt"] != 0 || s.MaxDeltaPBySeq["long prompt"] != 0 {
		t.Errorf("max |Δp| by sequence %v: want the prefill-then-decode sequence alone beyond 0.005", s.MaxDeltaPBySeq)
	}
	t.Logf("state not carried over: prefill-then-decode max |Δp| %.4f", s.MaxDeltaPBySeq["prefill then decode"])

	wrong := verifier{emulated: true, open: func(path string, opts coreml.Options) (*openedSession, error) {
		return coremlOpener(coreml.OpenEmulated)(other, opts)
	}}
	rep, err = wrong.run(context.Background(), pkg, "", []string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.Settings[0].MaxDeltaP <= 0.005 {
		t.Errorf("another model's weights passed: max |Δp| %.4f", rep.Settings[0].MaxDeltaP)
	}
	t.Logf("q8_0 weights against the f16 reference: max |Δp| %.4f", rep.Settings[0].MaxDeltaP)
}

// Bad input: an unknown compute-unit name is one line listing the valid ones (exit 2).
func TestVerifyBadUnits(t *testing.T) {
	_, errOut, code := runCLI(t, "", "verify", "x.mlpackage", "--units", "cpu_and_ane")
	if code != 2 || !strings.Contains(errOut, `"cpu_and_ane" is not a compute-unit setting; valid: cpu_only, cpu_and_gpu, cpu_and_ne, all`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// Where Core ML cannot run at all (here: a Mac older than macOS 15, as the real framework
// reports it), verify stops with that one line instead of a table of failed settings.
func TestVerifyUnavailable(t *testing.T) {
	pkg := exportForVerify(t, "tiny-phi2-f16.gguf", 1)
	old := fmt.Errorf("coreml: this Mac runs macOS 14.6; running lilims packages with Core ML needs macOS 15.0 or later (%w)", coreml.ErrUnavailable)
	v := verifier{open: func(string, coreml.Options) (*openedSession, error) { return nil, old }}
	_, err := v.run(context.Background(), pkg, "", allUnits)
	if !errors.Is(err, coreml.ErrUnavailable) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v, want the one-line unavailability", err)
	}
}
