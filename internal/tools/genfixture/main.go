// Command genfixture writes the tiny random-weight GGUF fixtures of the architectures lilims
// builds in (testdata/oracle/models/tiny-*.gguf, provenance in testdata/README.md), each
// exercising what sets its architecture apart: qwen3's per-head q/k norms and explicit
// head_dim, Llama 3's rope_freqs, YaRN, phi3's fused projections and LongRoPE factors,
// gemma2's soft-caps, post-norms and sliding window, gemma3's local/global layers — and the
// starcoder2 model of the architecture-plugin example (plugins/arch-starcoder2/testdata).
//
//	go run ./internal/tools/genfixture                                # every fixture, into its home
//	go run ./internal/tools/genfixture -o /tmp/fx -only tiny-qwen3-f16.gguf
//
// The weights follow the existing tiny-* fixtures (testdata/oracle/README.md): normal, with
// standard deviation 1.5/√n_in for q and k, 1/√n_in for the other projections, 3/√n_embd
// for the LM head, unit-scale embeddings, norms 1 ± 0.1 and biases ± 0.3, which keeps
// next-token distributions peaked enough to compare with llama.cpp. 2-D weights are f16,
// 1-D ones f32 (as llama.cpp's converter writes them). The vocabularies are real: the
// tokenizer.* metadata is copied from tiny-qwen2-f16.gguf (byte-level BPE, pre qwen2),
// tiny-llama-f16.gguf or tiny-gemma-f16.gguf (SentencePiece with byte fallback). Output is deterministic per seed.
package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/x448/float16"

	"github.com/lilims/lilims/internal/atomicfile"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// A fixture is one file: its hyper-parameters, the vocabulary it borrows and what it adds.
type fixture struct {
	file, arch, vocab  string // vocab: the fixture whose tokenizer.* keys are copied
	name               string // general.name; the file's base name when empty
	home               string // directory it is committed in; testdata/oracle/models when empty
	embd, layers, ff   int
	heads, kv, headDim int // headDim 0: n_embd/n_head, no key_length key
	ctx                int
	ropeBase           float32
	qkvBias, qkNorm    bool
	fusedQKV, fusedFFN bool
	tied               bool
	postNorms          bool                                     // post_attention_norm and post_ffw_norm (gemma2, gemma3)
	layerNorm          bool                                     // LayerNorm with biases rather than RMSNorm (starcoder2)
	plainFFN, outBias  bool                                     // ungated GELU FFN; biases on attn_output, ffn_up and ffn_down
	embdStd            float64                                  // of token_embd; 0: 1 (gemma scales its embedding by √n_embd instead)
	outNormMean        float64                                  // of output_norm; 0: 1
	meta               map[string]any                           // extra ARCH.* keys (the prefix is added)
	vocabSize          int                                      // > 0: pad the borrowed SentencePiece vocabulary to this many tokens
	extra              func(g *gen, b *gguf.Builder, f fixture) // global tensors such as rope factors
}

const (
	bpeVocab   = "tiny-qwen2-f16.gguf"
	spmVocab   = "tiny-llama-f16.gguf"
	gemmaVocab = "tiny-gemma-f16.gguf"
)

