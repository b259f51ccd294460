package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

// buildGPT2 emits gpt2 (gguf-arch.md §4.3): learned positions, no RoPE.
//
//	x = token_embd[t] + position_embd[p]
//	per layer: h = LayerNorm(x; attn_norm)
//	           q, k, v = fused attn_qkv split [q | k | v] (+ bias)
//	           x = W_o·attention(q, k, v; scores·1/√head_dim) + b_o + x
//	           h = LayerNorm(x; ffn_norm)
//	           x = W_down·GELU(W_up·h + b_up) + b_down + x
//	logits = W_out·LayerNorm(x; output_norm), W_out = output, else token_embd
func buildGPT2(fn *Func) (*mil.Value, error) {
	cfg, f := fn.Config, fn.F
	if fn.C > cfg.ContextLength {
		return nil, fmt.Errorf("export: %s: gpt2 learned %d positions; cannot export a context of %d", fn.File.Path, cfg.ContextLength, fn.C)
	}
	kqScale := 1 / math.Sqrt(float64(cfg.KeyLength))
	nq, nk := cfg.HeadCount*cfg.KeyLength, cfg.HeadCountKV*cfg.KeyLength
	nv := cfg.HeadCountKV * cfg.ValueLength
	pos := f.Gather(fn.Weight("position_embd.weight"), fn.PositionIDs, 0) // [N, n_embd]
	x := f.Add(fn.Embed("token_embd.weight"), pos)
	for l := 0; l < cfg.BlockCount; l++ {
		blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

		h := fn.LayerNorm(x, blk("attn_norm"))
		q := fn.LinearRows(h, blk("attn_qkv"), 0, nq)
		k := fn.LinearRows(h, blk("attn_qkv"), nq, nq+nk)
		v := fn.LinearRows(h, blk("attn_qkv"), nq+nk, nq+nk+nv)
		x = f.Add(fn.Linear(fn.Attention(l, q, k, v, 1, kqScale), blk("attn_output")), x)

		h = fn.LayerNorm(x, blk("ffn_norm"))
		m := fn.Linear(f.Gelu(fn.Linear(h, blk("ffn_up")), "TANH_APPROXIMATION"), blk("ffn_down"))
		x = f.Add(m, x)
	}
	x = fn.LayerNorm(x, "output_norm")
	return fn.LMHead(x, "output", "token_embd"), fn.Err()
}
