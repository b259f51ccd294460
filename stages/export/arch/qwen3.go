package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

// qwen3 (llama.cpp src/models/qwen3.cpp): qwen2 without biases, with each head of q and k
// RMS-normalised before RoPE, and a head dimension of its own (attention.key_length, 128 in
// Qwen3 whatever n_embd/n_head is), so attn_q has n_head·head_dim rows, not n_embd.
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h, W_k·h, W_v·h
//	           q, k = RMSNorm per head (attn_q_norm, attn_k_norm); RoPE NEOX on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(W_gate·h) ⊙ W_up·h) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)

func init() {
	Register("qwen3", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox},
		EmbedFunc: llamaEmbed, BlockFunc: qwen3Block, HeadFunc: llamaHead})
}

func qwen3Block(fn *Func, l int, x *mil.Value) *mil.Value {
	f := fn.F
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	q, k = fn.HeadNorm(q, Blk(l, "attn_q_norm.weight")), fn.HeadNorm(k, Blk(l, "attn_k_norm.weight"))
	x = f.Add(fn.SelfAttention(l, q, k, v, Attn{KQScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
	return f.Add(fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), SiLU), x)
}
