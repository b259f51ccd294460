package calibrate

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/gguf"
)

const (
	models      = "../../../testdata/oracle/models/"
	calibration = "../testdata/calibration.txt" // TinyStories-style text written for these tests
)

// TestCollectStories260K calibrates stories260K and checks the statistics against facts of
// the llama architecture (llama.cpp src/models/llama.cpp): every linear weight is observed (5 layers × 7 +
// output = 36), q/k/v and gate/up share one activation, and the input of attn_q is
// RMSNorm(x)·γ, whose features have Σᵢ E[xᵢ²]/γᵢ² = dim exactly (an RMS-normalised row has
// mean square 1), up to fp16 rounding and eps.
func TestCollectStories260K(t *testing.T) {
	f, err := gguf.Open(models + "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := File(context.Background(), f, calibration)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens, %d weights", st.Tokens, len(st.Inputs))
	if len(st.Inputs) != 36 || st.Tokens < 1024 || st.Tokens%64 != 0 {
		t.Fatalf("%d weights observed over %d tokens, want 36 over ≥ 1024 (a multiple of the chunk 64)", len(st.Inputs), st.Tokens)
	}
	for _, tc := range [][2]string{{"blk.2.attn_q.weight", "blk.2.attn_v.weight"}, {"blk.4.ffn_gate.weight", "blk.4.ffn_up.weight"}} {
		if st.Inputs[tc[0]] != st.Inputs[tc[1]] {
			t.Errorf("%s and %s do not share their input statistics", tc[0], tc[1])
		}
	}
	for l := range 5 {
		name := "blk." + string(rune('0'+l)) + ".attn_q.weight"
		in := st.Inputs[name]
		if in.Rows != st.Tokens || in.Dim != 64 || len(in.Hessian) != 64*64 {
			t.Fatalf("%s: %d rows of %d features, hessian %d", name, in.Rows, in.Dim, len(in.Hessian))
		}
		g, _ := f.Tensor(strings.Replace(name, "attn_q", "attn_norm", 1))
		gamma, _ := f.Float32s(g)
		var s float64
		for i, m := range in.SecondMoment {
			s += m / float64(gamma[i]) / float64(gamma[i])
			if in.Hessian[i*64+i] != m {
				t.Errorf("%s: hessian diagonal %d = %g, second moment %g", name, i, in.Hessian[i*64+i], m)
			}
		}
		// fp16 activations carry relative errors ≈ 2⁻¹¹; 1% allows for them and eps.
		if r := s / 64; math.Abs(r-1) > 0.01 {
			t.Errorf("%s: mean E[x²]/γ² = %.4f, want 1 (RMS-normalised input)", name, r)
		}
	}
	if in := st.Inputs["blk.0.ffn_down.weight"]; in == nil || in.Dim != 172 {
		t.Errorf("ffn_down input: %+v", in)
	}
}

// TestCollectErrors: too few tokens is an error before any export.
func TestCollectErrors(t *testing.T) {
	f, err := gguf.Open(models + "stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Collect(context.Background(), f, []int32{1, 2, 3}, 1, Options{}); err == nil || !strings.Contains(err.Error(), "need at least one prefill chunk of 64") {
		t.Errorf("3 tokens: %v", err)
	}
	if _, err := File(context.Background(), f, "no/such/file.txt"); err == nil || !strings.Contains(err.Error(), "no/such/file.txt") {
		t.Errorf("missing file: %v", err)
	}
}
