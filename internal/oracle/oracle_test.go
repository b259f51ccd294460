package oracle

import (
	"math"
	"testing"
)

// The fixture itself: stories260K's "Once upon a time" prompt is the one the README's
// greedy example and the runtime tests use.
func TestLoad(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if dir != "../../testdata/oracle" {
		t.Errorf("Dir() = %q from internal/oracle, want ../../testdata/oracle", dir)
	}
	ref, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := ref.Models["stories260K.gguf"]
	if !ok {
		t.Fatal("no stories260K.gguf")
	}
	if len(m.Tokenize) == 0 || m.Tokenize[0].Text != "Hello world" {
		t.Errorf("tokenize entries %+v, want the first for \"Hello world\"", m.Tokenize)
	}
	var found bool
	for _, p := range m.Prompts {
		if p.Prompt != "Once upon a time" {
			continue
		}
		found = true
		// llama.cpp: 24 greedy tokens, one step per prompt token, steps at positions 0, 1, …
		if len(p.Greedy) != 24 || len(p.Steps) != len(p.Tokens) {
			t.Errorf("greedy %d tokens, %d steps for %d tokens", len(p.Greedy), len(p.Steps), len(p.Tokens))
		}
		for i, st := range p.Steps {
			if st.Pos != i || st.TokenIn != p.Tokens[i] || len(st.Top) == 0 || int32(st.Top[0][0]) != st.Argmax {
				t.Errorf("step %d: %+v", i, st)
			}
		}
	}
	if !found {
		t.Error("no \"Once upon a time\" prompt")
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of a directory without the file succeeded")
	}
}

func TestCheck(t *testing.T) {
	// logits ln 3, 0, 0 → softmax 0.6, 0.2, 0.2.
	logits := []float32{float32(math.Log(3)), 0, 0}
	tests := []struct {
		name   string
		step   Step
		wantD  float64
		wantOK bool
	}{
		// Exact match: |Δp| 0 and the same argmax.
		{"same", Step{Argmax: 0, Top: [][2]float64{{0, 0.6}, {1, 0.2}}}, 0, true},
		// llama.cpp 0.5/0.3 on tokens 1/0: Δp 0.3 on token 1; margin 0.2 > 0.02, argmax differs.
		{"differs", Step{Argmax: 1, Top: [][2]float64{{1, 0.5}, {0, 0.3}}}, 0.3, false},
		// margin 0.01 ≤ 0.02: any argmax is accepted; Δp 0.395 on token 1.
		{"close", Step{Argmax: 1, Top: [][2]float64{{1, 0.595}, {0, 0.585}}}, 0.395, true},
		// A token outside our vocabulary counts as probability 0: Δp 0.1.
		{"out of vocab", Step{Argmax: 0, Top: [][2]float64{{0, 0.6}, {7, 0.1}}}, 0.1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, am, ok := tt.step.Check(logits)
			if math.Abs(d-tt.wantD) > 1e-6 || am != 0 || ok != tt.wantOK {
				t.Errorf("Check = %.6f, %d, %v; want %.6f, 0, %v", d, am, ok, tt.wantD, tt.wantOK)
			}
		})
	}
}
