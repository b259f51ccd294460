package runtime_test

import (
	"context"
	"slices"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/runtime"
)

// TestGreedyArchitectures: on every architecture fixture of issue 12, each prompt's 24
// greedy tokens (prefill, then decode — across the sliding windows of gemma2/gemma3 and
// past the 16-token prefill chunk) are llama.cpp's, token for token while the choice is not
// a near tie: the continuation may part from llama.cpp's only at a step where our top-1 and
// top-2 probabilities are within 0.02 (the oracle's margin), where fp16 rounding may pick
// either. Measured: every token of every prompt but tiny-llama3's "Once upon a time", whose
// first token is a tie (llama.cpp 0.1524 vs 0.1494; ours 0.1509 vs 0.1509).
func TestGreedyArchitectures(t *testing.T) {
	o := loadOracle(t)
	for _, file := range []string{"tiny-qwen2-f16.gguf", "tiny-qwen3-f16.gguf", "tiny-llama3-f16.gguf", "tiny-llama-yarn-f16.gguf",
		"tiny-phi3-f16.gguf", "tiny-phi3-short-f16.gguf", "tiny-gemma2-f16.gguf", "tiny-gemma3-f16.gguf"} {
		s, err := runtime.OpenReference(exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		matched, total := 0, 0
		for _, pr := range o.Models[file].Prompts {
			s.Reset()
			logits, err := s.Prefill(ctx, pr.Tokens)
			if err != nil {
				t.Fatal(err)
			}
			last := slices.Clone(logits[len(logits)-1])
			for i, want := range pr.Greedy {
				p := oracle.Softmax(last)
				got := oracle.Argmax(last)
				if got != want {
					q := slices.Clone(p)
					slices.Sort(q)
					if margin := q[len(q)-1] - q[len(q)-2]; margin > 0.02 {
						t.Errorf("%s %q: greedy token %d is %d, llama.cpp %d (our margin %.3f)", file, pr.Prompt, i, got, want, margin)
					}
					break
				}
				matched++
				if last, err = s.Decode(ctx, got); err != nil {
					t.Fatal(err)
				}
			}
			total += len(pr.Greedy)
		}
		t.Logf("%s: %d of %d greedy tokens as llama.cpp's", file, matched, total)
		s.Close()
	}
}