var fixtures = []fixture{
	{file: "tiny-qwen3-f16.gguf", arch: "qwen3", vocab: bpeVocab, embd: 128, layers: 2, ff: 352, heads: 4, kv: 2,
		headDim: 48, ctx: 256, ropeBase: 1e6, qkNorm: true},
	{file: "tiny-llama3-f16.gguf", arch: "llama", vocab: bpeVocab, embd: 128, layers: 2, ff: 352, heads: 4, kv: 2,
		ctx: 1024, ropeBase: 500000, extra: llama3Freqs},
	{file: "tiny-llama-yarn-f16.gguf", arch: "llama", vocab: spmVocab, embd: 128, layers: 2, ff: 352, heads: 4, kv: 2,
		ctx: 256, ropeBase: 10000, meta: map[string]any{"rope.scaling.type": "yarn", "rope.scaling.factor": float32(4),
			"rope.scaling.original_context_length": uint32(32)}},
	// Context 4096 over an original 32: llama.cpp (context 128) and the tests' exports
	// (context 64) both exceed 32 and take the long factors.
	// Their general.name avoids "phi3": llama.cpp (src/llama-vocab.cpp) then sets attributes
	// of Phi-3's special tokens, which the borrowed vocabulary does not have.
	{file: "tiny-phi3-f16.gguf", name: "tiny-longrope-f16", arch: "phi3", vocab: spmVocab, embd: 128, layers: 2, ff: 256, heads: 4, kv: 2,
		ctx: 4096, ropeBase: 10000, fusedQKV: true, fusedFFN: true,
		meta: map[string]any{"rope.scaling.original_context_length": uint32(32)}, extra: longRope},
	// Original context 4096: every context the tests use takes the short factors.
	{file: "tiny-phi3-short-f16.gguf", name: "tiny-longrope-short-f16", arch: "phi3", vocab: spmVocab, embd: 128, layers: 2, ff: 256, heads: 4, kv: 2,
		ctx: 8192, ropeBase: 10000, fusedQKV: true, fusedFFN: true,
		meta: map[string]any{"rope.scaling.original_context_length": uint32(4096)}, extra: longRope},
	// A window of 4 is shorter than every recorded prompt but one; layer 0 is local, layer 1
	// global. The caps are low enough to bend the scores and logits of these tiny weights.
	{file: "tiny-gemma2-f16.gguf", arch: "gemma2", vocab: gemmaVocab, embd: 128, layers: 2, ff: 384, heads: 4, kv: 2,
		ctx: 256, ropeBase: 10000, tied: true, postNorms: true, embdStd: 1 / math.Sqrt(128), outNormMean: 2.5,
		meta: map[string]any{"attention.sliding_window": uint32(4), "attn_logit_softcapping": float32(3),
			"final_logit_softcapping": float32(10)}},
	// Layers 0 and 1 local (window 4, base 10000, unscaled), layer 2 global (base 1e6, linear
	// scaling by 4); head_dim 48 ≠ n_embd/n_head.
	{file: "tiny-gemma3-f16.gguf", arch: "gemma3", vocab: gemmaVocab, embd: 128, layers: 3, ff: 384, heads: 4, kv: 2,
		headDim: 48, ctx: 1024, ropeBase: 1e6, tied: true, postNorms: true, qkNorm: true, embdStd: 1 / math.Sqrt(128), outNormMean: 3,
		meta: map[string]any{"attention.sliding_window": uint32(4), "attention.sliding_window_pattern": uint32(3),
			"rope.freq_base_swa": float32(10000), "rope.scaling.type": "linear", "rope.scaling.factor": float32(4)}},
	// The architecture of the plugin example (plugins/arch-starcoder2), which the core does not
	// know: LayerNorm, biases everywhere, an ungated GELU FFN, NEOX rope, tied output.
	{file: "tiny-starcoder2-f16.gguf", arch: "starcoder2", vocab: bpeVocab, embd: 128, layers: 2, ff: 512, heads: 4, kv: 2,
		ctx: 256, ropeBase: 10000, tied: true, layerNorm: true, qkvBias: true, plainFFN: true, outBias: true, outNormMean: 0.12,
		home: "plugins/arch-starcoder2/testdata"},
	// Last, so the seeds of the fixtures above (seed + index) stay as they were.
	// A vocabulary over the Neural Engine's 65536-row limit (the ANE layout splits its
	// embedding and LM head): tiny-llama's 1024 SentencePiece tokens padded with 68976
	// synthetic ones no text produces, a tied head, and n_embd 32 to keep the file small.
	// It lives in testdata/bigvocab with its own recording: the tests that run every model of
	// oracle/ (inspect's goldens list every token) need not carry 70000 tokens.
	{file: "tiny-bigvocab-f16.gguf", home: "testdata/bigvocab", arch: "llama", vocab: spmVocab, vocabSize: 70000, embd: 32, layers: 2, ff: 64,
		heads: 2, kv: 1, ctx: 256, ropeBase: 10000, tied: true, embdStd: 0.5},
}

