package arch

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil"
)

// Linear is x·Wᵀ + b for the GGUF tensors prefix.weight and, when the file has it,
// prefix.bias: a linear op on [1, N, in] (Standard) or a 1×1 conv on [1, in, 1, N] (ANE).
func (fn *Func) Linear(x *mil.Value, prefix string) *mil.Value {
	return fn.linear(x, prefix, 0, -1)
}

// LinearRows is Linear restricted to output rows [r0, r1) of prefix.weight (and of its bias):
// one part of a fused projection such as attn_qkv = [q | k | v].
func (fn *Func) LinearRows(x *mil.Value, prefix string, r0, r1 int) *mil.Value {
	return fn.linear(x, prefix, r0, r1)
}

func (fn *Func) linear(x *mil.Value, prefix string, r0, r1 int) *mil.Value {
	if fn.err != nil || x == nil {
		return nil
	}
	name := prefix + ".weight"
	t, ok := fn.tensor(name)
	if !ok {
		return nil
	}
	if len(t.Shape) != 2 {
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v, want a matrix", fn.File.Path, name, t.Shape))
		return nil
	}
	sh := x.Shape()
	if in := sh[len(sh)-1]; fn.Layout == ANE {
		in = sh[1]
		if len(sh) != 4 || int(t.Shape[0]) != in {
			fn.fail(fmt.Errorf("export: %s: tensor %q has input dimension %d, the graph feeds it %v (architecture %s)",
				fn.File.Path, name, t.Shape[0], sh, fn.Config.Arch))
			return nil
		}
	} else if int(t.Shape[0]) != in {
		fn.fail(fmt.Errorf("export: %s: tensor %q has input dimension %d, the graph feeds it %d (architecture %s)",
			fn.File.Path, name, t.Shape[0], in, fn.Config.Arch))
		return nil
	}
	if r1 < 0 {
		r1 = int(t.Rows())
	}
	w := fn.matrix(name, r0, r1)
	var b *mil.Value
	if fn.Has(prefix + ".bias") {
		b = fn.vectorRows(prefix+".bias", r0, r1)
	}
	if fn.err != nil {
		return nil
	}
	if fn.Layout == ANE {
		return fn.F.Conv(x, w, b)
	}
	return fn.F.Linear(x, w, b)
}

// Embed looks the input tokens up in the embedding table name ([n_vocab, n_embd]) and
// returns the hidden state in the function's layout.
func (fn *Func) Embed(name string) *mil.Value {
	if fn.InputIDs == nil {
		fn.fail(fmt.Errorf("export: %s: Embed in a function that starts from hidden_states", fn.File.Path))
		return nil
	}
	if parts := fn.vocabParts(name); parts != nil {
		return fn.embedParts(name, parts)
	}
	return fn.rowsToHidden(fn.F.Gather(fn.Weight(name), fn.InputIDs, 0))
}

// vocabParts is the split of table name's rows (a vocabulary) that keeps every dimension
// within the Neural Engine's limit (contract.VocabParts), or nil when the table is used
// whole: in the Standard layout, or for at most contract.MaxDimension rows.
func (fn *Func) vocabParts(name string) []int {
	t, ok := fn.tensor(name)
	if !ok || fn.Layout != ANE || len(t.Shape) != 2 || t.Rows() <= contract.MaxDimension {
		return nil
	}
	return contract.VocabParts(int(t.Rows()))
}

// embedParts is Embed (ANE layout) over a table split at the row bounds b: each part
// gathers the token clamped into its rows, and keeps the result only where the clamp left
// the token as it was — where the token is one of its rows — so the sum over parts is the
// one row the token names (the others add exact zeros).
func (fn *Func) embedParts(name string, b []int) *mil.Value {
	f, n := fn.F, fn.N
	var sum *mil.Value
	for k := 0; k+1 < len(b); k++ {
		local := f.Sub(fn.InputIDs, f.Const(mil.IntScalar(b[k])))
		idx := f.Minimum(f.Maximum(local, f.Const(mil.IntScalar(0))), f.Const(mil.IntScalar(b[k+1]-b[k]-1)))
		rows := fn.rowsToHidden(f.Gather(fn.matrix(name, b[k], b[k+1]), idx, 0))
		part := f.Select(f.Reshape(f.Equal(local, idx), 1, 1, 1, n), rows, fn.Scalar(0))
		if sum == nil {
			sum = part
		} else {
			sum = f.Add(sum, part)
		}
	}
	return sum
}

// EmbedPositions looks the chunk's positions up in the learned position table name
// ([n_ctx, n_embd], gpt2) and returns them in the hidden state's layout.
func (fn *Func) EmbedPositions(name string) *mil.Value {
	return fn.rowsToHidden(fn.F.Gather(fn.Weight(name), fn.PositionIDs, 0))
}

