package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("gemma", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox}, EmbedFunc: gemmaEmbed, BlockFunc: gemmaBlock, HeadFunc: gemmaHead})
}

// gemma 1 (gguf-arch.md §4.6):
//
//	x = token_embd[t]·√n_embd
//	per layer: h = RMSNorm(x; attn_norm)      (the converter stored the weights as 1 + w)
//	           q, k, v = W_q·h, W_k·h, W_v·h; RoPE NEOX on all dims, then q ·= 1/√head_dim
//	           x = W_o·attention(q, k, v; scores unscaled, MQA/GQA) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(GELU_tanh(W_gate·h) ⊙ W_up·h) + x
//	logits = token_embd·RMSNorm(x; output_norm)   (always tied)

func gemmaEmbed(fn *Func) *mil.Value {
	return fn.F.Mul(fn.Embed("token_embd.weight"), fn.Scalar(math.Sqrt(float64(fn.Config.EmbeddingLen))))
}

func gemmaBlock(fn *Func, l int, x *mil.Value) *mil.Value {
	f := fn.F
	blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

	h := fn.RMSNorm(x, blk("attn_norm.weight"))
	q, k, v := fn.Linear(h, blk("attn_q")), fn.Linear(h, blk("attn_k")), fn.Linear(h, blk("attn_v"))
	a := fn.Attention(l, q, k, v, 1/math.Sqrt(float64(fn.Config.KeyLength)), 1)
	x = f.Add(fn.Linear(a, blk("attn_output")), x)

	h = fn.RMSNorm(x, blk("ffn_norm.weight"))
	gate := f.Gelu(fn.Linear(h, blk("ffn_gate")), "TANH_APPROXIMATION")
	up := fn.Linear(h, blk("ffn_up"))
	return f.Add(fn.Linear(f.Mul(gate, up), blk("ffn_down")), x)
}

func gemmaHead(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "token_embd")
}
