package quantize

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
)

// TestSchemes quantizes the float models with every scheme and checks, per scheme, the
// bits per quantized weight (from the geometry) and the mean relative RMSE of the
// weights, and that Dequantize reproduces the error the manifest reports.
//
// Bits: block 32 int4 = 4 + 16/32 = 4.5, except stories260K's ffn_down (in 172) whose block
// is 43 (4 + 16/43); channel = 4 + 16/in; channel asymmetric adds 4/in; lut palettes of
// lut_bits b cost b + 16·2^b/(group·in), ≤ b + 0.25 where a divisor of out makes a group of
// ≥ 64·2^b weights (else the whole tensor is one group: stories260K's 64×64 attention
// weights at 8 bits pay 1 bit), and with lut_scale channel 16/in more. Dequantize reading
// every width's packed indices back is checked against the manifest's error. RelRMSE bounds: a Gaussian's 4-bit RTN error is ≈ 0.1·σ per element;
// weights with outliers and per-row scales do worse, so each scheme gets a bound ~15% above
// its measured value (the numbers are in the log), and search must not be worse than RTN.
func TestSchemes(t *testing.T) {
	type result struct{ bits, rmse float64 }
	tests := []struct {
		model   string
		params  stage.Params
		bits    float64
		maxRMSE float64
	}{
		{"stories260K.gguf", stage.Params{"scheme": "block", "search": int64(0)}, 4.476, 0.095},
		{"stories260K.gguf", stage.Params{"scheme": "block"}, 4.476, 0.090},
		{"stories260K.gguf", stage.Params{"scheme": "channel", "search": int64(0)}, 4.220, 0.105},
		{"stories260K.gguf", stage.Params{"scheme": "channel"}, 4.220, 0.100},
		{"stories260K.gguf", stage.Params{"scheme": "channel", "symmetric": false}, 4.276, 0.097},
		{"stories260K.gguf", stage.Params{"scheme": "lut4"}, 4.179, 0.125},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "block", "search": int64(0)}, 4.5, 0.093},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "block"}, 4.5, 0.088},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "channel"}, 4.058, 0.111},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut4"}, 4.25, 0.111},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut4", "lut_scale": "channel", "group_size": 64}, 4.0725, 0.105},
		{"stories260K.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(2)}, 2.238, 0.41},
		{"stories260K.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(3)}, 3.161, 0.235},
		{"stories260K.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(6)}, 6.231, 0.062},
		{"stories260K.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(8)}, 8.547, 0.034},
		{"stories260K.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(3), "lut_scale": "channel"}, 3.382, 0.20},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(2)}, 2.232, 0.385},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(6), "lut_scale": "channel"}, 6.308, 0.039},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut", "lut_bits": int64(8)}, 8.25, 0.018},
	}
	for _, tc := range tests {
		s, f := quantizeModel(t, tc.model, tc.params)
		m := s.Manifest()
		var sum2 float64
		n := 0
		for _, ti := range m.Tensors {
			if ti.Encoding == FP16 {
				continue
			}
			n++
			sum2 += ti.RelRMSE * ti.RelRMSE
			qt, _ := s.Lookup(ti.Name)
			gt, _ := f.Tensor(ti.Name)
			want, _ := f.Float32s(gt)
			got := qt.Dequantize()
			var e, w float64
			for i := range want {
				d := float64(got[i] - want[i])
				e += d * d
				w += float64(want[i]) * float64(want[i])
			}
			if r := math.Sqrt(e / w); math.Abs(r-ti.RelRMSE) > 1e-4*ti.RelRMSE+1e-9 {
				t.Errorf("%s %v %s: Dequantize error %g, manifest %g", tc.model, tc.params, ti.Name, r, ti.RelRMSE)
			}
		}
		rmse := math.Sqrt(sum2 / float64(n))
		t.Logf("%-24s %v %2d tensors  %.3f bits/weight  rel RMSE %.4f", tc.model, tc.params, n, m.BitsPerWeight, rmse)
		if math.Abs(m.BitsPerWeight-tc.bits) > 0.001 {
			t.Errorf("%s %v: %.4f bits/weight, want %.3f", tc.model, tc.params, m.BitsPerWeight, tc.bits)
		}
		if rmse > tc.maxRMSE {
			t.Errorf("%s %v: rel RMSE %.4f, want ≤ %.3f", tc.model, tc.params, rmse, tc.maxRMSE)
		}
	}
}

// TestSizes checks that the weights file is what the bits/weight predict: the safetensors
// arrays add only a JSON header to the stored bits.
func TestSizes(t *testing.T) {
	for _, scheme := range []string{"block", "channel", "lut4"} {
		f := openModel(t, "tiny-llama256-f16.gguf")
		cfg, _ := ParseConfig(stage.Params{"scheme": scheme})
		dir := t.TempDir()
		m, err := Quantize(context.Background(), f, cfg, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		var elems float64
		for _, ti := range m.Tensors {
			if ti.Encoding != FP16 {
				elems += float64(ti.Shape[0] * ti.Shape[1])
			}
		}
		st, _ := os.Stat(filepath.Join(dir, WeightsFile))
		predicted := m.BitsPerWeight * elems / 8
		ratio := float64(st.Size()) / predicted
		t.Logf("%s: %d bytes, %.0f predicted (%.2f%%)", scheme, st.Size(), predicted, 100*(ratio-1))
		if ratio < 1 || ratio > 1.03 {
			t.Errorf("%s: file %d bytes, bits/weight predict %.0f", scheme, st.Size(), predicted)
		}
	}
}

// TestBlockFallback: stories260K's ffn_down has in = 172 = 4·43, which no power-of-two
// block divides. Block 32 falls back to 43 (the divisor within a factor 2), block 128 to
// 172 (per-channel; 86 is further from 128 on a log scale), and strict makes it an error.
func TestBlockFallback(t *testing.T) {
	for _, tc := range []struct {
		block int64
		want  int
		note  string
	}{
		{32, 43, "block 32 does not divide 172: block 43"},
		{64, 86, "block 64 does not divide 172: block 86"},
		{128, 172, "block 128 does not divide 172: per-channel"},
	} {
		s, _ := quantizeModel(t, "stories260K.gguf", stage.Params{"scheme": "block", "block_size": tc.block})
		qt, ok := s.Lookup("blk.3.ffn_down.weight")
		if !ok || qt.Info.BlockSize != tc.want || qt.Info.Note != tc.note {
			t.Errorf("block %d: %+v", tc.block, qt.Info)
		}
		if up, _ := s.Lookup("blk.3.ffn_up.weight"); tc.block <= 64 && (up.Info.BlockSize != int(tc.block) || up.Info.Note != "") {
			t.Errorf("block %d: ffn_up %+v", tc.block, up.Info)
		}
	}
	f := openModel(t, "stories260K.gguf")
	cfg, _ := ParseConfig(stage.Params{"scheme": "block", "strict": true})
	dir := t.TempDir()
	_, err := Quantize(context.Background(), f, cfg, dir, nil)
	if err == nil || !strings.Contains(err.Error(), `"blk.0.ffn_down.weight": block_size 32 does not divide its input dimension 172 (strict)`) {
		t.Errorf("strict: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("strict failure left %d files", len(ents))
	}
}

// TestOverridesAndPolicy checks which tensors are quantized and how, on stories260K: 1-D
// norms stay fp16, overrides by glob apply first-match, min_elements keeps small tensors
// fp16, and an unmatched glob is a warning in the manifest.
func TestOverridesAndPolicy(t *testing.T) {
	s, _ := quantizeModel(t, "stories260K.gguf", stage.Params{
		"scheme":       "channel",
		"min_elements": int64(4096), // attn_k/attn_v are 64×32 = 2048
		"overrides":    []string{"token_embd.weight=8", "output.weight=fp16", "blk.*.ffn_down.weight=block", "blk.9.*=lut4"},
	})
	m := s.Manifest()
	enc := map[string]TensorInfo{}
	for _, ti := range m.Tensors {
		enc[ti.Name] = ti
	}
	if len(m.Tensors) != 48 {
		t.Errorf("%d tensors listed, want all 48", len(m.Tensors))
	}
	check := func(name, encoding, dtype string, block int) {
		t.Helper()
		ti := enc[name]
		if ti.Encoding != encoding || ti.DType != dtype || ti.BlockSize != block {
			t.Errorf("%s: %+v, want %s %s block %d", name, ti, encoding, dtype, block)
		}
		if _, ok := s.Lookup(name); ok != (encoding != FP16) {
			t.Errorf("%s: Lookup %v", name, ok)
		}
	}
	check("token_embd.weight", Blockwise, "int8", 64) // per-channel int8: 8 + 16/64 bits
	check("output.weight", FP16, "", 0)
	check("output_norm.weight", FP16, "", 0)
	check("blk.2.attn_k.weight", FP16, "", 0)
	check("blk.2.attn_q.weight", Blockwise, "int4", 64)
	check("blk.2.ffn_down.weight", Blockwise, "int4", 43)
	if got := enc["token_embd.weight"].BitsPerWeight; got != 8.25 {
		t.Errorf("int8 per-channel bits %g, want 8.25", got)
	}
	if got := enc["blk.2.attn_k.weight"].Note; got != "2048 elements < min_elements 4096" {
		t.Errorf("note %q", got)
	}
	if len(m.Warnings) != 1 || m.Warnings[0] != "override blk.9.*=lut4 matches no tensor" {
		t.Errorf("warnings %q", m.Warnings)
	}
}

// TestConfigErrors: bad schemes and parameters fail before any work, all reported at once.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		params stage.Params
		want   []string
	}{
		{stage.Params{"scheme": "int3"}, []string{`scheme "int3" is not one of`}},
		{stage.Params{"scheme": "block", "block_size": int64(48), "bits": int64(3)},
			[]string{`has no parameter "bits"`, "block_size 48 is not 32, 64 or 128"}},
		{stage.Params{"overrides": []string{"output.weight", "x=int2", "[=fp16"}},
			[]string{`override "output.weight" is not GLOB=CHOICE`, `"int2" is not fp16`, "bad glob"}},
		{stage.Params{"scheme": "block", "fallback": "block"}, []string{"applies to schemes gguf and auto only"}},
		{stage.Params{"fallback": "q4_k"}, []string{`fallback "q4_k" is not one of`}},
		{stage.Params{"scheme": "lut", "lut_bits": int64(5)}, []string{"lut_bits 5 is not 2, 3, 4, 6 or 8: Core ML's constexpr_lut_to_dense (iOS18) has no 5-bit indices"}},
		{stage.Params{"scheme": "lut", "lut_bits": int64(7)}, []string{"has no 7-bit indices"}},
		{stage.Params{"scheme": "lut", "lut_bits": int64(16)}, []string{"lut_bits 16 is not 2, 3, 4, 6 or 8"}},
		{stage.Params{"scheme": "lut4", "lut_bits": int64(3)}, []string{"scheme lut4 is lut with lut_bits 4: for lut_bits 3 use scheme lut"}},
		{stage.Params{"overrides": []string{"x=lut5"}}, []string{`"lut5" is not fp16`}},
	} {
		_, err := ParseConfig(tc.params)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v, want %q", tc.params, err, w)
			}
		}
	}
	// A type scheme gguf cannot transcode: TestTranscodeBadInput.
}