func main() {
	out := flag.String("o", "", "output directory (default: each fixture's home in the repository)")
	vocabDir := flag.String("vocab", "testdata/oracle/models", "directory of the fixtures whose vocabularies are copied")
	only := flag.String("only", "", "write only this file")
	seed := flag.Uint64("seed", 12, "random seed")
	flag.Parse()
	n := 0
	for i, fx := range fixtures {
		if *only != "" && fx.file != *only {
			continue
		}
		n++
		dir := *out
		if dir == "" {
			dir = cmp.Or(fx.home, "testdata/oracle/models")
		}
		if err := write(filepath.Join(dir, fx.file), filepath.Join(*vocabDir, fx.vocab), fx, *seed+uint64(i)); err != nil {
			fmt.Fprintln(os.Stderr, "genfixture:", err)
			os.Exit(1)
		}
	}
	if n == 0 {
		fmt.Fprintf(os.Stderr, "genfixture: no fixture %q\n", *only)
		os.Exit(2)
	}
}

func write(path, vocabPath string, fx fixture, seed uint64) error {
	v, err := gguf.Open(vocabPath)
	if err != nil {
		return err
	}
	defer v.Close()
	b := gguf.NewBuilder()
	a := func(k string) string { return fx.arch + "." + k }
	b.Set("general.architecture", fx.arch)
	name := fx.name
	if name == "" {
		name = strings.TrimSuffix(fx.file, ".gguf")
	}
	b.Set("general.name", name)
	b.Set("general.file_type", uint32(1)) // LLAMA_FTYPE_MOSTLY_F16
	b.Set(a("context_length"), uint32(fx.ctx))
	b.Set(a("embedding_length"), uint32(fx.embd))
	b.Set(a("feed_forward_length"), uint32(fx.ff))
	b.Set(a("block_count"), uint32(fx.layers))
	b.Set(a("attention.head_count"), uint32(fx.heads))
	b.Set(a("attention.head_count_kv"), uint32(fx.kv))
	if fx.layerNorm {
		b.Set(a("attention.layer_norm_epsilon"), float32(1e-5))
	} else {
		b.Set(a("attention.layer_norm_rms_epsilon"), float32(1e-6))
	}
	b.Set(a("rope.freq_base"), fx.ropeBase)
	hd := fx.embd / fx.heads
	if fx.headDim != 0 {
		hd = fx.headDim
		b.Set(a("attention.key_length"), uint32(hd))
		b.Set(a("attention.value_length"), uint32(hd))
	}
	b.Set(a("rope.dimension_count"), uint32(hd))
	for _, k := range slices.Sorted(maps.Keys(fx.meta)) { // sorted: the file is reproducible
		b.Set(a(k), fx.meta[k])
	}
	nVocab := 0
	for _, kv := range v.KVs {
		padded := fx.vocabSize > 0 && slices.Contains(paddedKeys, kv.Key) // padVocab writes them
		if strings.HasPrefix(kv.Key, "tokenizer.") && !padded {
			b.Set(kv.Key, kv.Value.V)
		}
		if kv.Key == "tokenizer.ggml.tokens" {
			nVocab = kv.Value.Len()
		}
	}
	if fx.vocabSize > 0 {
		if err := padVocab(b, v, fx.vocabSize); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		nVocab = fx.vocabSize
	}

	g := &gen{r: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), b: b}
	e, nq, nkv := fx.embd, fx.heads*hd, fx.kv*hd
	embdStd := 1.0
	if fx.embdStd != 0 {
		embdStd = fx.embdStd
	}
	g.matrix("token_embd.weight", e, nVocab, embdStd)
	for l := range fx.layers {
		p := func(n string) string { return fmt.Sprintf("blk.%d.%s", l, n) }
		g.norm(p("attn_norm.weight"), e)
		if fx.layerNorm {
			g.vector(p("attn_norm.bias"), e, 0, 0.1)
		}
		if fx.fusedQKV {
			g.rows(p("attn_qkv.weight"), e, []int{nq, nkv, nkv}, []float64{1.5, 1.5, 1})
		} else {
			g.matrix(p("attn_q.weight"), e, nq, 1.5/math.Sqrt(float64(e)))
			g.matrix(p("attn_k.weight"), e, nkv, 1.5/math.Sqrt(float64(e)))
			g.matrix(p("attn_v.weight"), e, nkv, 1/math.Sqrt(float64(e)))
		}
		if fx.qkvBias {
			g.vector(p("attn_q.bias"), nq, 0, 0.3)
			g.vector(p("attn_k.bias"), nkv, 0, 0.3)
			g.vector(p("attn_v.bias"), nkv, 0, 0.3)
		}
		if fx.qkNorm {
			g.vector(p("attn_q_norm.weight"), hd, 1, 0.3)
			g.vector(p("attn_k_norm.weight"), hd, 1, 0.3)
		}
		g.matrix(p("attn_output.weight"), nq, e, 1/math.Sqrt(float64(nq)))
		if fx.outBias {
			g.vector(p("attn_output.bias"), e, 0, 0.3)
		}
		if fx.postNorms {
			g.norm(p("post_attention_norm.weight"), e)
		}
		g.norm(p("ffn_norm.weight"), e)
		if fx.layerNorm {
			g.vector(p("ffn_norm.bias"), e, 0, 0.1)
		}
		switch {
		case fx.fusedFFN:
			g.matrix(p("ffn_up.weight"), e, 2*fx.ff, 1/math.Sqrt(float64(e)))
		case fx.plainFFN:
			g.matrix(p("ffn_up.weight"), e, fx.ff, 1/math.Sqrt(float64(e)))
		default:
			g.matrix(p("ffn_gate.weight"), e, fx.ff, 1/math.Sqrt(float64(e)))
			g.matrix(p("ffn_up.weight"), e, fx.ff, 1/math.Sqrt(float64(e)))
		}
		if fx.outBias {
			g.vector(p("ffn_up.bias"), fx.ff, 0, 0.3)
		}
		g.matrix(p("ffn_down.weight"), fx.ff, e, 1/math.Sqrt(float64(fx.ff)))
		if fx.outBias {
			g.vector(p("ffn_down.bias"), e, 0, 0.3)
		}
		if fx.postNorms {
			g.norm(p("post_ffw_norm.weight"), e)
		}
	}
	outNorm := 1.0
	if fx.outNormMean != 0 {
		outNorm = fx.outNormMean
	}
	g.vector("output_norm.weight", e, outNorm, 0.1)
	if fx.layerNorm {
		g.vector("output_norm.bias", e, 0, 0.1)
	}
	if !fx.tied {
		g.matrix("output.weight", e, nVocab, 3/math.Sqrt(float64(e)))
	}
	if fx.extra != nil {
		fx.extra(g, b, fx)
	}
	if g.err != nil {
		return fmt.Errorf("%s: %w", path, g.err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// paddedKeys are the per-token arrays padVocab extends.
var paddedKeys = []string{"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}

// padVocab extends the SentencePiece vocabulary of v to n tokens: pieces "⟦i⟧" of normal
// type (1) and score −1000, which no prompt's text contains, so tokenization is unchanged
// while the model's vocabulary, embedding and logits have n entries.
func padVocab(b *gguf.Builder, v *gguf.File, n int) error {
	t, err := v.GetStrings("tokenizer.ggml.tokens")
	if err != nil {
		return err
	}
	sc, err := v.GetFloat32s("tokenizer.ggml.scores")
	if err != nil {
		return err
	}
	ty, err := v.GetInt32s("tokenizer.ggml.token_type")
	if err != nil {
		return err
	}
	t, sc, ty = slices.Clone(t), slices.Clone(sc), slices.Clone(ty)
	for i := len(t); i < n; i++ {
		t, sc, ty = append(t, fmt.Sprintf("⟦%d⟧", i)), append(sc, -1000), append(ty, 1)
	}
	b.Set("tokenizer.ggml.tokens", t)
	b.Set("tokenizer.ggml.scores", sc)
	b.Set("tokenizer.ggml.token_type", ty)
	return nil
}

// llama3Freqs writes rope_freqs.weight as llama.cpp's converter computes it for
// rope_type llama3 (conversion/llama.py): factor 8, low/high frequency factors 1 and 4, with
// an original context of 64 so that the smooth band falls inside the tiny head.
func llama3Freqs(g *gen, b *gguf.Builder, fx fixture) {
	const factor, low, high, orig = 8.0, 1.0, 4.0, 64.0
	dim := fx.embd / fx.heads
	ff := make([]float32, dim/2)
	for i := range ff {
		freq := 1 / math.Pow(float64(fx.ropeBase), float64(2*i)/float64(dim))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < orig/high:
			ff[i] = 1
		case wavelen > orig/low:
			ff[i] = factor
		default:
			smooth := (orig/wavelen - low) / (high - low)
			ff[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	g.floats("rope_freqs.weight", ff)
}

// longRope writes LongRoPE's per-pair factors (rope_factors_short/long.weight) and the
// magnitude llama.cpp's converter derives for them (conversion/phi.py):
// attn_factor = √(1 + ln(context/original) / ln(original)).
func longRope(g *gen, b *gguf.Builder, fx fixture) {
	half := fx.embd / fx.heads / 2
	short, long := make([]float32, half), make([]float32, half)
	for i := range half {
		short[i] = 1 + 0.1*float32(i)/float32(half)                     // near 1, as Phi-3's are
		long[i] = 1 + 15*float32(math.Pow(float64(i)/float64(half), 2)) // up to ~16 on the slow pairs
	}
	g.floats("rope_factors_short.weight", short)
	g.floats("rope_factors_long.weight", long)
	orig := float64(fx.meta["rope.scaling.original_context_length"].(uint32))
	b.Set(fx.arch+".rope.scaling.attn_factor", float32(math.Sqrt(1+math.Log(float64(fx.ctx)/orig)/math.Log(orig))))
}

// gen writes random tensors into b, remembering the first error.
type gen struct {
	r   *rand.Rand
	b   *gguf.Builder
	err error
}

func (g *gen) add(name string, typ ggml.Type, shape []int64, raw []byte) {
	if g.err == nil {
		g.err = g.b.AddTensorBytes(name, typ, shape, raw)
	}
}

// matrix is an f16 [rows, in] weight (GGUF shape [in, rows]) of standard deviation std.
func (g *gen) matrix(name string, in, rows int, std float64) {
	raw := make([]byte, 2*in*rows)
	for i := 0; i < in*rows; i++ {
		binary.LittleEndian.PutUint16(raw[2*i:], float16.Fromfloat32(float32(g.r.NormFloat64()*std)).Bits())
	}
	g.add(name, ggml.F16, []int64{int64(in), int64(rows)}, raw)
}

// rows is a fused matrix whose row blocks have their own scales (each scale/√in).
func (g *gen) rows(name string, in int, blocks []int, scales []float64) {
	var raw []byte
	total := 0
	for i, n := range blocks {
		std := scales[i] / math.Sqrt(float64(in))
		for j := 0; j < in*n; j++ {
			raw = binary.LittleEndian.AppendUint16(raw, float16.Fromfloat32(float32(g.r.NormFloat64()*std)).Bits())
		}
		total += n
	}
	g.add(name, ggml.F16, []int64{int64(in), int64(total)}, raw)
}

func (g *gen) vector(name string, n int, mean, std float64) {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + g.r.NormFloat64()*std)
	}
	g.floats(name, v)
}

func (g *gen) norm(name string, n int) { g.vector(name, n, 1, 0.1) }

func (g *gen) floats(name string, v []float32) {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	g.add(name, ggml.F32, []int64{int64(len(v))}, raw)
}
