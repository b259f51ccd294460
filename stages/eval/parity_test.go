package eval_test

import (
	"context"
	"math"
	"os"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/eval"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

const oracle = "../../testdata/oracle"

// openModel builds the default pipeline (export fp16 → reference runtime) for a model with
// the given overrides and returns a session on it and the text tokenized as
// llama-perplexity tokenizes it (add_special on, parse_special off).
func openModel(t *testing.T, model string, sets ...string) (stage.Session, []int32, *tokenizer.Tokenizer) {
	t.Helper()
	spec := pipeline.Default(model)
	for _, s := range sets {
		if err := spec.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := pipeline.Resolve(spec, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	arts, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := plan.OpenSession(ctx, arts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	f, err := gguf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(oracle + "/eval/little-stories.txt")
	if err != nil {
		t.Fatal(err)
	}
	return sess, tok.Encode(string(text), true, false), tok
}

// TestPerplexityParity runs llama-perplexity's method on the exported fp16 package of
// stories260K and compares with llama.cpp's figure from testdata/oracle/perplexity.json.
func TestPerplexityParity(t *testing.T) {
	sess, ids, tok := openModel(t, oracle+"/models/stories260K.gguf")
	r, err := eval.Perplexity(context.Background(), sess, ids, eval.Options{Context: 128, BOS: tok.BOS(), AddBOS: tok.AddBOS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tokens, ppl %.4f ± %.4f over %d chunks, %d scored; running %v", len(ids), r.PPL, r.PPLError, r.Chunks, r.Scored, r.Running)
	// perplexity.json: 7 chunks, 441 tokens scored (7 × 63).
	if r.Chunks != 7 || r.Scored != 441 {
		t.Errorf("chunks %d scored %d, want 7 and 441", r.Chunks, r.Scored)
	}
	// llama.cpp: 4.2179 on the F32 model; ±0.5% (our weights are fp16 in the package).
	if d := math.Abs(r.PPL/4.2179 - 1); d > 0.005 {
		t.Errorf("perplexity %.4f, llama.cpp 4.2179: off by %.2f%%, want ≤ 0.5%%", r.PPL, 100*d)
	}
}
