package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("gpt2", Arch{Traits: Traits{Rope: RopeNone}, EmbedFunc: gpt2Embed, BlockFunc: gpt2Block, HeadFunc: gpt2Head})
}

// gpt2 (gguf-arch.md §4.3): learned positions, no RoPE.
//
//	x = token_embd[t] + position_embd[p]
//	per layer: h = LayerNorm(x; attn_norm)
//	           q, k, v = fused attn_qkv split [q | k | v] (+ bias)
//	           x = W_o·attention(q, k, v; scores·1/√head_dim) + b_o + x
//	           h = LayerNorm(x; ffn_norm)
//	           x = W_down·GELU(W_up·h + b_up) + b_down + x
//	logits = W_out·LayerNorm(x; output_norm), W_out = output, else token_embd

func gpt2Embed(fn *Func) *mil.Value {
	if cfg := fn.Config; fn.C > cfg.ContextLength {
		fn.fail(fmt.Errorf("export: %s: gpt2 learned %d positions; cannot export a context of %d", fn.File.Path, cfg.ContextLength, fn.C))
		return nil
	}
	return fn.F.Add(fn.Embed("token_embd.weight"), fn.EmbedPositions("position_embd.weight"))
}

func gpt2Block(fn *Func, l int, x *mil.Value) *mil.Value {
	cfg, f := fn.Config, fn.F
	nq, nk := cfg.HeadCount*cfg.KeyLength, cfg.HeadCountKV*cfg.KeyLength
	nv := cfg.HeadCountKV * cfg.ValueLength
	blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

	h := fn.LayerNorm(x, blk("attn_norm"))
	q := fn.LinearRows(h, blk("attn_qkv"), 0, nq)
	k := fn.LinearRows(h, blk("attn_qkv"), nq, nq+nk)
	v := fn.LinearRows(h, blk("attn_qkv"), nq+nk, nq+nk+nv)
	x = f.Add(fn.Linear(fn.Attention(l, q, k, v, 1, 1/math.Sqrt(float64(cfg.KeyLength))), blk("attn_output")), x)

	h = fn.LayerNorm(x, blk("ffn_norm"))
	m := fn.Linear(f.Gelu(fn.Linear(h, blk("ffn_up")), "TANH_APPROXIMATION"), blk("ffn_down"))
	return f.Add(m, x)
}

func gpt2Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.LayerNorm(x, "output_norm"), "output", "token_embd")
}
