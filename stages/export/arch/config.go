package arch

import (
	"fmt"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// A ConfigReader reads the hyper-parameters of an architecture. The built-in architectures
// have a typed configuration in package gguf (gguf.File.Config); an architecture that
// package gguf does not know — one an architecture plugin registers — supplies its own
// reader by registering a Builder that also implements ConfigReader (an Arch with
// ConfigFunc set), and package export then exports it like a built-in.
type ConfigReader interface {
	Config(f *gguf.File) (*gguf.Config, error)
}

// Config implements ConfigReader: ConfigFunc when set, else gguf.File.Config.
func (a Arch) Config(f *gguf.File) (*gguf.Config, error) {
	if a.ConfigFunc != nil {
		return a.ConfigFunc(f)
	}
	return f.Config()
}

// Resolve returns the builder registered for f's general.architecture and the model's
// hyper-parameters, read by the builder when it is a ConfigReader and by gguf.File.Config
// otherwise. An unknown architecture gets Lookup's error, which points to plugins.
func Resolve(f *gguf.File) (*gguf.Config, Builder, error) {
	name := f.Architecture()
	if name == "" {
		return nil, nil, fmt.Errorf("export: %s: general.architecture is missing", f.Path)
	}
	b, err := Lookup(name)
	if err != nil {
		return nil, nil, err
	}
	var cfg *gguf.Config
	if r, ok := b.(ConfigReader); ok {
		cfg, err = r.Config(f)
	} else {
		cfg, err = f.Config()
	}
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

func archOf(cfg *gguf.Config) string {
	if cfg == nil {
		return "nothing"
	}
	return cfg.Arch
}

// Traits are what distinguishes the hyper-parameters of a llama-like architecture: its norm
// and its rotary embedding. Everything else is read from the standard keys.
type Traits struct {
	RMSNorm bool           // RMSNorm (…layer_norm_rms_epsilon) rather than LayerNorm (…layer_norm_epsilon)
	Rope    gguf.RopeStyle // RopeNorm, RopeNeox, or RopeNone for learned positions
}

// StandardConfig returns a ConfigFunc for an architecture whose GGUF keys follow the common
// scheme (gguf-arch.md §3): ARCH.context_length, .embedding_length, .block_count,
// .feed_forward_length, .attention.head_count (required); .attention.head_count_kv,
// .attention.key_length, .attention.value_length, .rope.dimension_count,
// .rope.freq_base (optional, with llama.cpp's defaults); the norm epsilon named after
// t.RMSNorm; n_vocab the length of tokenizer.ggml.tokens. It is for plugins: qwen2, for
// one, is llama's keys with NEOX rope.
func StandardConfig(t Traits) func(*gguf.File) (*gguf.Config, error) {
	return func(f *gguf.File) (*gguf.Config, error) {
		name, err := f.GetString("general.architecture")
		if err != nil {
			return nil, err
		}
		c := &gguf.Config{Arch: name, RMSNorm: t.RMSNorm, Rope: t.Rope, RopeScale: 1, RopeBase: 10000}
		// intKey reads key into dst; def < 0 makes it required. Values are bounded before
		// they size anything (1<<30 is far beyond any real dimension).
		intKey := func(key string, dst *int, def int) {
			if err != nil {
				return
			}
			key = name + "." + key
			if def >= 0 && !f.Has(key) {
				*dst = def
				return
			}
			var v int64
			if v, err = f.GetInt(key); err == nil && (v <= 0 || v > 1<<30) {
				err = fmt.Errorf("%s: %s = %d is out of range", f.Path, key, v)
			}
			*dst = int(v)
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
		if t.Rope != gguf.RopeNone {
			intKey("rope.dimension_count", &c.RopeDims, c.KeyLength)
		}
		if err != nil {
			return nil, err
		}
		if c.HeadCount%c.HeadCountKV != 0 || c.RopeDims%2 != 0 || c.RopeDims > c.KeyLength || (t.Rope != gguf.RopeNone && c.RopeDims == 0) {
			return nil, fmt.Errorf("%s: inconsistent heads (%d, %d KV) or rope dimensions (%d of %d)", f.Path, c.HeadCount, c.HeadCountKV, c.RopeDims, c.KeyLength)
		}
		epsKey := name + ".attention.layer_norm_epsilon"
		if t.RMSNorm {
			epsKey = name + ".attention.layer_norm_rms_epsilon"
		}
		eps, err := f.GetFloat(epsKey)
		if err != nil {
			return nil, err
		}
		c.NormEps = float32(eps)
		if key := name + ".rope.freq_base"; f.Has(key) {
			b, err := f.GetFloat(key)
			if err != nil {
				return nil, err
			}
			c.RopeBase = float32(b)
		}
		toks, err := f.GetStrings("tokenizer.ggml.tokens") // n_vocab is the token list's length
		if err != nil {
			return nil, err
		}
		c.VocabSize = len(toks)
		return c, nil
	}
}
