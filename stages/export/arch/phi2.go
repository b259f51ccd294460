package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("phi2", Arch{Traits: Traits{Rope: RopeNeox}, EmbedFunc: phi2Embed, BlockFunc: phi2Block, HeadFunc: phi2Head})
}

// phi2 (gguf-arch.md §4.4): one LayerNorm feeds attention and MLP in parallel.
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
	cfg, f := fn.Config, fn.F
	nq, nk := cfg.HeadCount*cfg.KeyLength, cfg.HeadCountKV*cfg.KeyLength
	nv := cfg.HeadCountKV * cfg.ValueLength
	blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

	h := fn.LayerNorm(x, blk("attn_norm"))
	var q, k, v *mil.Value
	if fn.Has(blk("attn_qkv.weight")) {
		q = fn.LinearRows(h, blk("attn_qkv"), 0, nq)
		k = fn.LinearRows(h, blk("attn_qkv"), nq, nq+nk)
		v = fn.LinearRows(h, blk("attn_qkv"), nq+nk, nq+nk+nv)
	} else {
		q, k, v = fn.Linear(h, blk("attn_q")), fn.Linear(h, blk("attn_k")), fn.Linear(h, blk("attn_v"))
	}
	a := fn.Linear(fn.Attention(l, q, k, v, 1/math.Sqrt(float64(cfg.KeyLength)), 1), blk("attn_output"))
	m := fn.Linear(f.Gelu(fn.Linear(h, blk("ffn_up")), "TANH_APPROXIMATION"), blk("ffn_down"))
	return f.Add(f.Add(a, m), x)
}

func phi2Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.LayerNorm(x, "output_norm"), "output")
}
