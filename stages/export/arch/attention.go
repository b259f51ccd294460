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
	fn.kEnd = f.Concat(0, c(1, cfg.HeadCountKV), stop, c(fn.stateDim(cfg.KeyLength)))
	fn.vEnd = f.Concat(0, c(1, cfg.HeadCountKV), stop, c(fn.stateDim(cfg.ValueLength)))
}

// updateCache writes the chunk's rows k [1, n_head_kv, N, head_dim_k] and v (likewise)
// into layer l's states at current_pos, padded with zero lanes to the states' width
// (stateDim), and returns the updated caches [1, n_head_kv, C, stateDim(·)].
func (fn *Func) updateCache(l int, k, v *mil.Value) (kc, vc *mil.Value) {
	f := fn.F
	fn.kvBounds()
	k, v = fn.padLanes(k, fn.Config.KeyLength), fn.padLanes(v, fn.Config.ValueLength)
	i := l - fn.First
	kc = f.SliceUpdate(f.ReadState(fn.kCache[i]), k, fn.kvBegin, fn.kEnd)
	f.WriteState(fn.kCache[i], kc)
	vc = f.SliceUpdate(f.ReadState(fn.vCache[i]), v, fn.kvBegin, fn.vEnd)
	f.WriteState(fn.vCache[i], vc)
	return kc, vc
}

// Attn is how a layer attends, beyond its projections.
type Attn struct {
	QScale  float64 // multiplies q after RoPE (phi2, phi3 and gemma pre-scale q); 0 means 1
	KQScale float64 // multiplies the scores (1/√head_dim for most); 0 means 1
	// SoftCap bounds the scores, SoftCap·tanh(scores/SoftCap), before the mask (gemma2;
	// llama.cpp build_attn_mha applies it before its kq_scale, so do we). 0: none.
	SoftCap float64
	// Local marks a sliding-window layer (gemma2, gemma3): keys Config.SlidingWindow or more
	// positions behind the query are masked (llama.cpp's LLAMA_SWA_TYPE_STANDARD), and RoPE
	// uses the local base and scale Config.RopeBaseSWA, Config.RopeScaleSWA.
	Local bool
}

// Attention is Attend with Attn{QScale: qScale, KQScale: kqScale}.
func (fn *Func) Attention(l int, q, k, v *mil.Value, qScale, kqScale float64) *mil.Value {
	return fn.Attend(l, q, k, v, Attn{QScale: qScale, KQScale: kqScale})
}

// Attend is self-attention of layer l over its KV state. q, k and v are the projections
// (n_head·head_dim_k, n_head_kv·head_dim_k and n_head_kv·head_dim_v features, in the
// function's layout); RoPE is applied to q and k when the architecture has it, then q is
// multiplied by a.QScale. The chunk's K/V rows are written into the states at current_pos,
// and attention runs over the whole updated cache with scores scaled by a.KQScale (and
// soft-capped), plus the causal mask (and the sliding window of a local layer). It returns
// the heads' outputs concatenated (n_head·head_dim_v features) in the function's layout.
//
// The KV states are [1, n_head_kv, C, head_dim] in both layouts, so the program interface
// does not depend on the layout.
func (fn *Func) Attend(l int, q, k, v *mil.Value, a Attn) *mil.Value {
	if fn.err != nil || q == nil || k == nil || v == nil {
		return nil
	}
	if l < fn.First || l >= fn.End {
		fn.fail(fmt.Errorf("export: %s: attention of layer %d in a function holding layers [%d, %d)", fn.File.Path, l, fn.First, fn.End))
		return nil
	}
	if a.QScale == 0 {
		a.QScale = 1
	}
	if a.KQScale == 0 {
		a.KQScale = 1
	}
	if a.Local && fn.Config.SlidingWindow < 1 {
		fn.fail(fmt.Errorf("export: %s: layer %d attends locally, but the model declares no sliding window", fn.File.Path, l))
		return nil
	}
	if fn.Layout == ANE {
		return fn.attentionANE(l, q, k, v, a)
	}
	f, cfg, n := fn.F, fn.Config, fn.N
	h, kvh, dk, dv := cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength
	g := h / kvh
	heads := func(x *mil.Value, nh, d int) *mil.Value { // [1, N, nh·d] → [1, nh, N, d]
		return f.Transpose(f.Reshape(x, 1, n, nh, d), 0, 2, 1, 3)
	}
	q, k, v = heads(q, h, dk), heads(k, kvh, dk), heads(v, kvh, dv)
	if cfg.Rope != RopeNone {
		q, k = fn.rope(q, a.Local), fn.rope(k, a.Local)
	}
	if a.QScale != 1 {
		q = f.Mul(q, fn.Scalar(a.QScale))
	}
	kc, vc := fn.updateCache(l, k, v)

	// Consecutive query heads share a KV head (h / g), so [1, H, N, D] regroups as
	// [1, KVH, G·N, D] and one matmul per KV head serves its whole group. q gets the
	// states' zero lanes, the output loses V's.
	q = fn.padLanes(q, dk)
	s := f.Matmul(f.Reshape(q, 1, kvh, g*n, fn.stateDim(dk)), kc, false, true)
	s = fn.scores(f.Reshape(s, 1, h, n, fn.C), a)
	p := f.Softmax(f.Add(s, fn.mask(a.Local, false)), -1)
	o := f.Matmul(f.Reshape(p, 1, kvh, g*n, fn.C), vc, false, false)
	o = f.Transpose(fn.unpadLanes(f.Reshape(o, 1, h, n, fn.stateDim(dv)), dv), 0, 2, 1, 3)
	return f.Reshape(o, 1, n, h*dv)
}

