package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

func init() {
	Register("gemma", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox}, EmbedFunc: gemmaEmbed, BlockFunc: gemmaBlock, HeadFunc: gemmaHead})
}

// gemma 1 (llama.cpp src/models/gemma.cpp):
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
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	x = f.Add(fn.SelfAttention(l, q, k, v, Attn{QScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
	return f.Add(fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), GELUTanh), x)
}

func gemmaHead(fn *Func, x *mil.Value) *mil.Value {
	return fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "token_embd")
}
