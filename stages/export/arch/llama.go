package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("llama", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNorm}, EmbedFunc: llamaEmbed, BlockFunc: llamaBlock, HeadFunc: llamaHead})
}

// llama (gguf-arch.md §4.5):
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
	blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

	h := fn.RMSNorm(x, blk("attn_norm.weight"))
	q, k, v := fn.Linear(h, blk("attn_q")), fn.Linear(h, blk("attn_k")), fn.Linear(h, blk("attn_v"))
	a := fn.Attention(l, q, k, v, 1, 1/math.Sqrt(float64(fn.Config.KeyLength)))
	x = f.Add(fn.Linear(a, blk("attn_output")), x)

	h = fn.RMSNorm(x, blk("ffn_norm.weight"))
	gate := f.Silu(fn.Linear(h, blk("ffn_gate")))
	up := fn.Linear(h, blk("ffn_up"))
	return f.Add(fn.Linear(f.Mul(gate, up), blk("ffn_down")), x)
}

func llamaHead(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "output", "token_embd")
}
