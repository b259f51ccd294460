package arch

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/mil"
)

// kvBounds builds, once per function, the slice_update bounds of the chunk's K/V rows:
// begin [0, 0, current_pos, 0], end [1, n_head_kv, current_pos+N, head_dim].
func (fn *Func) kvBounds() {
	if fn.kvBegin != nil {
		return
	}
	f, cfg := fn.F, fn.Config
	c := func(v ...int) *mil.Value { return f.Const(mil.IntVec(v...)) }
	stop := f.Add(fn.CurrentPos, c(fn.N))
	fn.kvBegin = f.Concat(0, c(0, 0), fn.CurrentPos, c(0))
	fn.kEnd = f.Concat(0, c(1, cfg.HeadCountKV), stop, c(cfg.KeyLength))
	fn.vEnd = f.Concat(0, c(1, cfg.HeadCountKV), stop, c(cfg.ValueLength))
}

// updateCache writes the chunk's rows k [1, n_head_kv, N, head_dim_k] and v (likewise)
// into layer l's states at current_pos and returns the updated caches [1, n_head_kv, C, ·].
func (fn *Func) updateCache(l int, k, v *mil.Value) (kc, vc *mil.Value) {
	f := fn.F
	fn.kvBounds()
	i := l - fn.First
	kc = f.SliceUpdate(f.ReadState(fn.kCache[i]), k, fn.kvBegin, fn.kEnd)
	f.WriteState(fn.kCache[i], kc)
	vc = f.SliceUpdate(f.ReadState(fn.vCache[i]), v, fn.kvBegin, fn.vEnd)
	f.WriteState(fn.vCache[i], vc)
	return kc, vc
}

// Attention is self-attention of layer l over its KV state. q, k and v are the projections
// (n_head·head_dim_k, n_head_kv·head_dim_k and n_head_kv·head_dim_v features, in the
// function's layout); RoPE is applied to q and k when the architecture has it, then q is
// multiplied by qScale (phi2 and gemma pre-scale q; 1 for none). The chunk's K/V rows are
// written into the states at current_pos, and attention runs over the whole updated cache
// with scores scaled by kqScale, plus the causal mask. It returns the heads' outputs
// concatenated (n_head·head_dim_v features) in the function's layout.
//
// The KV states are [1, n_head_kv, C, head_dim] in both layouts, so the program interface
// does not depend on the layout.
func (fn *Func) Attention(l int, q, k, v *mil.Value, qScale, kqScale float64) *mil.Value {
	if fn.err != nil || q == nil || k == nil || v == nil {
		return nil
	}
	if l < fn.First || l >= fn.End {
		fn.fail(fmt.Errorf("export: %s: attention of layer %d in a function holding layers [%d, %d)", fn.File.Path, l, fn.First, fn.End))
		return nil
	}
	if fn.Layout == ANE {
		return fn.attentionANE(l, q, k, v, qScale, kqScale)
	}
	f, cfg, n := fn.F, fn.Config, fn.N
	h, kvh, dk, dv := cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength
	g := h / kvh
	heads := func(x *mil.Value, nh, d int) *mil.Value { // [1, N, nh·d] → [1, nh, N, d]
		return f.Transpose(f.Reshape(x, 1, n, nh, d), 0, 2, 1, 3)
	}
	q, k, v = heads(q, h, dk), heads(k, kvh, dk), heads(v, kvh, dv)
	if cfg.Rope != RopeNone {
		q, k = fn.Rope(q), fn.Rope(k)
	}
	if qScale != 1 {
		q = f.Mul(q, fn.Scalar(qScale))
	}
	kc, vc := fn.updateCache(l, k, v)

	// Consecutive query heads share a KV head (h / g), so [1, H, N, D] regroups as
	// [1, KVH, G·N, D] and one matmul per KV head serves its whole group.
	s := f.Matmul(f.Reshape(q, 1, kvh, g*n, dk), kc, false, true)
	s = f.Reshape(s, 1, h, n, fn.C)
	if kqScale != 1 {
		s = f.Mul(s, fn.Scalar(kqScale))
	}
	p := f.Softmax(f.Add(s, fn.CausalMask), -1)
	o := f.Matmul(f.Reshape(p, 1, kvh, g*n, fn.C), vc, false, false)
	o = f.Transpose(f.Reshape(o, 1, h, n, dv), 0, 2, 1, 3)
	return f.Reshape(o, 1, n, h*dv)
}

// attentionANE is Attention on channels-first activations [1, features, 1, N], after Apple's
// ml-ane-transformers (coreml-mil.md §7.5): heads are split off the channel axis, each head's
// scores are laid out keys-first, [1, C, N], so that the softmax runs over axis 1 and the
// sequence stays on the last axis; per-head outputs are concatenated on the channel axis.
// K and V are transposed once per layer, to the cache's [1, n_head_kv, N, head_dim] rows,
// and so is Q, to [1, n_head, N, head_dim]: every score is then the same k·q dot product
// (matmul with transpose_y) as in the Standard layout, which the reference runtime sums in
// the same order — the two layouts give identical logits there.
func (fn *Func) attentionANE(l int, q, k, v *mil.Value, qScale, kqScale float64) *mil.Value {
	f, cfg, n, c := fn.F, fn.Config, fn.N, fn.C
	h, kvh, dk, dv := cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength
	g := h / kvh
	q, k, v = f.Reshape(q, 1, h, dk, n), f.Reshape(k, 1, kvh, dk, n), f.Reshape(v, 1, kvh, dv, n)
	if cfg.Rope != RopeNone {
		q, k = fn.Rope(q), fn.Rope(k)
	}
	if qScale != 1 {
		q = f.Mul(q, fn.Scalar(qScale))
	}
	kc, vc := fn.updateCache(l, f.Transpose(k, 0, 1, 3, 2), f.Transpose(v, 0, 1, 3, 2))
	if fn.maskT == nil {
		fn.maskT = f.Transpose(f.Reshape(fn.CausalMask, 1, n, c), 0, 2, 1) // [1, C, N]
	}
	head := func(x *mil.Value, i int) *mil.Value { // [1, H, a, b] → head i as [1, a, b]
		sh := x.Shape()
		return f.Reshape(f.SliceByIndex(x, []int{0, i, 0, 0}, []int{1, i + 1, sh[2], sh[3]}), 1, sh[2], sh[3])
	}
	qT := f.Transpose(q, 0, 1, 3, 2)
	outs := make([]*mil.Value, h)
	var kj, vj *mil.Value
	for i := 0; i < h; i++ {
		if i%g == 0 { // consecutive query heads share KV head i/g
			kj, vj = head(kc, i/g), head(vc, i/g)
		}
		s := f.Matmul(kj, head(qT, i), false, true) // [1, C, dk]·[1, N, dk]ᵀ = [1, C, N]
		if kqScale != 1 {
			s = f.Mul(s, fn.Scalar(kqScale))
		}
		p := f.Softmax(f.Add(s, fn.maskT), 1)
		outs[i] = f.Matmul(vj, p, true, false) // [1, dv, C]·[1, C, N] = [1, dv, N]
	}
	return f.Reshape(f.Concat(1, outs...), 1, h*dv, 1, n)
}
