package runtime_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

const oracleDir = "../../testdata/oracle"

// oracle is the part of llamacpp-reference.json these tests read.
type oracle struct {
	Models map[string]struct {
		Prompts []struct {
			Prompt string  `json:"prompt"`
			Tokens []int32 `json:"tokens"`
			Steps  []struct {
				Pos    int          `json:"pos"`
				Argmax int32        `json:"argmax"`
				Top    [][2]float64 `json:"top"`
			} `json:"steps"`
			Greedy []int32 `json:"greedy"`
		} `json:"prompts"`
	} `json:"models"`
}

func loadOracle(t *testing.T) *oracle {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(oracleDir, "llamacpp-reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var o oracle
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

// exportModel exports testdata model file into a temp dir with a small context.
func exportModel(t testing.TB, file string, opts export.Options) string {
	t.Helper()
	f, err := gguf.Open(filepath.Join(oracleDir, "models", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "model.mlpackage")
	if err := export.Export(context.Background(), f, opts, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func softmax(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = math.Max(m, float64(l))
	}
	p := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp(float64(l) - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

func TestSmoke(t *testing.T) {
	o := loadOracle(t)
	files := []string{}
	for k := range o.Models { if k != "tiny-qwen2-f16.gguf" { files = append(files, k) } }
	for _, file := range files {
		pkg := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16})
		for _, prec := range []reference.Precision{reference.FP16Faithful, reference.FP32} {
			s, err := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: prec})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for _, pr := range o.Models[file].Prompts {
				s.Reset()
				logits, err := s.Prefill(context.Background(), pr.Tokens)
				if err != nil {
					t.Fatal(err)
				}
				for i, st := range pr.Steps {
					p := softmax(logits[i])
					for _, top := range st.Top {
						worst = math.Max(worst, math.Abs(p[int(top[0])]-top[1]))
					}
				}
			}
			t.Logf("%s prec %d: max |Δp| %.5f", file, prec, worst)
			s.Close()
		}
	}
}