// TestStageBuild runs the stage as the pipeline does, including scheme none.
func TestStageBuild(t *testing.T) {
	for _, scheme := range []string{"lut4", "none"} {
		spec := Spec
		params, errs := spec.Resolve(map[string]any{"scheme": scheme})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		var events []stage.Event
		src := models + "stories260K.gguf"
		out := t.TempDir()
		art, err := Stage{}.Build(context.Background(), stage.BuildRequest{
			ID: "q", Params: params, Source: src, OutDir: out,
			Inputs: []stage.Artifact{{Kind: "gguf", Path: src}},
			Report: func(e stage.Event) { events = append(events, e) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if art.Kind != "quantized" || art.Path != out || art.Meta["source"] != src {
			t.Errorf("artifact %+v", art)
		}
		raw, err := os.ReadFile(filepath.Join(out, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		quantized := 0
		for _, ti := range m.Tensors {
			if ti.Encoding != FP16 {
				quantized++
			}
		}
		last := events[len(events)-1]
		// stories260K: 2 + 5×7 = 37 2-D weights; scheme none keeps all 48 tensors fp16.
		want := map[string]int{"lut4": 37, "none": 0}[scheme]
		if quantized != want || len(m.Tensors) != 48 || last.Unit != "tensors" || last.Done != int64(want) || last.Stage != "q" {
			t.Errorf("%s: %d quantized, %d listed, last event %+v", scheme, quantized, len(m.Tensors), last)
		}
	}
}
