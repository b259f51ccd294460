package arch

import (
	"math"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// gemma2 (llama.cpp src/models/gemma2.cpp): gemma with norms after attention and after the
// feed-forward block, soft-capped attention scores and logits, and a sliding window on every
// other layer (layers 0, 2, … are local by default).
//
//	x = token_embd[t]·√n_embd
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h, W_k·h, W_v·h; RoPE NEOX on q, k; q ·= query scale (gemmaQueryScale)
//	           s = cap_a·tanh(q·kᵀ/cap_a) + mask (causal; on local layers also the window)
//	           x = RMSNorm(W_o·softmax(s)·v; post_attention_norm) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = RMSNorm(W_down·(GELU_tanh(W_gate·h) ⊙ W_up·h); post_ffw_norm) + x
//	logits = cap_f·tanh(token_embd·RMSNorm(x; output_norm)/cap_f)   (always tied)

func init() {
	Register("gemma2", Arch{Traits: Traits{RMSNorm: true, Rope: RopeNeox}, ConfigFunc: gemma2Config,
		EmbedFunc: gemmaEmbed, BlockFunc: gemma2Block, HeadFunc: gemma2Head})
}

// gemma2Config reads the window and the caps with llama.cpp's defaults: window 4096 on every
// other layer, the local RoPE base and scale the global ones, caps 50 (scores) and 30
// (logits).
func gemma2Config(f *gguf.File, c *Config) error {
	c.SlidingWindow, c.SlidingPattern, c.RopeBaseSWA, c.RopeScaleSWA = 4096, 2, c.RopeBase, c.RopeScale
	c.AttnSoftCap, c.FinalSoftCap = 50, 30
	return readGemmaKeys(f, c)
}

func readGemmaKeys(f *gguf.File, c *Config) error {
	return ReadOptional(f, c,
		OptionalKey{"attention.sliding_window", &c.SlidingWindow},
		OptionalKey{"attention.sliding_window_pattern", &c.SlidingPattern},
		OptionalKey{"rope.freq_base_swa", &c.RopeBaseSWA},
		OptionalKey{"attn_logit_softcapping", &c.AttnSoftCap},
		OptionalKey{"final_logit_softcapping", &c.FinalSoftCap})
}

// gemmaQueryScale is what q is multiplied by: 1/√head_dim, or 1/√(n_embd/n_head) for the
// 27B models, which llama.cpp recognises by their layer count (46 for Gemma 2, 62 for
// Gemma 3) after gemma_pytorch's config.py (query_pre_attn_scalar).
func gemmaQueryScale(c *Config, layers27B int) float64 {
	if c.BlockCount == layers27B {
		return 1 / math.Sqrt(float64(c.EmbeddingLen/c.HeadCount))
	}
	return 1 / math.Sqrt(float64(c.KeyLength))
}

func gemma2Block(fn *Func, l int, x *mil.Value) *mil.Value {
	f, cfg := fn.F, fn.Config
	q, k, v := fn.QKV(l, fn.RMSNorm(x, Blk(l, "attn_norm.weight")))
	a := fn.SelfAttention(l, q, k, v, Attn{QScale: gemmaQueryScale(cfg, 46), SoftCap: float64(cfg.AttnSoftCap), Local: cfg.Local(l)})
	x = f.Add(fn.RMSNorm(a, Blk(l, "post_attention_norm.weight")), x)
	m := fn.GatedFFN(l, fn.RMSNorm(x, Blk(l, "ffn_norm.weight")), GELUTanh)
	return f.Add(fn.RMSNorm(m, Blk(l, "post_ffw_norm.weight")), x)
}

func gemma2Head(fn *Func, x *mil.Value) *mil.Value {
	return fn.softCapLogits(fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "token_embd"))
}

// softCapLogits applies the final-logit soft-cap when the model has one.
func (fn *Func) softCapLogits(logits *mil.Value) *mil.Value {
	if c := fn.Config.FinalSoftCap; c != 0 {
		return fn.SoftCap(logits, float64(c))
	}
	return logits
}
