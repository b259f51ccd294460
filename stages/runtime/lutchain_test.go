package runtime_test

import (
	"testing"

	"github.com/lilims/lilims/stages/compile"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// TestLUTBlockwiseLayouts: lut+blockwise weights — Q6_K transcoded (uint6 indices into an
// int8 code table, a scale per 16) and lut4 with a scale per channel (uint4 indices into
// fp16 palettes) — bound as [out, in] and as [out, in, 1, 1] (ANE) pass the static
// validator and give the same logits within 1e-3.
func TestLUTBlockwiseLayouts(t *testing.T) {
	o := loadOracleWith(t)
	for _, tc := range []struct {
		file   string
		params map[string]any
	}{
		{"tiny-llama256-q6_k.gguf", map[string]any{"scheme": "gguf"}},
		{"tiny-llama-f16.gguf", map[string]any{"scheme": "lut4", "lut_scale": "channel", "group_size": 32}},
	} {
		w := quantizedWeights(t, tc.file, tc.params)
		std := exportModel(t, tc.file, export.Options{ContextLength: 64, PrefillChunk: 16, Weights: w})
		ane := exportModel(t, tc.file, export.Options{ContextLength: 64, PrefillChunk: 16, Weights: w, Layout: arch.ANE})
		for _, dir := range []string{std, ane} {
			if err := compile.Validate(dir); err != nil {
				t.Errorf("%s: static validator: %v", tc.file, err)
			}
		}
		d := maxDiff(promptLogits(t, o, tc.file, std, reference.FP32), promptLogits(t, o, tc.file, ane, reference.FP32), false)
		t.Logf("%s %v: max |Δlogit| ane vs standard %.2g", tc.file, tc.params, d)
		if d > 1e-3 {
			t.Errorf("%s: ANE layout logits differ by %g > 1e-3", tc.file, d)
		}
	}
}
