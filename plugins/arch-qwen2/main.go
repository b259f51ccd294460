// Command arch-qwen2 is a lilims architecture plugin: an export stage for GGUF models whose
// general.architecture is qwen2, which lilims itself does not know.
//
// It is written only against lilims's public packages, as a third party would write it: it
// registers a qwen2 builder with stages/export/arch and serves an export stage through the
// plugin SDK. Use it from a pipeline with
//
//   - id: export
//     uses: plugin:./plugins/arch-qwen2
//
// qwen2 (gguf-arch.md) is llama with biases on the q, k and v projections and NEOX rotary
// embedding (pairs x[i], x[i + n_rot/2]); its rope base comes from the file (1e6 for Qwen2).
package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Spec is the stage this plugin serves.
var Spec = stage.Spec{Uses: "export/qwen2", Kind: stage.KindExport,
	Doc: "Export a qwen2 GGUF model as a Core ML .mlpackage (spec 9, fp16, stateful KV cache, prefill+decode).",
	Params: []stage.ParamSpec{
		{Name: "context", Type: stage.Int, Default: 0, Doc: "context length the package is exported for (0: the model's, at most 2048)"},
		{Name: "prefill_chunk", Type: stage.Int, Default: 64, Doc: "tokens per prefill call"},
	}}

func main() {
	sdk.Serve(sdk.Export(Spec, exporter{}))
}

// Qwen2 builds the qwen2 forward pass:
//
//	x = token_embd[t]
//	per layer: h = RMSNorm(x; attn_norm)
//	           q, k, v = W_q·h + b_q, W_k·h + b_k, W_v·h + b_v; RoPE NEOX on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) + x
//	           h = RMSNorm(x; ffn_norm)
//	           x = W_down·(SiLU(W_gate·h) ⊙ W_up·h) + x
//	logits = W_out·RMSNorm(x; output_norm), W_out = output, else token_embd (tied)
//
// Linear adds a bias wherever the file has one, so the graph reads as llama's.
var Qwen2 = arch.Arch{
	EmbedFunc: func(fn *arch.Func) *mil.Value { return fn.Embed("token_embd.weight") },
	BlockFunc: func(fn *arch.Func, l int, x *mil.Value) *mil.Value {
		f := fn.F
		blk := func(name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }
		h := fn.RMSNorm(x, blk("attn_norm.weight"))
		q, k, v := fn.Linear(h, blk("attn_q")), fn.Linear(h, blk("attn_k")), fn.Linear(h, blk("attn_v"))
		a := fn.Attention(l, q, k, v, 1, 1/math.Sqrt(float64(fn.Config.KeyLength)))
		x = f.Add(fn.Linear(a, blk("attn_output")), x)
		h = fn.RMSNorm(x, blk("ffn_norm.weight"))
		gate := f.Silu(fn.Linear(h, blk("ffn_gate")))
		up := fn.Linear(h, blk("ffn_up"))
		return f.Add(fn.Linear(f.Mul(gate, up), blk("ffn_down")), x)
	},
	HeadFunc: func(fn *arch.Func, x *mil.Value) *mil.Value {
		return fn.LMHead(fn.RMSNorm(x, "output_norm.weight"), "output", "token_embd")
	},
}

func init() { arch.Register("qwen2", Qwen2) }

