package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("llama", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNorm}, EmbedFunc: llamaEmbed, BlockFunc: llamaBlock, HeadFunc: llamaHead})
}

// llama (llama.cpp src/models/llama.cpp):
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h (+b), W_k·h (+b), W_v·h (+b); RoPE NORM on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) (+b) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(W_gate·h) ⊙ W_up·h) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)
//
// NORM (adjacent-pair) RoPE is applied by Rope after reordering each q/k head in the graph.

func llamaEmbed(fn *Func) *mil.Value { return fn.Embed("token_embd.weight") }

func llamaBlock(fn *Func, l int, x *mil.Value) *mil.Value {
	f := fn.F
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	x = f.Add(fn.SelfAttention(l, q, k, v, Attn{KQScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
	return f.Add(fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), SiLU), x)
}

func llamaHead(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "output", "token_embd")
}
