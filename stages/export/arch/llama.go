package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

// buildLlama emits llama (gguf-arch.md §4.5):
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h (+b), W_k·h (+b), W_v·h (+b); RoPE NORM on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) (+b) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(W_gate·h) ⊙ W_up·h) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)
//
// NORM (adjacent-pair) RoPE becomes the contract's NEOX form by permuting the rows of
// attn_q and attn_k within each head (LinearNormRope).
func buildLlama(fn *Func) (*mil.Value, error) {
	cfg, f := fn.Config, fn.F
	kqScale := 1 / math.Sqrt(float64(cfg.KeyLength))
	x := fn.Embed("token_embd.weight")
	for l := 0; l < cfg.BlockCount; l++ {
		blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

		h := fn.RMSNorm(x, blk("attn_norm.weight"))
		q := fn.LinearNormRope(h, blk("attn_q"), cfg.HeadCount)
		k := fn.LinearNormRope(h, blk("attn_k"), cfg.HeadCountKV)
		v := fn.Linear(h, blk("attn_v"))
		a := fn.Attention(l, q, k, v, 1, kqScale)
		x = f.Add(fn.Linear(a, blk("attn_output")), x)

		h = fn.RMSNorm(x, blk("ffn_norm.weight"))
		gate := f.Silu(fn.Linear(h, blk("ffn_gate")))
		up := fn.Linear(h, blk("ffn_up"))
		x = f.Add(fn.Linear(f.Mul(gate, up), blk("ffn_down")), x)
	}
	x = fn.RMSNorm(x, "output_norm.weight")
	return fn.LMHead(x, "output", "token_embd"), fn.Err()
}
