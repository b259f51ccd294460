package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

// phi3 (llama.cpp src/models/phi3.cpp): a llama-like pre-norm model with fused projections
// and LongRoPE.
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = fused attn_qkv split [q | k | v] (or attn_q/k/v)
//	           RoPE NEOX with LongRoPE factors (rope_factors_long when the context exceeds
//	           rope.scaling.original_context_length, else _short; cos, sin ·= attn_factor),
//	           then q ·= 1/√head_dim
//	           x = W_o·attention(q, k, v; scores unscaled) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(g) ⊙ u) + x, [g | u] = W_up·h (gate and up fused in ffn_up)
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)
//
// phi3.attention.sliding_window is ignored, as llama.cpp ignores it (it disables Phi-3's
// sliding window: the converters do not record which layers use it).

func init() {
	Register("phi3", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox},
		EmbedFunc: llamaEmbed, BlockFunc: phi3Block, HeadFunc: llamaHead})
}

func phi3Block(fn *Func, l int, x *mil.Value) *mil.Value {
	f := fn.F
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	x = f.Add(fn.SelfAttention(l, q, k, v, Attn{QScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
	return f.Add(fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), SiLU), x)
}
