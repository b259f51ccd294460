package arch

import (
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

// StandardConfig reads the same keys as package gguf's typed configuration: on the llama
// files it must agree with gguf.File.Config field for field.
func TestStandardConfigMatchesGGUF(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "stories260K-q4_0.gguf"} {
		f := open(t, name)
		want, err := f.Config()
		if err != nil {
			t.Fatal(err)
		}
		got, err := StandardConfig(Traits{RMSNorm: true, Rope: gguf.RopeNorm})(f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: StandardConfig\n%+v\ngguf.Config\n%+v", name, got, want)
		}
	}
}

// tiny-qwen2-f16.gguf (testdata/oracle/README.md) has no typed gguf configuration; its
// qwen2.* keys say: 2 layers, n_embd 128, n_ff 352, 4 heads (2 KV) of 128/4 = 32, context
// 256, rms eps 1e-6, rope base 1e6, 1024 tokens.
func TestResolve(t *testing.T) {
	q := open(t, "tiny-qwen2-f16.gguf")
	if _, _, err := Resolve(q); err == nil || !strings.Contains(err.Error(), "plugin") {
		t.Errorf("Resolve(qwen2) without a registered builder: %v, want an error pointing to plugins", err)
	}
	got, err := StandardConfig(Traits{RMSNorm: true, Rope: gguf.RopeNeox})(q)
	if err != nil {
		t.Fatal(err)
	}
	want := &gguf.Config{Arch: "qwen2", ContextLength: 256, EmbeddingLen: 128, BlockCount: 2, FeedForward: 352,
		HeadCount: 4, HeadCountKV: 2, KeyLength: 32, ValueLength: 32, NormEps: 1e-6, RMSNorm: true,
		RopeDims: 32, RopeBase: 1e6, RopeScale: 1, Rope: gguf.RopeNeox, VocabSize: 1024}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("qwen2 config\n%+v\nwant\n%+v", got, want)
	}

	s := open(t, "stories260K.gguf")
	cfg, b, err := Resolve(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(Arch); !ok || cfg.Arch != "llama" || cfg.BlockCount != 5 {
		t.Errorf("Resolve(stories260K) = %+v, %T", cfg, b)
	}
}
