// Package oracle loads llama.cpp's reference numbers for the test models —
// testdata/oracle/llamacpp-reference.json — and compares our logits with them.
//
// It serves tests only: the tokenizer, the runtimes, the plugins and the
// command check themselves against the same file with the same tolerances
// (testdata/oracle/README.md). It holds no expectations of its own; every
// number comes from the file.
package oracle

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// ReferenceFile is the name of llama.cpp's reference numbers inside the oracle directory.
const ReferenceFile = "llamacpp-reference.json"

// ArgmaxMargin is the top-1/top-2 probability margin of llama.cpp's distribution above
// which our argmax must equal llama.cpp's (testdata/oracle/README.md); below it the two
// leading tokens are too close for fp16 or quantization noise to order them reliably.
const ArgmaxMargin = 0.02

// Reference is the content of ReferenceFile.
type Reference struct {
	Generator string           `json:"generator"` // e.g. "llama.cpp via node-llama-cpp@3.21.1"
	Models    map[string]Model `json:"models"`    // by file name under models/
}

// Model is llama.cpp's record of one test model.
type Model struct {
	Tokenize []Tokenize `json:"tokenize"`
	Prompts  []Prompt   `json:"prompts"`
}

// Tokenize is one text and llama.cpp's tokenization of it, with no BOS added: Tokens with
// parse_special off, WithSpecial with it on.
type Tokenize struct {
	Text        string  `json:"text"`
	Tokens      []int32 `json:"tokens"`
	WithSpecial []int32 `json:"with_special"`
}

// Prompt is one prompt fed to llama.cpp: its tokens (BOS first where the model adds one),
// the next-token distribution after each of them, and the greedy continuation.
type Prompt struct {
	Prompt     string  `json:"prompt"`
	Tokens     []int32 `json:"tokens"`
	Steps      []Step  `json:"steps"`
	Greedy     []int32 `json:"greedy"`
	GreedyText string  `json:"greedy_text"`
}

// Step is llama.cpp's next-token distribution after the prompt token at Pos.
type Step struct {
	Pos     int   `json:"pos"`
	TokenIn int32 `json:"token_in"`
	Argmax  int32 `json:"argmax"`
	// Top lists the most probable tokens, most probable first, as [token id, probability].
	Top [][2]float64 `json:"top"`
}

// Dir returns the path of testdata/oracle relative to the working directory, which for a
// test is its package's directory: it walks up to the module root (the directory holding
// go.mod).
func Dir() (string, error) {
	rel := "."
	for range 16 {
		if _, err := os.Stat(filepath.Join(rel, "go.mod")); err == nil {
			return filepath.Join(rel, "testdata", "oracle"), nil
		}
		rel = filepath.Join(rel, "..")
	}
	return "", errors.New("oracle: no go.mod above the working directory")
}

// Load reads ReferenceFile from the oracle directory dir.
func Load(dir string) (*Reference, error) {
	path := filepath.Join(dir, ReferenceFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	var ref Reference
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nil, fmt.Errorf("oracle: %s: %w", path, err)
	}
	if len(ref.Models) == 0 {
		return nil, fmt.Errorf("oracle: %s: no models", path)
	}
	return &ref, nil
}

// Softmax returns the probabilities of logits, computed in float64 after subtracting the
// maximum so that no exponential overflows.
func Softmax(logits []float32) []float64 {
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

// Argmax returns the index of the largest of v, the first one on ties (-1 for none).
func Argmax[T float32 | float64](v []T) int32 {
	if len(v) == 0 {
		return -1
	}
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// MaxDeltaP returns max |p(id) − llama.cpp's p| over the tokens the step lists. prob
// gives our probability of a token id.
func (s Step) MaxDeltaP(prob func(id int) float64) float64 {
	var worst float64
	for _, tp := range s.Top {
		worst = math.Max(worst, math.Abs(prob(int(tp[0]))-tp[1]))
	}
	return worst
}

// Margin is llama.cpp's top-1 minus top-2 probability (0 if fewer than two are listed).
func (s Step) Margin() float64 {
	if len(s.Top) < 2 {
		return 0
	}
	return s.Top[0][1] - s.Top[1][1]
}

// TopMargin is the top-1 minus the top-2 of the probabilities p (0 for fewer than two): a
// comparison of two runtimes holds their argmax equal where the reference's margin exceeds
// ArgmaxMargin, as the oracle comparison does.
func TopMargin(p []float64) float64 {
	if len(p) < 2 {
		return 0
	}
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range p {
		if x > a {
			a, b = x, a
		} else if x > b {
			b = x
		}
	}
	return a - b
}

// Decisive reports whether the margin exceeds ArgmaxMargin, so that our argmax must equal
// llama.cpp's.
func (s Step) Decisive() bool { return s.Margin() > ArgmaxMargin }

// Check compares the logits of one position with the step: it returns max |Δp| over the
// listed tokens, our argmax, and whether that argmax is acceptable — equal to llama.cpp's,
// or the step not Decisive.
func (s Step) Check(logits []float32) (maxDeltaP float64, argmax int32, argmaxOK bool) {
	p := Softmax(logits)
	maxDeltaP = s.MaxDeltaP(func(id int) float64 {
		if id < 0 || id >= len(p) {
			return 0 // a token outside our vocabulary has probability 0
		}
		return p[id]
	})
	argmax = Argmax(logits)
	return maxDeltaP, argmax, !s.Decisive() || argmax == s.Argmax
}
