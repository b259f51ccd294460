package arch

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("gpt2", Arch{Traits: Traits{Rope: RopeNone}, EmbedFunc: gpt2Embed, BlockFunc: gpt2Block, HeadFunc: gpt2Head})
}

// gpt2 (llama.cpp src/models/gpt2.cpp): learned positions, no RoPE.
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
	f := fn.F
	q, k, v := fn.QKV(l, fn.LayerNorm(x, Blk(l, "attn_norm")))
	x = f.Add(fn.SelfAttention(l, q, k, v, Attn{KQScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
	return f.Add(fn.FFN(l, fn.LayerNorm(x, Blk(l, "ffn_norm")), GELUTanh), x)
}

func gpt2Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.LayerNorm(x, "output_norm"), "output", "token_embd")
}