// Config reads qwen2's hyper-parameters (the qwen2.* keys, named as llama's).
func Config(f *gguf.File) (*gguf.Config, error) {
	name, err := f.GetString("general.architecture")
	if err != nil {
		return nil, err
	}
	if name != "qwen2" {
		return nil, fmt.Errorf("%s: architecture %q, this plugin exports qwen2", f.Path, name)
	}
	c := &gguf.Config{Arch: name, RMSNorm: true, Rope: gguf.RopeNeox, RopeScale: 1, RopeBase: 10000}
	intKey := func(key string, dst *int, def int) {
		if err != nil {
			return
		}
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
	intKey("qwen2.context_length", &c.ContextLength, -1)
	intKey("qwen2.embedding_length", &c.EmbeddingLen, -1)
	intKey("qwen2.block_count", &c.BlockCount, -1)
	intKey("qwen2.feed_forward_length", &c.FeedForward, -1)
	intKey("qwen2.attention.head_count", &c.HeadCount, -1)
	if err != nil {
		return nil, err
	}
	intKey("qwen2.attention.head_count_kv", &c.HeadCountKV, c.HeadCount)
	intKey("qwen2.attention.key_length", &c.KeyLength, c.EmbeddingLen/c.HeadCount)
	intKey("qwen2.attention.value_length", &c.ValueLength, c.EmbeddingLen/c.HeadCount)
	intKey("qwen2.rope.dimension_count", &c.RopeDims, c.KeyLength)
	if err != nil {
		return nil, err
	}
	if c.HeadCount%c.HeadCountKV != 0 || c.RopeDims%2 != 0 || c.RopeDims > c.KeyLength {
		return nil, fmt.Errorf("%s: inconsistent heads (%d, %d KV) or rope dimensions (%d of %d)", f.Path, c.HeadCount, c.HeadCountKV, c.RopeDims, c.KeyLength)
	}
	eps, err := f.GetFloat("qwen2.attention.layer_norm_rms_epsilon")
	if err != nil {
		return nil, err
	}
	c.NormEps = float32(eps)
	if f.Has("qwen2.rope.freq_base") {
		b, err := f.GetFloat("qwen2.rope.freq_base")
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

type exporter struct{}

// Build writes the package as the built-in export stage does: prefill (N = prefill_chunk)
// and decode (N = 1) functions sharing every weight, the contract's metadata, fp16 weights.
func (exporter) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	in, ok := req.Input("gguf")
	if !ok {
		return stage.Artifact{}, errors.New("export/qwen2 needs a GGUF model from a loader stage")
	}
	f, err := gguf.Open(in.Path)
	if err != nil {
		return stage.Artifact{}, err
	}
	defer f.Close()
	cfg, err := Config(f)
	if err != nil {
		return stage.Artifact{}, err
	}
	c, chunk := req.Params.Int("context"), req.Params.Int("prefill_chunk")
	if c == 0 {
		c = min(cfg.ContextLength, export.DefaultContextLength)
	}
	if c < 1 || c > 1<<20 || chunk < 1 || chunk > c {
		return stage.Artifact{}, fmt.Errorf("context %d and prefill_chunk %d: want 1 ≤ prefill_chunk ≤ context ≤ %d", c, chunk, 1<<20)
	}
	p := mil.NewProgram()
	for _, fd := range []struct {
		name string
		n    int
	}{{"prefill", chunk}, {"decode", 1}} {
		fn := arch.NewFunc(p, f, cfg, arch.FuncSpec{Name: fd.name, N: fd.n, C: c, First: 0, End: cfg.BlockCount})
		logits, err := arch.Build(Qwen2, fn)
		if err != nil {
			return stage.Artifact{}, fmt.Errorf("%s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
		fn.F.Output("logits", fn.F.Cast(logits, mil.FP32))
		if err := fn.F.Err(); err != nil {
			return stage.Artifact{}, fmt.Errorf("%s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
	}
	p.SetDefaultFunction("decode")
	for k, v := range map[string]string{
		"lilims.contract":       export.Contract,
		"lilims.arch":           cfg.Arch,
		"lilims.context_length": strconv.Itoa(c),
		"lilims.prefill_chunk":  strconv.Itoa(chunk),
		"lilims.vocab_size":     strconv.Itoa(cfg.VocabSize),
		"lilims.layers":         strconv.Itoa(cfg.BlockCount),
		"lilims.layer_range":    fmt.Sprintf("0-%d", cfg.BlockCount),
		"lilims.source":         filepath.Base(f.Path),
	} {
		p.SetMetadata(k, v)
	}
	out := filepath.Join(req.OutDir, "model.mlpackage")
	model := &milpb.Model{}
	tensors := 0
	err = mlpackage.Write(out, model, func(w *blob.Writer) error {
		m, err := p.Build(weightWriter{ctx: ctx, w: w, done: func() {
			tensors++
			req.Report(stage.Event{Event: "progress", Done: int64(tensors), Unit: "tensors"})
		}})
		if err != nil {
			return err
		}
		proto.Merge(model, m)
		return nil
	})
	if err != nil {
		return stage.Artifact{}, fmt.Errorf("%s: %w", filepath.Base(f.Path), err)
	}
	return stage.Artifact{Kind: "mlpackage", Path: out}, nil
}

// weightWriter checks for cancellation before each weight record and reports progress.
type weightWriter struct {
	ctx  context.Context
	w    mil.BlobWriter
	done func()
}

func (c weightWriter) Add(dtype blob.DataType, data []byte, n int) (uint64, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	off, err := c.w.Add(dtype, data, n)
	if err == nil {
		c.done()
	}
	return off, err
}
