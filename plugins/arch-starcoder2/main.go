// Command arch-starcoder2 is a lilims architecture plugin: an export stage for GGUF models
// whose general.architecture is starcoder2, which lilims itself does not know.
//
// It is written only against lilims's public packages, as a third party would write it: it
// registers the starcoder2 architecture — its traits and its graph, stated with the shared
// blocks of stages/export/arch — and serves lilims's own export stage (with its parameters:
// context, prefill_chunk, layout, chunks, quantized weights) through the plugin SDK. The
// hyper-parameters are read by arch.ReadConfig from the standard keys under starcoder2.*, as
// for a built-in architecture. Use it from a pipeline with
//
//   - id: export
//     uses: plugin:./plugins/arch-starcoder2
//
// starcoder2 (llama.cpp src/models/starcoder2.cpp) is gpt2's block with rotary positions:
//
//	x = token_embd[t]
//	per layer: h = LayerNorm(x; attn_norm)
//	           q, k, v = W_q·h + b_q, W_k·h + b_k, W_v·h + b_v; RoPE NEOX on q, k
//	           x = W_o·attention(q, k, v; scores·1/√head_dim, GQA) + b_o + x
//	           h = LayerNorm(x; ffn_norm)
//	           x = W_down·GELU(W_up·h + b_up) + b_down + x
//	logits = W_out·LayerNorm(x; output_norm), W_out = output, else token_embd (tied)
package main

import (
	"math"

	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
)

// Spec is the stage this plugin serves.
var Spec = export.PluginSpec("export/starcoder2",
	"Export a starcoder2 GGUF model as a Core ML .mlpackage (spec 9, fp16, stateful KV cache, prefill+decode).")

func main() {
	sdk.Serve(sdk.Export(Spec, export.Stage{}))
}

// StarCoder2 is the architecture: LayerNorm, NEOX rope, and the blocks that add a bias
// wherever the file has one.
var StarCoder2 = arch.Arch{
	Traits:    arch.Traits{Rope: arch.RopeNeox},
	EmbedFunc: func(fn *arch.Func) *mil.Value { return fn.Embed("token_embd.weight") },
	BlockFunc: func(fn *arch.Func, l int, x *mil.Value) *mil.Value {
		f := fn.F
		q, k, v := fn.QKV(l, fn.LayerNorm(x, arch.Blk(l, "attn_norm")))
		x = f.Add(fn.SelfAttention(l, q, k, v, arch.Attn{KQScale: 1 / math.Sqrt(float64(fn.Config.KeyLength))}), x)
		return f.Add(fn.FFN(l, fn.LayerNorm(x, arch.Blk(l, "ffn_norm")), arch.GELUTanh), x)
	},
	HeadFunc: func(fn *arch.Func, x *mil.Value) *mil.Value {
		return fn.LMHead(fn.LayerNorm(x, "output_norm"), "output", "token_embd")
	},
}

func init() { arch.Register("starcoder2", StarCoder2) }