// rowsToHidden turns gathered table rows (N rows of n_embd, with the table's extra unit
// axes) into the hidden state's layout: [1, N, n_embd], or [1, n_embd, 1, N] for ANE.
func (fn *Func) rowsToHidden(x *mil.Value) *mil.Value {
	if x == nil {
		return nil
	}
	f, e := fn.F, fn.Config.EmbeddingLen
	if fn.Layout == ANE {
		return f.Reshape(f.Transpose(f.Reshape(x, fn.N, e), 1, 0), 1, e, 1, fn.N)
	}
	return f.Reshape(x, 1, fn.N, e)
}

// LayerNorm is LayerNorm over the features with prefix.weight and prefix.bias (gpt2, phi2).
func (fn *Func) LayerNorm(x *mil.Value, prefix string) *mil.Value {
	if !fn.wantShape(prefix+".weight", fn.Config.EmbeddingLen) {
		return nil
	}
	g := fn.Weight(prefix + ".weight")
	var b *mil.Value
	if fn.Has(prefix + ".bias") {
		b = fn.Weight(prefix + ".bias")
	}
	if fn.err != nil || x == nil {
		return nil
	}
	return fn.normLast(x, func(x *mil.Value) *mil.Value {
		return fn.F.LayerNorm(x, []int{-1}, g, b, float64(fn.Config.NormEps))
	})
}

// normLast applies norm, which normalises over the last axis, to the features of x. In the
// ANE layout the features are axis 1, so x goes [1, C, 1, N] → [1, N, 1, C] and back.
// layer_norm over axes [1] is valid MIL and what Apple's guidance does, but the reference
// runtime normalises only trailing axes, and the program must run there; the two
// transposes keep the numerics identical to the Standard layout's.
func (fn *Func) normLast(x *mil.Value, norm func(*mil.Value) *mil.Value) *mil.Value {
	if fn.Layout != ANE {
		return norm(x)
	}
	f := fn.F
	return f.Transpose(norm(f.Transpose(x, 0, 3, 2, 1)), 0, 3, 2, 1)
}

// RMSNorm is x/sqrt(mean(x²)+eps)·weight over the features (llama, gemma). MIL has no
// rms_norm and x² may overflow fp16, so it is lowered as layer_norm over concat([x, −x]):
// that row has exactly zero mean and variance mean(x²); its first half is the
// RMS-normalised x (Anemll's trick).
func (fn *Func) RMSNorm(x *mil.Value, weight string) *mil.Value {
	if x == nil || fn.err != nil || !fn.wantShape(weight, fn.Config.EmbeddingLen) {
		return nil
	}
	w := fn.Weight(weight)
	return fn.normLast(x, func(x *mil.Value) *mil.Value { return fn.rmsNormLast(x, w) })
}

// rmsNormLast is RMSNorm over the last axis of x, times w.
func (fn *Func) rmsNormLast(x, w *mil.Value) *mil.Value {
	f := fn.F
	sh := x.Shape()
	both := f.Concat(-1, x, f.Mul(x, fn.Scalar(-1)))
	n := f.LayerNorm(both, []int{-1}, nil, nil, float64(fn.Config.NormEps))
	return f.Mul(f.SliceByIndex(n, make([]int, len(sh)), sh), w)
}

// LMHead projects the final hidden state onto the vocabulary with the first of names that
// the file holds (output.weight, or the tied token_embd.weight), plus output.bias if
// present: fp16 logits [1, N, n_vocab] in either layout. In the ANE layout a vocabulary
// over contract.MaxDimension is projected in parts (contract.VocabParts), one 1×1 conv
// each, returned stacked as [K, N, R] (R the first part's rows, the last part padded with
// zeros): every dimension stays within the limit and elementwise ops (a final soft-cap)
// still apply; the exporter cuts the stack into the contract's logits_<k> outputs.
func (fn *Func) LMHead(x *mil.Value, names ...string) *mil.Value {
	for _, name := range names {
		if !fn.Has(name + ".weight") {
			continue
		}
		if fn.Layout != ANE {
			return fn.Linear(x, name)
		}
		b := fn.vocabParts(name + ".weight")
		if b == nil {
			b = []int{0, -1}
		}
		f, r := fn.F, b[1]
		var parts []*mil.Value
		for k := 0; k+1 < len(b); k++ {
			l := fn.LinearRows(x, name, b[k], b[k+1])
			if l == nil {
				return nil
			}
			v := l.Shape()[1] // [1, v, 1, N] → [1, N, v]
			l = f.Reshape(f.Transpose(f.Reshape(l, v, fn.N), 1, 0), 1, fn.N, v)
			if len(b) == 2 {
				return l
			}
			if v < r {
				l = f.Concat(2, l, f.Fill([]int{1, fn.N, r - v}, mil.FloatScalar(mil.FP16, 0)))
			}
			parts = append(parts, l)
		}
		return f.Concat(0, parts...)
	}
	fn.fail(fmt.Errorf("export: %s: no LM head tensor (looked for %v)", fn.File.Path, names))
	return nil
}
