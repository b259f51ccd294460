package runtime_test

import (
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime/coreml"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// TestKVPad: padding the KV states' head_dim with zero lanes (kv_pad 32) changes no logit,
// in either layout, over prefill and decode: the padded lanes of K, V and q are exact zeros,
// so every score and every attention output is the unpadded sum plus exact zeros.
// stories260K's head_dim 8 pads to 32; the tiny fixtures have head_dim 32 already, so they
// pad to a multiple of 48 (the option takes any multiple) to exercise the lanes too; qwen3
// (head_dim 48) pads to 64.
func TestKVPad(t *testing.T) {
	o := loadOracle(t)
	for _, tt := range []struct {
		file       string
		pad, width int64
	}{
		{"stories260K.gguf", export.ANEStateAlign, 32}, {"tiny-phi2-f16.gguf", 48, 48},
		{"tiny-llama-f16.gguf", 48, 48}, {"tiny-gemma2-f16.gguf", 48, 48}, {"tiny-qwen3-f16.gguf", export.ANEStateAlign, 64}, // head_dim 48
	} {
		file := tt.file
		for _, layout := range []arch.Layout{arch.Standard, arch.ANE} {
			opts := export.Options{ContextLength: 64, PrefillChunk: 16, Layout: layout, KVPad: export.NoKVPad}
			plain := exportModel(t, file, opts)
			opts.KVPad = int(tt.pad)
			padded := exportModel(t, file, opts)
			for _, w := range stateWidths(t, padded) {
				if w != tt.width {
					t.Fatalf("%s %s: padded state width %d, want %d", file, layout, w, tt.width)
				}
			}
			lp, lq := promptLogits(t, o, file, plain, reference.FP32), promptLogits(t, o, file, padded, reference.FP32)
			if d := maxDiff(lp, lq, false); d != 0 {
				t.Errorf("%s %s: kv_pad 32 changes the logits by up to %g; padding must be exact", file, layout, d)
			}
		}
	}
}

// stateWidths lists the last dimension of every state of the package's decode function.
func stateWidths(t *testing.T, path string) []int64 {
	t.Helper()
	pkg, err := mlpackage.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer pkg.Close()
	var w []int64
	for _, fd := range pkg.Model.GetDescription().GetFunctions() {
		if fd.GetName() != "decode" {
			continue
		}
		for _, s := range fd.GetState() {
			sh := s.GetType().GetStateType().GetArrayType().GetShape()
			w = append(w, sh[len(sh)-1])
		}
	}
	return w
}

// TestKVPadStatic: the ANE layout pads by default (kv_pad auto), so the static ANE checks
// find no state whose last dimension is not a multiple of 32 in stories260K (head_dim 8);
// with kv_pad off they name every state (coremltools issue 2631).
func TestKVPadStatic(t *testing.T) {
	for _, tt := range []struct {
		pad  int
		want int // state findings: none, or one per K and V state of the 5 layers
	}{{export.KVPadAuto, 0}, {export.NoKVPad, 10}} {
		pkg := exportModel(t, "stories260K.gguf", export.Options{ContextLength: 64, PrefillChunk: 16, Layout: arch.ANE, KVPad: tt.pad})
		r, err := coreml.CheckStatic(pkg)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]bool{}
		for _, f := range r.Findings {
			if f.Check == "state" {
				states[f.Name] = true
			}
		}
		if len(states) != tt.want {
			t.Errorf("kv_pad %d: %d states found misaligned %v, want %d", tt.pad, len(states), states, tt.want)
		}
	}
}
