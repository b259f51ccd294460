package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("phi2", Arch{Traits: Traits{Rope: RopeNeox}, EmbedFunc: phi2Embed, BlockFunc: phi2Block, HeadFunc: phi2Head})
}

// phi2 (llama.cpp src/models/phi2.cpp): one LayerNorm feeds attention and MLP in parallel.
//
//	x = token_embd[t]
//	per layer: h = LayerNorm(x; attn_norm)
//	           q, k, v = fused attn_qkv split [q | k | v], or attn_q/k/v (+ biases)
//	           RoPE NEOX on the first n_rot dims of each head, then q ·= 1/√head_dim
//	           a = W_o·attention(q, k, v; scores unscaled) + b_o
//	           m = W_down·GELU(W_up·h + b_up) + b_down
//	           x = (a + m) + x
//	logits = W_out·LayerNorm(x; output_norm) + output.bias

func phi2Embed(fn *Func) *mil.Value { return fn.Embed("token_embd.weight") }

func phi2Block(fn *Func, l int, x *mil.Value) *mil.Value {
	f := fn.F
	h := fn.LayerNorm(x, Blk(l, "attn_norm"))
	q, k, v := fn.QKV(l, h)
	a := fn.SelfAttention(l, q, k, v, Attn{QScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))})
	return f.Add(f.Add(a, fn.FFN(l, h, GELUTanh)), x)
}

func phi2Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.LayerNorm(x, "output_norm"), "output")
}
