package gguf

import (
	"fmt"
	"sort"
)

// RopeStyle says how rotary embedding pairs dimensions (ggml rope modes).
type RopeStyle int

const (
	RopeNone RopeStyle = iota // learned positions (gpt2)
	RopeNorm                  // adjacent pairs (x[2i], x[2i+1]) — llama
	RopeNeox                  // halves (x[i], x[i+n_rot/2]) — phi2, gemma
)

func (r RopeStyle) String() string {
	return [...]string{"none", "norm", "neox"}[r]
}

// MarshalText writes the style's name.
func (r RopeStyle) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Config is the typed hyper-parameter set of one of the architectures lilims builds itself.
// Other architectures read their own keys through the generic metadata getters.
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
	RopeScale     float32   `json:"rope_freq_scale"` // freq_scale = 1/factor for linear scaling; 1 when absent
	Rope          RopeStyle `json:"rope"`
	VocabSize     int       `json:"n_vocab"`
}

// SupportedArchitectures are those with a typed Config (and a built-in exporter).
var SupportedArchitectures = []string{"gemma", "gpt2", "llama", "phi2"}

// Config reads the typed hyper-parameters of f's architecture. A missing required key is
// reported by name.
func (f *File) Config() (*Config, error) {
	arch, err := f.GetString("general.architecture")
	if err != nil {
		return nil, err
	}
	c := &Config{Arch: arch, RopeScale: 1}
	switch arch {
	case "llama":
		c.RMSNorm, c.Rope = true, RopeNorm
	case "gemma":
		c.RMSNorm, c.Rope = true, RopeNeox
	case "phi2":
		c.Rope = RopeNeox
	case "gpt2":
		c.Rope = RopeNone
	default:
		return nil, fmt.Errorf("gguf: %s: architecture %q has no typed configuration (supported: %v); read its keys with the generic metadata getters", f.Path, arch, SupportedArchitectures)
	}
	k := func(name string) string { return arch + "." + name }
	req := func(name string, dst *int) {
		if err != nil {
			return
		}
		*dst, err = f.intKey(k(name))
	}
	req("context_length", &c.ContextLength)
	req("embedding_length", &c.EmbeddingLen)
	req("block_count", &c.BlockCount)
	req("feed_forward_length", &c.FeedForward)
	req("attention.head_count", &c.HeadCount)
	if err != nil {
		return nil, err
	}
	if c.HeadCount <= 0 || c.EmbeddingLen <= 0 || c.BlockCount <= 0 {
		return nil, &FormatError{Path: f.Path, Offset: -1, Key: k("attention.head_count"),
			Msg: "embedding_length, block_count and head_count must be positive"}
	}
	opt := func(name string, dst *int, def int) {
		if err != nil {
			return
		}
		*dst = def
		if f.Has(k(name)) {
			*dst, err = f.intKey(k(name))
		}
	}
	opt("attention.head_count_kv", &c.HeadCountKV, c.HeadCount)
	opt("attention.key_length", &c.KeyLength, c.EmbeddingLen/c.HeadCount)
	opt("attention.value_length", &c.ValueLength, c.EmbeddingLen/c.HeadCount)
	opt("rope.dimension_count", &c.RopeDims, c.KeyLength)
	if err != nil {
		return nil, err
	}
	if c.HeadCountKV <= 0 || c.HeadCount%c.HeadCountKV != 0 {
		return nil, &FormatError{Path: f.Path, Offset: -1, Key: k("attention.head_count_kv"),
			Msg: fmt.Sprintf("%d does not divide head_count %d", c.HeadCountKV, c.HeadCount)}
	}
	epsKey := k("attention.layer_norm_epsilon")
	if c.RMSNorm {
		epsKey = k("attention.layer_norm_rms_epsilon")
	}
	eps, err := f.GetFloat(epsKey)
	if err != nil {
		return nil, err
	}
	c.NormEps = float32(eps)
	c.RopeBase = 10000
	if f.Has(k("rope.freq_base")) {
		b, err := f.GetFloat(k("rope.freq_base"))
		if err != nil {
			return nil, err
		}
		c.RopeBase = float32(b)
	}
	for _, key := range []string{k("rope.scaling.factor"), k("rope.scale_linear")} {
		if f.Has(key) {
			s, err := f.GetFloat(key)
			if err != nil {
				return nil, err
			}
			if s != 0 {
				c.RopeScale = float32(1 / s)
			}
			break
		}
	}
	if c.Rope == RopeNone {
		c.RopeDims = 0
	} else if c.RopeDims <= 0 || c.RopeDims > c.KeyLength || c.RopeDims%2 != 0 {
		return nil, &FormatError{Path: f.Path, Offset: -1, Key: k("rope.dimension_count"),
			Msg: fmt.Sprintf("%d is not an even number of dimensions within the head (%d)", c.RopeDims, c.KeyLength)}
	}
	// n_vocab is the token list length (llama.cpp); vocab_size is only a hint.
	if toks, err := f.GetStrings("tokenizer.ggml.tokens"); err == nil {
		c.VocabSize = len(toks)
	} else if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Shape) == 2 {
		c.VocabSize = int(t.Shape[1])
	} else {
		return nil, f.missing("tokenizer.ggml.tokens")
	}
	return c, nil
}

// intKey reads an integer hyper-parameter; a per-layer array must hold one value for now.
func (f *File) intKey(key string) (int, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, f.missing(key)
	}
	if n, isInt := v.Int(); isInt {
		if n < 0 || n > 1<<40 {
			return 0, &FormatError{Path: f.Path, Offset: -1, Key: key, Msg: fmt.Sprintf("value %d out of range", n)}
		}
		return int(n), nil
	}
	if ints, isInts := v.Ints(); isInts && len(ints) > 0 {
		uniq := map[int64]bool{}
		for _, n := range ints {
			uniq[n] = true
		}
		if len(uniq) == 1 && ints[0] >= 0 && ints[0] <= 1<<40 {
			return int(ints[0]), nil
		}
		vals := make([]int, 0, len(uniq))
		for n := range uniq {
			vals = append(vals, int(n))
		}
		sort.Ints(vals)
		return 0, &FormatError{Path: f.Path, Offset: -1, Key: key,
			Msg: fmt.Sprintf("per-layer values %v differ; layer-varying shapes are not supported", vals)}
	}
	return 0, f.wrongType(key, v, "an integer")
}

// ParameterCount is the total element count of all tensors.
func (f *File) ParameterCount() int64 {
	var n int64
	for _, t := range f.Tensors {
		n += t.Elements()
	}
	return n
}
