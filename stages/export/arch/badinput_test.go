package arch

import (
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// edit copies the fixture file with the metadata in set replaced (a nil value drops the key)
// and the tensors in tensors replaced by zero-filled f32 ones of the given GGUF shape (nil:
// dropped).
func edit(t *testing.T, file string, set map[string]any, tensors map[string][]int64) *gguf.File {
	t.Helper()
	src := open(t, file)
	b := gguf.NewBuilder()
	for _, kv := range src.KVs {
		if v, ok := set[kv.Key]; ok {
			if v != nil {
				b.Set(kv.Key, v)
			}
			continue
		}
		b.Set(kv.Key, kv.Value.V)
	}
	for k, v := range set {
		if !src.Has(k) && v != nil {
			b.Set(k, v)
		}
	}
	for _, tn := range src.Tensors {
		shape, ok := tensors[tn.Name]
		if !ok {
			if err := b.AddTensorBytes(tn.Name, tn.Type, tn.Shape, src.Data(tn)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if shape == nil {
			continue
		}
		n := int64(4)
		for _, d := range shape {
			n *= d
		}
		if err := b.AddTensorBytes(tn.Name, ggml.F32, shape, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	return parse(t, b)
}

// buildDecode reads f's configuration and builds its decode function, as export does before
// it writes anything.
func buildDecode(f *gguf.File) error {
	cfg, b, err := Resolve(f)
	if err != nil {
		return err
	}
	fn := NewFunc(mil.NewProgram(), f, cfg, FuncSpec{Name: "decode", N: 1, C: 64, First: 0, End: cfg.BlockCount})
	_, err = Build(b, fn)
	return err
}

// Bad input for a declared architecture fails with one error naming the key or tensor at
// fault, while the configuration is read or the graph is built — before any weight is
// written — and never with a panic.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		set     map[string]any
		tensors map[string][]int64
		want    string
	}{
		{"missing q norm", "tiny-qwen3-f16.gguf", nil, map[string][]int64{"blk.1.attn_q_norm.weight": nil}, `"blk.1.attn_q_norm.weight" not found`},
		{"misshapen k norm", "tiny-qwen3-f16.gguf", nil, map[string][]int64{"blk.0.attn_k_norm.weight": {32}}, `"blk.0.attn_k_norm.weight" has shape [32], want [48]`},
		{"misshapen attn_k", "tiny-llama-f16.gguf", nil, map[string][]int64{"blk.0.attn_k.weight": {128, 128}}, `"blk.0.attn_k.weight" has shape [128 128], want [n_in, 64]`},
		{"missing attn_v", "tiny-qwen2-f16.gguf", nil, map[string][]int64{"blk.1.attn_v.weight": nil}, `"blk.1.attn_v.weight" not found`},
		{"misshapen fused qkv", "tiny-phi3-f16.gguf", nil, map[string][]int64{"blk.0.attn_qkv.weight": {128, 128}}, `"blk.0.attn_qkv.weight" has shape [128 128], want [n_in, 256]`},
		{"unfused ffn_up", "tiny-phi3-f16.gguf", nil, map[string][]int64{"blk.0.ffn_up.weight": {128, 256}}, `"blk.0.ffn_up.weight" has shape [128 256], want [n_in, 512]`},
		{"misshapen ffn_down", "tiny-gemma-f16.gguf", nil, map[string][]int64{"blk.1.ffn_down.weight": {384, 64}}, `"blk.1.ffn_down.weight" has shape [384 64], want [n_in, 128]`},
		{"misshapen norm", "tiny-llama-f16.gguf", nil, map[string][]int64{"output_norm.weight": {64}}, `"output_norm.weight" has shape [64], want [128]`},
		{"missing output norm", "tiny-phi2-f16.gguf", nil, map[string][]int64{"output_norm.weight": nil}, `"output_norm.weight" not found`},
		{"missing post-FFN norm", "tiny-gemma2-f16.gguf", nil, map[string][]int64{"blk.0.post_ffw_norm.weight": nil}, `"blk.0.post_ffw_norm.weight" not found`},
		{"misshapen q norm", "tiny-gemma3-f16.gguf", nil, map[string][]int64{"blk.2.attn_q_norm.weight": {32}}, `"blk.2.attn_q_norm.weight" has shape [32], want [48]`},
		{"huge window", "tiny-gemma2-f16.gguf", map[string]any{"gemma2.attention.sliding_window": uint64(1 << 40)}, nil, "gemma2.attention.sliding_window"},
		{"one LongRoPE table", "tiny-phi3-f16.gguf", nil, map[string][]int64{"rope_factors_long.weight": nil}, "rope_factors_long.weight is missing"},
		{"short rope_freqs", "tiny-llama3-f16.gguf", nil, map[string][]int64{"rope_freqs.weight": {8}}, "rope_freqs.weight: want 16 frequency factors"},
		{"KV heads do not divide", "tiny-llama-f16.gguf", map[string]any{"llama.attention.head_count_kv": uint32(3)}, nil, "llama.attention.head_count_kv: 3 does not divide head_count 4"},
		{"heads do not divide n_embd", "tiny-llama-f16.gguf", map[string]any{"llama.attention.head_count": uint32(3), "llama.attention.head_count_kv": uint32(3), "llama.rope.dimension_count": nil}, nil, `"blk.0.attn_q.weight" has shape [128 128], want [n_in, 126]`},
		{"zero heads", "tiny-qwen2-f16.gguf", map[string]any{"qwen2.attention.head_count": uint32(0)}, nil, "qwen2.attention.head_count: 0 is out of range"},
		{"rope dims beyond the head", "tiny-qwen3-f16.gguf", map[string]any{"qwen3.rope.dimension_count": uint32(64)}, nil, "qwen3.rope.dimension_count: 64 is not an even number of dimensions within the head (48)"},
		{"unimplemented rope scaling", "tiny-llama-f16.gguf", map[string]any{"llama.rope.scaling.type": "su"}, nil, `llama.rope.scaling.type: "su" is not implemented`},
		{"YaRN log multiplier", "tiny-llama-yarn-f16.gguf", map[string]any{"llama.rope.scaling.yarn_log_multiplier": float32(0.1)}, nil, "llama.rope.scaling.yarn_log_multiplier"},
		{"negative rope factor", "tiny-llama-f16.gguf", map[string]any{"llama.rope.scaling.factor": float32(-2)}, nil, "llama.rope.scaling.factor: -2 is negative"},
		{"vocabulary beyond the embedding", "tiny-qwen3-f16.gguf", nil, map[string][]int64{"token_embd.weight": {128, 1000}}, "token_embd.weight has 1000 rows for a vocabulary of 1024 tokens"},
		{"embedding width", "tiny-phi3-f16.gguf", nil, map[string][]int64{"token_embd.weight": {64, 1024}}, "token_embd.weight has shape [64 1024], want [128, n_vocab]"},
		{"missing eps", "tiny-phi3-f16.gguf", map[string]any{"phi3.attention.layer_norm_rms_epsilon": nil}, nil, `"phi3.attention.layer_norm_rms_epsilon"`},
		{"missing block count", "tiny-qwen3-f16.gguf", map[string]any{"qwen3.block_count": nil}, nil, `"qwen3.block_count"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := buildDecode(edit(t, tt.file, tt.set, tt.tensors))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// The unedited fixtures build.
	for _, file := range []string{"tiny-qwen3-f16.gguf", "tiny-phi3-f16.gguf", "tiny-llama3-f16.gguf", "tiny-llama-yarn-f16.gguf", "tiny-gemma2-f16.gguf", "tiny-gemma3-f16.gguf"} {
		if err := buildDecode(edit(t, file, nil, nil)); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}
