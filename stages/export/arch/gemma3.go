package arch

import (
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// gemma3 text models (llama.cpp src/models/gemma3.cpp): gemma2 without the attention
// soft-cap, with per-head q/k RMSNorm, and a local/global layer pattern (five local layers
// to one global by default) whose local layers rotate with their own, unscaled RoPE base.
//
//	x = token_embd[t]·√n_embd
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h, W_k·h, W_v·h; q, k = RMSNorm per head (attn_q_norm, attn_k_norm)
//	           RoPE NEOX on q, k (local layers: base rope.freq_base_swa, no scaling)
//	           q ·= query scale (gemmaQueryScale)
//	           x = RMSNorm(W_o·attention(q, k, v; mask causal, local: also the window); post_attention_norm) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = RMSNorm(W_down·(GELU_tanh(W_gate·h) ⊙ W_up·h); post_ffw_norm) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd; soft-capped when
//	         the file declares final_logit_softcapping

func init() {
	Register("gemma3", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox}, ConfigFunc: gemma3Config,
		EmbedFunc: gemmaEmbed, BlockFunc: gemma3Block, HeadFunc: gemma3Head})
}

// gemma3Config reads llama.cpp's keys and defaults: a sliding window only when the file
// declares one (pattern 6), the local RoPE base 10000 and scale 1, no attention soft-cap.
func gemma3Config(f *gguf.File, c *Config) error {
	c.SlidingPattern, c.RopeBaseSWA, c.RopeScaleSWA = 6, 10000, 1
	if err := readGemmaKeys(f, c); err != nil {
		return err
	}
	c.AttnSoftCap = 0 // attn_logit_softcapping is gone from Gemma 3 (llama.cpp ignores it)
	if c.SlidingWindow == 0 {
		c.SlidingPattern = 0
	}
	return nil
}

func gemma3Block(fn *Func, l int, x *mil.Value) *mil.Value {
	f, cfg := fn.F, fn.Config
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	q, k = fn.HeadNorm(q, Blk(l, "attn_q_norm.weight")), fn.HeadNorm(k, Blk(l, "attn_k_norm.weight"))
	a := fn.SelfAttention(l, q, k, v, Attn{QScale: gemmaQueryScale(cfg, 62), Local: cfg.Local(l)})
	x = f.Add(fn.RMSNorm(a, Blk(l, "post_attention_norm.weight")), x)
	m := fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), GELUTanh)
	return f.Add(fn.RMSNorm(m, Blk(l, "post_ffw_norm.weight")), x)
}

func gemma3Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.softCapLogits(fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "output", "token_embd"))
}
