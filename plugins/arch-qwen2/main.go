// Command arch-qwen2 is a lilims architecture plugin: an export stage for GGUF models whose
// general.architecture is qwen2, which lilims itself does not know.
//
// It is written only against lilims's public packages, as a third party would write it: it
// registers the qwen2 graph and hyper-parameter reader with stages/export/arch and serves
// lilims's own export stage (with its parameters: context, prefill_chunk, layout, chunks,
// quantized weights) through the plugin SDK. Use it from a pipeline with
//
//   - id: export
//     uses: plugin:./plugins/arch-qwen2
//
// qwen2 (gguf-arch.md) is llama with biases on the q, k and v projections and NEOX rotary
// embedding (pairs x[i], x[i + n_rot/2]); its keys are llama's under qwen2.*, its rope base
// comes from the file (1e6 for Qwen2).
package main

import (
	"fmt"
	"math"

	"github.com/lilims/lilims/pipeline/plugin/sdk"
	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
)

// Spec is the stage this plugin serves.
var Spec = export.PluginSpec("export/qwen2",
	"Export a qwen2 GGUF model as a Core ML .mlpackage (spec 9, fp16, stateful KV cache, prefill+decode).")

func main() {
	sdk.Serve(sdk.Export(Spec, export.Stage{}))
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
// Linear adds a bias wherever the file has one, so the graph reads as llama's; the rope
// style comes from the configuration.
var Qwen2 = arch.Arch{
	Traits:    arch.Traits{RMSNorm: true, Rope: arch.RopeNeox},
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
