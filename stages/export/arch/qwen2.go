package arch

// qwen2 (llama.cpp src/models/qwen2.cpp): llama with biases on the q, k and v projections
// (QKV adds them) and NEOX rotary embedding; its rope base comes from the file (1e6).
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h + b_q, W_k·h + b_k, W_v·h + b_v; RoPE NEOX on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(W_gate·h) ⊙ W_up·h) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)

func init() {
	Register("qwen2", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox},
		EmbedFunc: llamaEmbed, BlockFunc: llamaBlock, HeadFunc: llamaHead})
}