// attentionANE is Attention on channels-first activations [1, features, 1, N], after Apple's
// ml-ane-transformers: heads are split off the channel axis, each head's
// scores are laid out keys-first, [1, C, N], so that the softmax runs over axis 1 and the
// sequence stays on the last axis; per-head outputs are concatenated on the channel axis.
// K and V are transposed once per layer, to the cache's [1, n_head_kv, N, head_dim] rows,
// and so is Q, to [1, n_head, N, head_dim]: every score is then the same k·q dot product
// (matmul with transpose_y) as in the Standard layout, which the reference runtime sums in
// the same order — the two layouts give identical logits there.
func (fn *Func) attentionANE(l int, q, k, v *mil.Value, a Attn) *mil.Value {
	f, cfg, n := fn.F, fn.Config, fn.N
	h, kvh, dk, dv := cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength
	g := h / kvh
	q, k, v = f.Reshape(q, 1, h, dk, n), f.Reshape(k, 1, kvh, dk, n), f.Reshape(v, 1, kvh, dv, n)
	if cfg.Rope != RopeNone {
		q, k = fn.rope(q, a.Local), fn.rope(k, a.Local)
	}
	if a.QScale != 1 {
		q = f.Mul(q, fn.Scalar(a.QScale))
	}
	kc, vc := fn.updateCache(l, f.Transpose(k, 0, 1, 3, 2), f.Transpose(v, 0, 1, 3, 2))
	maskT := fn.mask(a.Local, true)
	head := func(x *mil.Value, i int) *mil.Value { // [1, H, a, b] → head i as [1, a, b]
		sh := x.Shape()
		return f.Reshape(f.SliceByIndex(x, []int{0, i, 0, 0}, []int{1, i + 1, sh[2], sh[3]}), 1, sh[2], sh[3])
	}
	qT := fn.padLanes(f.Transpose(q, 0, 1, 3, 2), dk)
	outs := make([]*mil.Value, h)
	var kj, vj *mil.Value
	for i := 0; i < h; i++ {
		if i%g == 0 { // consecutive query heads share KV head i/g
			kj, vj = head(kc, i/g), head(vc, i/g)
		}
		s := fn.scores(f.Matmul(kj, head(qT, i), false, true), a) // [1, C, dk]·[1, N, dk]ᵀ = [1, C, N]
		p := f.Softmax(f.Add(s, maskT), 1)
		outs[i] = f.Matmul(vj, p, true, false) // [1, dv, C]·[1, C, N] = [1, dv, N]
	}
	if dvp := fn.stateDim(dv); dvp != dv { // drop V's zero lanes: [1, H·dvp, N] → [1, H, dvp, N] → [1, H·dv, N]
		o := f.SliceByIndex(f.Reshape(f.Concat(1, outs...), 1, h, dvp, n), []int{0, 0, 0, 0}, []int{1, h, dv, n})
		return f.Reshape(o, 1, h*dv, 1, n)
	}
	return f.Reshape(f.Concat(1, outs...), 1, h*dv, 1, n)
}

// scores soft-caps then scales the attention scores s.
func (fn *Func) scores(s *mil.Value, a Attn) *mil.Value {
	if a.SoftCap != 0 {
		s = fn.SoftCap(s, a.SoftCap)
	}
	if a.KQScale != 1 {
		s = fn.F.Mul(s, fn.Scalar(a.KQScale))
	}
	return s
}

// SoftCap is c·tanh(x/c): gemma2's attention-logit and final-logit soft-capping.
func (fn *Func) SoftCap(x *mil.Value, c float64) *mil.Value {
	if x == nil {
		return nil
	}
	f := fn.F
	return f.Mul(f.Tanh(f.Mul(x, fn.Scalar(1/c))), fn.Scalar(c))
}

// mask returns the attention mask, built once per function: causal_mask [1, 1, N, C], or
// for a local layer causal_mask with −1e4 (MaskedScore) also wherever key j is
// SlidingWindow or more positions behind the query, position_ids[i] − j ≥ SlidingWindow.
// The window is computed in the graph from position_ids, so the program's inputs are those
// of every model. transposed gives the ANE layout's [1, C, N].
func (fn *Func) mask(local, transposed bool) *mil.Value {
	i := 0
	if local {
		i = 1
	}
	if transposed {
		i += 2
	}
	if fn.masks[i] != nil {
		return fn.masks[i]
	}
	f, n, c := fn.F, fn.N, fn.C
	m := fn.CausalMask
	if local {
		keys := make([]int, c)
		for j := range keys {
			keys[j] = j
		}
		behind := f.Sub(f.Reshape(fn.PositionIDs, n, 1), f.Reshape(f.Const(mil.IntVec(keys...)), 1, c)) // [N, C]
		far := f.Greater(behind, f.Const(mil.IntScalar(fn.Config.SlidingWindow-1)))
		window := f.Select(far, fn.Scalar(MaskedScore), fn.Scalar(0))
		m = f.Minimum(m, f.Reshape(window, 1, 1, n, c))
	}
	if transposed {
		m = f.Transpose(f.Reshape(m, 1, n, c), 0, 2, 1) // [1, C, N]
	}
	fn.masks[i] = m
	return m
}
