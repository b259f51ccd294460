package arch

import (
	"math"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, name := range []string{"llama", "phi2", "gemma", "gpt2", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"} {
		if _, err := Lookup(name); err != nil {
			t.Errorf("Lookup(%q): %v", name, err)
		}
	}
	if _, err := Lookup("starcoder2"); err == nil {
		t.Error("Lookup(starcoder2) succeeded; starcoder2 is the plugin example's architecture (plugins/arch-starcoder2)")
	}
	_, err := Lookup("mamba")
	if err == nil {
		t.Fatal("Lookup(mamba) succeeded; lilims has no mamba builder")
	}
	for _, want := range []string{`"mamba"`, "gemma, gemma2, gemma3, gpt2, llama, phi2, phi3, qwen2, qwen3", "uses: plugin:PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRopeTables(t *testing.T) {
	// n_rot 8, base 10000: theta_scale = 10000^(-2/8) = 0.1, so theta_i = p·0.1^i
	// (llama.cpp's repeated f32 multiplication); freq_scale 0.5 halves every angle.
	tests := []struct {
		p, i      int
		freqScale float32
		ff        []float32
		theta     float64
	}{
		{0, 0, 1, nil, 0},
		{1, 0, 1, nil, 1},
		{5, 1, 1, nil, 0.5},
		{7, 2, 1, nil, 0.07},
		{9, 3, 1, nil, 0.009},
		{6, 0, 0.5, nil, 3},
		{5, 1, 1, []float32{1, 2, 1, 1}, 0.25}, // rope_freqs divides theta_1 by 2
	}
	for _, tt := range tests {
		cos, sin := ropeTables(10, 8, 10000, ropeScaling{freqScale: tt.freqScale, factors: tt.ff, mscale: 1})
		k := tt.p*4 + tt.i
		if d := math.Abs(float64(cos[k]) - math.Cos(tt.theta)); d > 1e-6 {
			t.Errorf("cos(p=%d, i=%d) = %v, want %v", tt.p, tt.i, cos[k], math.Cos(tt.theta))
		}
		if d := math.Abs(float64(sin[k]) - math.Sin(tt.theta)); d > 1e-6 {
			t.Errorf("sin(p=%d, i=%d) = %v, want %v", tt.p, tt.i, sin[k], math.Sin(tt.theta))
		}
	}
}
