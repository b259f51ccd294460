package plugin

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/builtin"
)

// storiesPlan resolves load → export → compile → runtime → sample on stories260K, every
// stage with the given isolation.
func storiesPlan(b *testing.B, h *Host, isolation string) *pipeline.Plan {
	mk := func(id, uses string, with map[string]any) *pipeline.StageSpec {
		return &pipeline.StageSpec{ID: id, Uses: uses, With: with, Isolation: isolation}
	}
	spec := &pipeline.Spec{Name: "stories", Model: stories, Stages: []*pipeline.StageSpec{
		mk("load", "loader/gguf", map[string]any{}),
		mk("export", "export/mil", map[string]any{"context": 128, "prefill_chunk": 32}),
		mk("compile", "compile/coreml", map[string]any{}),
		mk("runtime", "runtime/reference", map[string]any{}),
		mk("sample", "sampler/default", map[string]any{"temperature": 0.0}),
	}}
	reg := builtin.Registry()
	reg.External = h.External
	plan, err := pipeline.Resolve(spec, reg)
	if err != nil {
		b.Fatal(err)
	}
	return plan
}

// One generation step's sampler work — Accept of the previous token and Sample over
// stories260K's 512 logits — in process and through a sampler plugin.
func BenchmarkSamplerToken(b *testing.B) {
	for _, isolation := range []string{"inprocess", "process"} {
		b.Run(isolation, func(b *testing.B) {
			h := NewHost(Options{})
			defer h.Close()
			ts, err := storiesPlan(b, h, isolation).NewSampler(512)
			if err != nil {
				b.Fatal(err)
			}
			logits := make([]float32, 512)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range logits {
				logits[i] = float32(rng.NormFloat64())
			}
			tok := int32(0)
			b.ResetTimer()
			for b.Loop() {
				ts.Accept(tok)
				tok = ts.Sample(logits)
			}
		})
	}
}

// The whole stories pipeline — build every stage, open the session, prefill 5 tokens,
// decode 16 greedily — with every stage in process or as a plugin process.
func BenchmarkStoriesPipeline(b *testing.B) {
	for _, isolation := range []string{"inprocess", "process"} {
		b.Run(isolation, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				h := NewHost(Options{})
				plan := storiesPlan(b, h, isolation)
				built, err := plan.Build(ctx, pipeline.BuildOptions{WorkDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				sess, err := plan.OpenSession(ctx, built)
				if err != nil {
					b.Fatal(err)
				}
				ts, err := plan.NewSampler(sess.VocabSize())
				if err != nil {
					b.Fatal(err)
				}
				rows, err := sess.Prefill(ctx, []int32{1, 403, 407, 261, 378})
				if err != nil {
					b.Fatal(err)
				}
				logits := rows[len(rows)-1]
				for i := 0; i < 16; i++ {
					tok := ts.Sample(logits)
					ts.Accept(tok)
					if logits, err = sess.Decode(ctx, tok); err != nil {
						b.Fatal(err)
					}
				}
				sess.Close()
				h.Close()
			}
		})
	}
}
