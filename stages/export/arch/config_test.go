package arch

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/gguf"
)

const models = "../../../testdata/oracle/models/"

func open(t *testing.T, name string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(models + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Facts from testdata/oracle/README.md about each fixture's architecture (0: not checked).
func TestConfigFixtures(t *testing.T) {
	cases := []struct {
		file                         string
		arch                         string
		embd, layers, heads, kv, rot int
		ff                           int
		rope                         RopeStyle
		vocab                        int
	}{
		{"stories260K.gguf", "llama", 64, 5, 8, 4, 8, 0, RopeNorm, 512},
		{"tiny-phi2-f16.gguf", "phi2", 128, 3, 4, 4, 16, 512, RopeNeox, 1024},
		{"tiny-llama-f16.gguf", "llama", 0, 0, 4, 2, 0, 0, RopeNorm, 1024},
		{"tiny-gemma-f16.gguf", "gemma", 0, 0, 0, 1, 0, 0, RopeNeox, 1024},
		{"tiny-gpt2-f32.gguf", "gpt2", 0, 0, 0, 0, 0, 0, RopeNone, 1024},
		{"tiny-llama256-f16.gguf", "llama", 256, 0, 0, 0, 0, 0, RopeNorm, 1024},
	}
	for _, c := range cases {
		cfg, err := ReadConfig(open(t, c.file))
		if err != nil {
			t.Errorf("%s: %v", c.file, err)
			continue
		}
		check := func(name string, got, want int) {
			if want != 0 && got != want {
				t.Errorf("%s: %s = %d, want %d", c.file, name, got, want)
			}
		}
		if cfg.Arch != c.arch || cfg.Rope != c.rope {
			t.Errorf("%s: arch %s rope %v, want %s %v", c.file, cfg.Arch, cfg.Rope, c.arch, c.rope)
		}
		check("n_embd", cfg.EmbeddingLen, c.embd)
		check("n_layer", cfg.BlockCount, c.layers)
		check("n_head", cfg.HeadCount, c.heads)
		check("n_head_kv", cfg.HeadCountKV, c.kv)
		check("n_rot", cfg.RopeDims, c.rot)
		check("n_ff", cfg.FeedForward, c.ff)
		check("n_vocab", cfg.VocabSize, c.vocab)
	}
}

// tiny-qwen2-f16.gguf (testdata/oracle/README.md): its qwen2.* keys say 2 layers, n_embd
// 128, n_ff 352, 4 heads (2 KV) of 128/4 = 32, context 256, rms eps 1e-6, rope base 1e6,
// 1024 tokens.
func TestResolve(t *testing.T) {
	q := open(t, "tiny-qwen2-f16.gguf")
	got, b, err := Resolve(q)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{Arch: "qwen2", ContextLength: 256, EmbeddingLen: 128, BlockCount: 2, FeedForward: 352,
		HeadCount: 4, HeadCountKV: 2, KeyLength: 32, ValueLength: 32, NormEps: 1e-6, RMSNorm: true,
		RopeDims: 32, RopeBase: 1e6, RopeScale: 1, Rope: RopeNeox, VocabSize: 1024}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("qwen2 config\n%+v\nwant\n%+v", got, want)
	}
	if _, ok := b.(Arch); !ok {
		t.Errorf("Resolve(qwen2) builder %T", b)
	}
}

// parse writes b and parses it back.
func parse(t testing.TB, b *gguf.Builder) *gguf.File {
	t.Helper()
	f, err := b.Parse("mem.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMissingConfigKey(t *testing.T) {
	b := gguf.NewBuilder()
	b.Set("general.architecture", "llama")
	b.Set("llama.context_length", uint32(128))
	b.Set("llama.embedding_length", uint32(64))
	_, err := ReadConfig(parse(t, b))
	if err == nil || !strings.Contains(err.Error(), `"llama.block_count"`) {
		t.Fatalf("want an error naming llama.block_count, got %v", err)
	}
}

// FuzzConfig: whatever the keys say, ReadConfig returns an error or a configuration whose
// sizes the graph builders may divide by.
func FuzzConfig(f *testing.F) {
	f.Add(uint8(0), int64(128), int64(64), int64(5), int64(172), int64(8), int64(4), int64(0), int64(0), float32(1e-5), false)
	f.Add(uint8(1), int64(2048), int64(128), int64(3), int64(512), int64(4), int64(4), int64(32), int64(16), float32(1e-5), true)
	f.Add(uint8(2), int64(0), int64(-1), int64(1<<40), int64(0), int64(0), int64(0), int64(-5), int64(1<<62), float32(0), false)
	arches := []string{"llama", "phi2", "gemma", "gpt2", "qwen2", "mamba"}
	f.Fuzz(func(t *testing.T, arch uint8, ctx, embd, blocks, ff, heads, kv, keyLen, rot int64, eps float32, wide bool) {
		a := arches[int(arch)%len(arches)]
		b := gguf.NewBuilder()
		b.Set("general.architecture", a)
		set := func(key string, v int64) {
			if v == 0 {
				return // absent: optional keys take their defaults, required ones are missing
			}
			if wide {
				b.Set(a+"."+key, v)
			} else {
				b.Set(a+"."+key, uint32(v))
			}
		}
		set("context_length", ctx)
		set("embedding_length", embd)
		set("block_count", blocks)
		set("feed_forward_length", ff)
		set("attention.head_count", heads)
		set("attention.head_count_kv", kv)
		set("attention.key_length", keyLen)
		set("rope.dimension_count", rot)
		b.Set(a+".attention.layer_norm_epsilon", eps)
		b.Set(a+".attention.layer_norm_rms_epsilon", eps)
		b.Set("tokenizer.ggml.tokens", []string{"a", "b"})
		var buf bytes.Buffer
		if _, err := b.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		gf, err := gguf.Parse("fuzz.gguf", buf.Bytes())
		if err != nil {
			return
		}
		cfg, err := ReadConfig(gf)
		if err != nil {
			return
		}
		if cfg.HeadCount <= 0 || cfg.HeadCountKV <= 0 || cfg.EmbeddingLen <= 0 || cfg.BlockCount <= 0 || cfg.KeyLength <= 0 {
			t.Errorf("ReadConfig accepted non-positive sizes: %+v", cfg)
		}
	})
}
