package arch

import (
	"fmt"
	"math"
	"slices"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// RopeStyle says how rotary embedding pairs dimensions (ggml rope modes).
type RopeStyle int

const (
	RopeNone RopeStyle = iota // learned positions (gpt2)
	RopeNorm                  // adjacent pairs (x[2i], x[2i+1]) — llama
	RopeNeox                  // halves (x[i], x[i+n_rot/2]) — phi2, gemma, qwen2
)

func (r RopeStyle) String() string {
	return [...]string{"none", "norm", "neox"}[r]
}

// MarshalText writes the style's name.
func (r RopeStyle) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Traits are what an architecture declares about its hyper-parameters beyond the standard
// keys: its norm and its rotary embedding.
type Traits struct {
	RMSNorm bool      // RMSNorm (…layer_norm_rms_epsilon) rather than LayerNorm (…layer_norm_epsilon)
	Rope    RopeStyle // RopeNorm, RopeNeox, or RopeNone for learned positions
}

// Config is the typed hyper-parameter set of a model, read by its architecture's
// ConfigReader (ReadConfig). The JSON names are those `lilims inspect --json` prints.
type Config struct {
	Arch          string    `json:"arch"`
	ContextLength int       `json:"context_length"`
	EmbeddingLen  int       `json:"n_embd"`  // n_embd
	BlockCount    int       `json:"n_layer"` // n_layer
	FeedForward   int       `json:"n_ff"`    // n_ff
	HeadCount     int       `json:"n_head"`
	HeadCountKV   int       `json:"n_head_kv"`
	KeyLength     int       `json:"head_dim_k"` // head dim of K (and Q)
	ValueLength   int       `json:"head_dim_v"` // head dim of V
	NormEps       float32   `json:"norm_eps"`
	RMSNorm       bool      `json:"rms_norm"` // RMSNorm (llama, gemma) rather than LayerNorm (gpt2, phi2)
	RopeDims      int       `json:"n_rot"`    // n_rot
	RopeBase      float32   `json:"rope_freq_base"`
	RopeScale     float32   `json:"rope_freq_scale"` // freq_scale = 1/rope.scaling.factor; 1 when absent
	Rope          RopeStyle `json:"rope"`
	VocabSize     int       `json:"n_vocab"`

	// RoPE scaling as the file declares it (llama.cpp src/llama-model.cpp, load_hparams;
	// src/llama-context.cpp for the YaRN magnitude). Zero values mean "not declared".
	RopeScaling    string  `json:"rope_scaling,omitempty"`     // rope.scaling.type: none, linear, yarn, longrope
	RopeOrigCtx    int     `json:"rope_orig_ctx,omitempty"`    // rope.scaling.original_context_length
	RopeAttnFactor float32 `json:"rope_attn_factor,omitempty"` // rope.scaling.attn_factor: scales cos and sin
	YarnBetaFast   float32 `json:"yarn_beta_fast,omitempty"`   // YaRN only (default 32)
	YarnBetaSlow   float32 `json:"yarn_beta_slow,omitempty"`   // YaRN only (default 1)

	// Sliding-window attention and soft-capping, read by the architectures that declare
	// them (gemma2, gemma3); zero: none.
	SlidingWindow  int     `json:"sliding_window,omitempty"`         // attention.sliding_window
	SlidingPattern int     `json:"sliding_window_pattern,omitempty"` // of every SlidingPattern layers, all but the last are local (0: all)
	RopeBaseSWA    float32 `json:"rope_freq_base_swa,omitempty"`     // RoPE base of the local layers
	RopeScaleSWA   float32 `json:"rope_freq_scale_swa,omitempty"`    // their freq_scale (gemma2: the global one; gemma3: 1)
	AttnSoftCap    float32 `json:"attn_logit_softcapping,omitempty"`
	FinalSoftCap   float32 `json:"final_logit_softcapping,omitempty"`
}

// Local reports whether layer l attends within the sliding window (llama.cpp
// src/llama-hparams.cpp, set_swa_pattern: layer l is local unless l % pattern == pattern−1).
func (c *Config) Local(l int) bool {
	return c.SlidingWindow > 0 && (c.SlidingPattern == 0 || l%c.SlidingPattern < c.SlidingPattern-1)
}

// OrigContext is the context the model's rotary embedding was trained at before scaling:
// rope.scaling.original_context_length, else context_length (llama.cpp's n_ctx_orig_yarn).
func (c *Config) OrigContext() int {
	if c.RopeOrigCtx > 0 {
		return c.RopeOrigCtx
	}
	return c.ContextLength
}

// A ConfigReader reads the hyper-parameters of an architecture. Every registered Arch is
// one; a third-party Builder that is not an Arch implements it itself.
type ConfigReader interface {
	Config(f *gguf.File) (*Config, error)
}

// Config implements ConfigReader: the standard keys, read with a.Traits, then a.ConfigFunc
// for the architecture's own keys and checks.
func (a Arch) Config(f *gguf.File) (*Config, error) {
	c, err := readStandard(f, a.Traits)
	if err != nil {
		return nil, err
	}
	if a.ConfigFunc != nil {
		if err := a.ConfigFunc(f, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// ReadConfig reads the typed hyper-parameters of f with the reader of its registered
// architecture: the one hyper-parameter reader of lilims (inspect, calibration and export
// all use it). An unknown architecture gets Lookup's error.
func ReadConfig(f *gguf.File) (*Config, error) {
	c, _, err := Resolve(f)
	return c, err
}

// Resolve returns the builder registered for f's general.architecture and the model's
// hyper-parameters, read by that builder. An unknown architecture gets Lookup's error,
// which points to plugins.
func Resolve(f *gguf.File) (*Config, Builder, error) {
	name := f.Architecture()
	if name == "" {
		return nil, nil, fmt.Errorf("export: %s: general.architecture is missing", f.Path)
	}
	b, err := Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	r, ok := b.(ConfigReader)
	if !ok {
		return nil, nil, fmt.Errorf("export: %s: the builder registered for %q reads no configuration (register an arch.Arch, or implement arch.ConfigReader)", f.Path, name)
	}
	cfg, err := r.Config(f)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	if cfg == nil || cfg.Arch != name {
		return nil, nil, fmt.Errorf("export: %s: the %s configuration reader returned a configuration for %q", f.Path, name, archOf(cfg))
	}
	if cfg.BlockCount < 1 || cfg.EmbeddingLen < 1 || cfg.HeadCount < 1 || cfg.HeadCountKV < 1 ||
		cfg.HeadCount%cfg.HeadCountKV != 0 || cfg.KeyLength < 1 || cfg.ValueLength < 1 || cfg.VocabSize < 1 {
		// A plugin's reader is third-party code: check what the graph builders divide by.
		return nil, nil, fmt.Errorf("export: %s: %s configuration is inconsistent: %d layers, n_embd %d, %d heads (%d KV) of %d/%d, %d tokens",
			f.Path, name, cfg.BlockCount, cfg.EmbeddingLen, cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength, cfg.VocabSize)
	}
	return cfg, b, nil
}

func archOf(cfg *Config) string {
	if cfg == nil {
		return "nothing"
	}
	return cfg.Arch
}

// ropeScalings are the rope.scaling.type values lilims implements: all of llama.cpp's
// LLAMA_ROPE_SCALING_TYPES (src/llama-model.cpp). LongRoPE's factors are the
// rope_factors_long/short tensors (Func.scaling); phi3 files use them without the type.
var ropeScalings = []string{"none", "linear", "yarn", "longrope"}

// readStandard reads the keys every llama-like architecture shares (llama.cpp
// src/llama-model.cpp, load_hparams): ARCH.context_length, .embedding_length, .block_count,
// .feed_forward_length, .attention.head_count (required); .attention.head_count_kv,
// .attention.key_length, .attention.value_length, .rope.dimension_count, .rope.freq_base,
// .rope.scaling.* (optional, with llama.cpp's defaults); the norm epsilon named after
// t.RMSNorm; n_vocab, the length of tokenizer.ggml.tokens. Every value is checked before it
// sizes anything, and an error names the key (or tensor) at fault.
func readStandard(f *gguf.File, t Traits) (*Config, error) {
	name, err := f.GetString("general.architecture")
	if err != nil {
		return nil, err
	}
	c := &Config{Arch: name, RMSNorm: t.RMSNorm, Rope: t.Rope, RopeScale: 1, RopeBase: 10000}
	key := func(k string) string { return name + "." + k }
	bad := func(k, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %s", f.Path, key(k), fmt.Sprintf(format, a...))
	}
	// intKey reads key into dst; def < 0 makes it required. 1<<30 is far beyond any real
	// dimension.
	intKey := func(k string, dst *int, def int) {
		if err != nil {
			return
		}
		if def >= 0 && !f.Has(key(k)) {
			*dst = def
			return
		}
		if *dst, err = f.GetLayerInt(key(k)); err == nil && (*dst <= 0 || *dst > 1<<30) {
			err = bad(k, "%d is out of range", *dst)
		}
	}
	intKey("context_length", &c.ContextLength, -1)
	intKey("embedding_length", &c.EmbeddingLen, -1)
	intKey("block_count", &c.BlockCount, -1)
	intKey("feed_forward_length", &c.FeedForward, -1)
	intKey("attention.head_count", &c.HeadCount, -1)
	if err != nil {
		return nil, err
	}
	intKey("attention.head_count_kv", &c.HeadCountKV, c.HeadCount)
	intKey("attention.key_length", &c.KeyLength, c.EmbeddingLen/c.HeadCount)
	intKey("attention.value_length", &c.ValueLength, c.EmbeddingLen/c.HeadCount)
	if t.Rope != RopeNone {
		intKey("rope.dimension_count", &c.RopeDims, c.KeyLength)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case c.HeadCount%c.HeadCountKV != 0:
		return nil, bad("attention.head_count_kv", "%d does not divide head_count %d", c.HeadCountKV, c.HeadCount)
	case c.KeyLength < 1 || c.ValueLength < 1:
		return nil, bad("attention.key_length", "head dimensions %d/%d: n_embd %d over %d heads", c.KeyLength, c.ValueLength, c.EmbeddingLen, c.HeadCount)
	case t.Rope != RopeNone && (c.RopeDims%2 != 0 || c.RopeDims > c.KeyLength):
		return nil, bad("rope.dimension_count", "%d is not an even number of dimensions within the head (%d)", c.RopeDims, c.KeyLength)
	}
	epsKey := key("attention.layer_norm_epsilon")
	if t.RMSNorm {
		epsKey = key("attention.layer_norm_rms_epsilon")
	}
	eps, err := f.GetFloat(epsKey)
	if err != nil {
		return nil, err
	}
	c.NormEps = float32(eps)
	floatKey := func(k string, dst *float32) error {
		if !f.Has(key(k)) {
			return nil
		}
		v, err := f.GetFloat(key(k))
		*dst = float32(v)
		return err
	}
	if err := floatKey("rope.freq_base", &c.RopeBase); err != nil {
		return nil, err
	}
	if t.Rope != RopeNone {
		if err := readRopeScaling(f, c, key, bad, floatKey); err != nil {
			return nil, err
		}
	}
	return c, readVocab(f, c)
}

// readRopeScaling reads rope.scaling.* as llama.cpp does: the type defaults to linear, the
// factor (or the older rope.scale_linear) gives freq_scale = 1/factor, "none" never scales,
// and YaRN takes its betas from the file or llama.cpp's defaults (32, 1).
func readRopeScaling(f *gguf.File, c *Config, key func(string) string, bad func(string, string, ...any) error, floatKey func(string, *float32) error) error {
	if f.Has(key("rope.scaling.type")) {
		s, err := f.GetString(key("rope.scaling.type"))
		if err != nil {
			return err
		}
		if !slices.Contains(ropeScalings, s) {
			return bad("rope.scaling.type", "%q is not implemented (lilims implements %v)", s, ropeScalings)
		}
		c.RopeScaling = s
	}
	var factor float32
	for _, k := range []string{"rope.scaling.factor", "rope.scale_linear"} {
		if f.Has(key(k)) {
			if err := floatKey(k, &factor); err != nil {
				return err
			}
			break
		}
	}
	if factor < 0 {
		return bad("rope.scaling.factor", "%g is negative", factor)
	}
	if factor != 0 && c.RopeScaling != "none" {
		c.RopeScale = 1 / factor
	}
	if f.Has(key("rope.scaling.original_context_length")) {
		n, err := f.GetLayerInt(key("rope.scaling.original_context_length"))
		if err != nil {
			return err
		}
		if n < 1 || n > 1<<30 {
			return bad("rope.scaling.original_context_length", "%d is out of range", n)
		}
		c.RopeOrigCtx = n
	}
	if err := floatKey("rope.scaling.attn_factor", &c.RopeAttnFactor); err != nil {
		return err
	}
	if c.RopeScaling == "yarn" {
		c.YarnBetaFast, c.YarnBetaSlow = 32, 1
		for _, k := range []struct {
			name string
			dst  *float32
		}{{"rope.scaling.yarn_beta_fast", &c.YarnBetaFast}, {"rope.scaling.yarn_beta_slow", &c.YarnBetaSlow}} {
			if err := floatKey(k.name, k.dst); err != nil {
				return err
			}
		}
		var logMul float32
		if err := floatKey("rope.scaling.yarn_log_multiplier", &logMul); err != nil {
			return err
		}
		if logMul != 0 {
			return bad("rope.scaling.yarn_log_multiplier", "%g: a YaRN magnitude multiplier is not implemented", logMul)
		}
	}
	return nil
}

// readVocab sets n_vocab — the token list's length (llama.cpp), else the embedding's rows —
// and checks it against token_embd.weight: the embedding must have n_embd columns and a row
// for every token.
func readVocab(f *gguf.File, c *Config) error {
	emb, hasEmb := f.Tensor("token_embd.weight")
	if toks, err := f.GetStrings("tokenizer.ggml.tokens"); err == nil {
		c.VocabSize = len(toks)
	} else if hasEmb && len(emb.Shape) == 2 {
		c.VocabSize = int(emb.Shape[1])
	} else {
		return err
	}
	if !hasEmb {
		return nil // a vocabulary-only file: nothing to check against
	}
	if len(emb.Shape) != 2 || int(emb.Shape[0]) != c.EmbeddingLen {
		return fmt.Errorf("%s: tensor token_embd.weight has shape %v, want [%d, n_vocab] (n_embd %d)", f.Path, emb.Shape, c.EmbeddingLen, c.EmbeddingLen)
	}
	if int(emb.Shape[1]) < c.VocabSize {
		return fmt.Errorf("%s: tensor token_embd.weight has %d rows for a vocabulary of %d tokens (tokenizer.ggml.tokens)", f.Path, emb.Shape[1], c.VocabSize)
	}
	return nil
}

// An OptionalKey is a key ARCH.Name an architecture's ConfigFunc reads into Dst (*int or
// *float32) when the file has it; Dst holds the default otherwise.
type OptionalKey struct {
	Name string
	Dst  any
}

// ReadOptional reads keys for c's architecture (ReadOptional(f, c, OptionalKey{…}, …)) in
// a ConfigFunc. An integer must be positive and a float finite; an error names the key.
func ReadOptional(f *gguf.File, c *Config, keys ...OptionalKey) error {
	for _, k := range keys {
		key := c.Arch + "." + k.Name
		if !f.Has(key) {
			continue
		}
		switch dst := k.Dst.(type) {
		case *int:
			n, err := f.GetLayerInt(key)
			if err != nil {
				return err
			}
			if n > 1<<30 {
				return fmt.Errorf("%s: %s: %d is out of range", f.Path, key, n)
			}
			*dst = n
		case *float32:
			v, err := f.GetFloat(key)
			if err != nil {
				return err
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
				return fmt.Errorf("%s: %s: %g is not a finite float32", f.Path, key, v)
			}
			*dst = float32(v)
		default:
			return fmt.Errorf("arch: ReadOptional: key %s: unsupported destination %T", key, k.Dst)
		}
	}
	return nil
}
