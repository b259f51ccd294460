package arch

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/mil"
)

// The blocks here are the parts transformer architectures share, in the spirit of llama.cpp's
// build_qkv and build_ffn (src/llama-graph.cpp): an architecture file calls them by what
// they compute, and they check the tensors they use against the configuration, naming the
// tensor at fault, while the graph is built — before anything is written.

// Blk is the GGUF name of tensor name of layer l: blk.L.NAME.
func Blk(l int, name string) string { return fmt.Sprintf("blk.%d.%s", l, name) }

// Activation is the non-linearity of a feed-forward block.
type Activation int

const (
	SiLU     Activation = iota // x·σ(x) (ggml_silu; SwiGLU when gated)
	GELUTanh                   // GELU, tanh approximation (ggml_gelu; GEGLU when gated)
)

func (fn *Func) activate(x *mil.Value, act Activation) *mil.Value {
	if act == GELUTanh {
		return fn.F.Gelu(x, "TANH_APPROXIMATION")
	}
	return fn.F.Silu(x)
}

// QKV projects the attention input h of layer l onto queries, keys and values: from the fused
// blk.l.attn_qkv ([q | k | v] rows) when the file has it, else from attn_q, attn_k and
// attn_v; each with its bias wherever the file has one (qwen2, phi2). The rows of every
// projection are checked against n_head·head_dim_k, n_head_kv·head_dim_k and
// n_head_kv·head_dim_v.
func (fn *Func) QKV(l int, h *mil.Value) (q, k, v *mil.Value) {
	cfg := fn.Config
	nq, nk, nv := cfg.HeadCount*cfg.KeyLength, cfg.HeadCountKV*cfg.KeyLength, cfg.HeadCountKV*cfg.ValueLength
	if qkv := Blk(l, "attn_qkv"); fn.Has(qkv + ".weight") {
		if !fn.wantRows(qkv+".weight", nq+nk+nv) {
			return nil, nil, nil
		}
		return fn.LinearRows(h, qkv, 0, nq), fn.LinearRows(h, qkv, nq, nq+nk), fn.LinearRows(h, qkv, nq+nk, nq+nk+nv)
	}
	if !fn.wantRows(Blk(l, "attn_q.weight"), nq) || !fn.wantRows(Blk(l, "attn_k.weight"), nk) || !fn.wantRows(Blk(l, "attn_v.weight"), nv) {
		return nil, nil, nil
	}
	return fn.Linear(h, Blk(l, "attn_q")), fn.Linear(h, Blk(l, "attn_k")), fn.Linear(h, Blk(l, "attn_v"))
}

// SelfAttention is the attention block of layer l after its projections: attention over the
// KV state as a says (Attend) and the output projection attn_output.
func (fn *Func) SelfAttention(l int, q, k, v *mil.Value, a Attn) *mil.Value {
	if !fn.wantRows(Blk(l, "attn_output.weight"), fn.Config.EmbeddingLen) {
		return nil
	}
	return fn.Linear(fn.Attend(l, q, k, v, a), Blk(l, "attn_output"))
}

// GatedFFN is the gated feed-forward block of layer l, W_down·(act(W_gate·h) ⊙ W_up·h)
// (llama.cpp build_ffn, LLM_FFN_PAR): with ffn_gate and ffn_up, or — when the file has no
// ffn_gate — with ffn_up holding the gate and up projections fused as [gate | up] rows
// (phi3; llama.cpp's swiglu takes the gate from the first half).
func (fn *Func) GatedFFN(l int, h *mil.Value, act Activation) *mil.Value {
	f, ff := fn.F, fn.Config.FeedForward
	up := Blk(l, "ffn_up")
	var g, u *mil.Value
	if gate := Blk(l, "ffn_gate"); fn.Has(gate + ".weight") {
		if !fn.wantRows(gate+".weight", ff) || !fn.wantRows(up+".weight", ff) {
			return nil
		}
		g, u = fn.Linear(h, gate), fn.Linear(h, up)
	} else {
		if !fn.wantRows(up+".weight", 2*ff) {
			return nil
		}
		g, u = fn.LinearRows(h, up, 0, ff), fn.LinearRows(h, up, ff, 2*ff)
	}
	if g == nil || u == nil {
		return nil
	}
	return fn.down(l, f.Mul(fn.activate(g, act), u))
}

// FFN is the plain feed-forward block of layer l, W_down·act(W_up·h + b_up) + b_down (gpt2,
// phi2).
func (fn *Func) FFN(l int, h *mil.Value, act Activation) *mil.Value {
	up := Blk(l, "ffn_up")
	if !fn.wantRows(up+".weight", fn.Config.FeedForward) {
		return nil
	}
	u := fn.Linear(h, up)
	if u == nil {
		return nil
	}
	return fn.down(l, fn.activate(u, act))
}

func (fn *Func) down(l int, x *mil.Value) *mil.Value {
	if !fn.wantRows(Blk(l, "ffn_down.weight"), fn.Config.EmbeddingLen) {
		return nil
	}
	return fn.Linear(x, Blk(l, "ffn_down"))
}

// HeadNorm is RMSNorm over each head of the projection x (n·head_dim_k features in the
// function's layout) with the per-head weight name ([head_dim_k]): the q/k norms of qwen3
// and gemma3, applied before RoPE.
func (fn *Func) HeadNorm(x *mil.Value, name string) *mil.Value {
	d := fn.Config.KeyLength
	if x == nil || fn.err != nil || !fn.wantShape(name, d) {
		return nil
	}
	f, w := fn.F, fn.Weight(name)
	if fn.Layout == ANE { // [1, n·d, 1, N] → [1, n, N, d] → back
		n := x.Shape()[1] / d
		t := f.Transpose(f.Reshape(x, 1, n, d, fn.N), 0, 1, 3, 2)
		return f.Reshape(f.Transpose(fn.rmsNormLast(t, w), 0, 1, 3, 2), 1, n*d, 1, fn.N)
	}
	n := x.Shape()[2] / d // [1, N, n·d] → [1, N, n, d] → back
	return f.Reshape(fn.rmsNormLast(f.Reshape(x, 1, fn.N, n, d), w), 1, fn.N, n*d)
}

// wantRows checks that the 2-D tensor name has rows output rows (ggml's ne1).
func (fn *Func) wantRows(name string, rows int) bool {
	t, ok := fn.tensor(name)
	if !ok {
		return false
	}
	if len(t.Shape) != 2 || int(t.Shape[1]) != rows {
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v, want [n_in, %d] (architecture %s)", fn.File.Path, name, t.Shape, rows, fn.Config.Arch))
		return false
	}
	return true
}

// wantShape checks that tensor name has exactly the GGUF shape dims (ne0 first).
func (fn *Func) wantShape(name string, dims ...int) bool {
	t, ok := fn.tensor(name)
	if !ok {
		return false
	}
	good := len(t.Shape) == len(dims)
	for i := 0; good && i < len(dims); i++ {
		good = int(t.Shape[i]) == dims[i]
	}
	if !good {
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v, want %v (architecture %s)", fn.File.Path, name, t.Shape, dims, fn.Config.Arch))
	}
	return good
}
