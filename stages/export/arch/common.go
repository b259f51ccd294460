package arch

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// MaskedScore is the value the host puts in causal_mask where a query may not attend
// (Apple's ANE guidance: −1e4, exact in fp16, exp underflows to 0 after softmax).
const MaskedScore = -1e4

// Func is one function of the exported program under construction (prefill with N = the
// chunk, or decode with N = 1): the MIL function, the contract's inputs and KV states, and
// the GGUF file its weights come from.
type Func struct {
	F      *mil.Function
	File   *gguf.File
	Config *gguf.Config
	N      int // tokens per call
	C      int // exported context length: rows of the KV states

	InputIDs    *mil.Value // int32 [1, N]
	PositionIDs *mil.Value // int32 [N]: absolute positions of the chunk's tokens
	CausalMask  *mil.Value // fp16 [1, 1, N, C]: 0 where key j ≤ position_ids[i], else −1e4
	CurrentPos  *mil.Value // int32 [1]: where the chunk's K/V rows are written

	kCache, vCache []*mil.Value // fp16 [1, n_head_kv, C, head_dim] per layer

	err        error
	cos, sin   *mil.Value // [1, 1, N, n_rot/2], gathered once per function
	kvBegin    *mil.Value // [0, 0, current_pos, 0]
	kEnd, vEnd *mil.Value // [1, n_head_kv, current_pos+N, head_dim]
}

// NewFunc adds function name to p and declares the contract's inputs and one K and one V
// state per layer.
func NewFunc(p *mil.Program, name string, file *gguf.File, cfg *gguf.Config, n, c int) *Func {
	f := p.Function(name)
	fn := &Func{F: f, File: file, Config: cfg, N: n, C: c}
	fn.InputIDs = f.Input("input_ids", mil.Int32, 1, n)
	fn.PositionIDs = f.Input("position_ids", mil.Int32, n)
	fn.CausalMask = f.Input("causal_mask", mil.FP16, 1, 1, n, c)
	fn.CurrentPos = f.Input("current_pos", mil.Int32, 1)
	for l := 0; l < cfg.BlockCount; l++ {
		fn.kCache = append(fn.kCache, f.State(fmt.Sprintf("k_cache_%d", l), mil.FP16, 1, cfg.HeadCountKV, c, cfg.KeyLength))
		fn.vCache = append(fn.vCache, f.State(fmt.Sprintf("v_cache_%d", l), mil.FP16, 1, cfg.HeadCountKV, c, cfg.ValueLength))
	}
	return fn
}

// Err returns the first error met while building: a missing or misshapen tensor, or a
// graph error from the MIL builder.
func (fn *Func) Err() error {
	if fn.err != nil {
		return fn.err
	}
	return fn.F.Err()
}

func (fn *Func) fail(err error) {
	if fn.err == nil {
		fn.err = err
	}
}

// Has reports whether the GGUF file holds tensor name.
func (fn *Func) Has(name string) bool {
	_, ok := fn.File.Tensor(name)
	return ok
}

// Scalar is an fp16 scalar constant.
func (fn *Func) Scalar(v float64) *mil.Value {
	return fn.F.Const(mil.FloatScalar(mil.FP16, v))
}

// Weight binds GGUF tensor name as an fp16 constant in PyTorch order (GGUF ne reversed:
// a linear weight ne = [in, out] becomes [out, in], the bytes' own row-major layout).
func (fn *Func) Weight(name string) *mil.Value { return fn.weightRows(name, "", nil) }

// weightRows binds the rows (for a 1-D tensor: the elements) listed in rows, in that order,
// of tensor name; rows == nil takes them all. tag distinguishes the selection's name from
// the whole tensor's, since weights are shared across functions by name.
func (fn *Func) weightRows(name, tag string, rows []int) *mil.Value {
	if fn.err != nil {
		return nil
	}
	t, ok := fn.File.Tensor(name)
	if !ok {
		fn.fail(fmt.Errorf("export: %s: tensor %q not found (architecture %s)", fn.File.Path, name, fn.Config.Arch))
		return nil
	}
	var shape []int
	switch len(t.Shape) {
	case 1:
		shape = []int{int(t.Shape[0])}
	case 2:
		shape = []int{int(t.Shape[1]), int(t.Shape[0])}
	default:
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v; only 1-D and 2-D weights are supported", fn.File.Path, name, t.Shape))
		return nil
	}
	if rows != nil {
		for _, r := range rows {
			if r < 0 || r >= shape[0] {
				fn.fail(fmt.Errorf("export: %s: tensor %q: row %d out of range (%d rows)", fn.File.Path, name, r, shape[0]))
				return nil
			}
		}
		shape[0] = len(rows)
	}
	key := name
	if tag != "" {
		key += "#" + tag
	}
	return fn.F.Weight(key, mil.FP16, shape, fp16Rows(fn.File, t, rows))
}

// fp16Rows reads tensor t lazily as fp16 bytes: Build calls it once, when it writes the
// weight, so only one tensor is dequantized at a time. Any ggml type goes through
// DequantizeRows (K-quants included); conversion to fp16 rounds to nearest even.
func fp16Rows(f *gguf.File, t *gguf.Tensor, rows []int) mil.WeightSource {
	return func() ([]byte, error) {
		ne0 := int(t.Shape[0])
		if len(t.Shape) == 1 {
			all, err := f.Float32s(t)
			if err != nil {
				return nil, err
			}
			if rows != nil {
				sel := make([]float32, len(rows))
				for i, r := range rows {
					sel[i] = all[r]
				}
				all = sel
			}
			return halves(nil, all), nil
		}
		nrows := int(t.Rows())
		if rows == nil {
			out := make([]byte, 0, 2*nrows*ne0)
			const batch = 64
			buf := make([]float32, batch*ne0)
			for r := 0; r < nrows; r += batch {
				k := min(batch, nrows-r)
				if err := f.DequantizeRows(t, int64(r), int64(k), buf[:k*ne0]); err != nil {
					return nil, err
				}
				out = halves(out, buf[:k*ne0])
			}
			return out, nil
		}
		out := make([]byte, 0, 2*len(rows)*ne0)
		buf := make([]float32, ne0)
		for _, r := range rows {
			if err := f.DequantizeRows(t, int64(r), 1, buf); err != nil {
				return nil, err
			}
			out = halves(out, buf)
		}
		return out, nil
	}
}

// halves appends v as little-endian fp16.
func halves(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(x).Bits())
	}
	return dst
}

// Linear is x·Wᵀ + b for the GGUF tensors prefix.weight and, when the file has it,
// prefix.bias.
func (fn *Func) Linear(x *mil.Value, prefix string) *mil.Value {
	return fn.linear(x, prefix, "", nil)
}

// LinearRows is Linear restricted to output rows [r0, r1) of prefix.weight (and of its bias):
// one part of a fused projection such as attn_qkv = [q | k | v].
func (fn *Func) LinearRows(x *mil.Value, prefix string, r0, r1 int) *mil.Value {
	rows := make([]int, r1-r0)
	for i := range rows {
		rows[i] = r0 + i
	}
	return fn.linear(x, prefix, fmt.Sprintf("rows%d_%d", r0, r1), rows)
}

func (fn *Func) linear(x *mil.Value, prefix, tag string, rows []int) *mil.Value {
	if fn.err != nil || x == nil {
		return nil
	}
	if t, ok := fn.File.Tensor(prefix + ".weight"); ok && len(t.Shape) == 2 {
		if in := x.Shape()[len(x.Shape())-1]; int(t.Shape[0]) != in {
			fn.fail(fmt.Errorf("export: %s: tensor %q has input dimension %d, the graph feeds it %d (architecture %s)",
				fn.File.Path, prefix+".weight", t.Shape[0], in, fn.Config.Arch))
			return nil
		}
	}
	w := fn.weightRows(prefix+".weight", tag, rows)
	var b *mil.Value
	if fn.Has(prefix + ".bias") {
		b = fn.weightRows(prefix+".bias", tag, rows)
	}
	if fn.err != nil {
		return nil
	}
	return fn.F.Linear(x, w, b)
}

// Embed looks the input tokens up in the embedding table name ([n_vocab, n_embd]):
// [1, N, n_embd].
func (fn *Func) Embed(name string) *mil.Value {
	return fn.F.Gather(fn.Weight(name), fn.InputIDs, 0)
}

// LayerNorm is LayerNorm over the last axis with prefix.weight and prefix.bias (gpt2, phi2).
func (fn *Func) LayerNorm(x *mil.Value, prefix string) *mil.Value {
	g := fn.Weight(prefix + ".weight")
	var b *mil.Value
	if fn.Has(prefix + ".bias") {
		b = fn.Weight(prefix + ".bias")
	}
	if fn.err != nil {
		return nil
	}
	return fn.F.LayerNorm(x, []int{-1}, g, b, float64(fn.Config.NormEps))
}

// RMSNorm is x/sqrt(mean(x²)+eps)·weight (llama, gemma). MIL has no rms_norm and x² may
// overflow fp16, so it is lowered as layer_norm over concat([x, −x]): that row has exactly
// zero mean and variance mean(x²); its first half is the RMS-normalised x (Anemll's trick,
// coreml-mil.md §5.4).
func (fn *Func) RMSNorm(x *mil.Value, weight string) *mil.Value {
	if x == nil {
		return nil
	}
	f := fn.F
	sh := x.Shape()
	both := f.Concat(-1, x, f.Mul(x, fn.Scalar(-1)))
	n := f.LayerNorm(both, []int{-1}, nil, nil, float64(fn.Config.NormEps))
	begin := make([]int, len(sh))
	half := f.SliceByIndex(n, begin, sh)
	return f.Mul(half, fn.Weight(weight))
}

// ropeTables returns cos and sin, each [C, n_rot/2] row-major, exactly as ggml's rope cache
// computes them: theta_scale = powf(base, −2/n_rot) in f32, theta_0 = p and
// theta_{i+1} = theta_i·theta_scale by repeated f32 multiplication, divided by the optional
// per-pair frequency factor, times freq_scale, then cosf/sinf.
func ropeTables(c, nRot int, base, freqScale float32, freqFactors []float32) (cos, sin []float32) {
	half := nRot / 2
	cos, sin = make([]float32, c*half), make([]float32, c*half)
	thetaScale := float32(math.Pow(float64(base), float64(float32(-2)/float32(nRot))))
	for p := 0; p < c; p++ {
		theta := float32(p)
		for i := 0; i < half; i++ {
			t := theta
			if freqFactors != nil {
				t /= freqFactors[i]
			}
			t *= freqScale
			cos[p*half+i] = float32(math.Cos(float64(t)))
			sin[p*half+i] = float32(math.Sin(float64(t)))
			theta *= thetaScale
		}
	}
	return cos, sin
}

// ropeAngles gathers the cos/sin rows of the chunk's positions: [1, 1, N, n_rot/2] each.
func (fn *Func) ropeAngles() (cos, sin *mil.Value) {
	if fn.cos != nil || fn.err != nil {
		return fn.cos, fn.sin
	}
	cfg := fn.Config
	half := cfg.RopeDims / 2
	var ff []float32
	if t, ok := fn.File.Tensor("rope_freqs.weight"); ok {
		v, err := fn.File.Float32s(t)
		if err != nil || len(v) != half {
			fn.fail(fmt.Errorf("export: %s: tensor rope_freqs.weight: want %d frequency factors (n_rot/2), got %d (%v)", fn.File.Path, half, len(v), err))
			return nil, nil
		}
		ff = v
	}
	c, s := ropeTables(fn.C, cfg.RopeDims, cfg.RopeBase, cfg.RopeScale, ff)
	f := fn.F
	gather := func(name string, v []float32) *mil.Value {
		w := f.Weight(name, mil.FP16, []int{fn.C, half}, mil.Bytes(halves(nil, v)))
		return f.Reshape(f.Gather(w, fn.PositionIDs, 0), 1, 1, fn.N, half)
	}
	fn.cos, fn.sin = gather(fmt.Sprintf("rope_cos_%d", fn.C), c), gather(fmt.Sprintf("rope_sin_%d", fn.C), s)
	return fn.cos, fn.sin
}

// Rope rotates x [1, heads, N, head_dim] by its tokens' positions in NEOX form, pairs
// (x[i], x[i + n_rot/2]) for i < n_rot/2: out = concat(x1·cos − x2·sin, x2·cos + x1·sin,
// x[n_rot:]). Dimensions from n_rot on are left as they are (partial rotary, phi2).
// NORM-mode (adjacent-pair) models get their Q/K rows permuted at export so that this form
// applies (LinearNormRope).
func (fn *Func) Rope(x *mil.Value) *mil.Value {
	cos, sin := fn.ropeAngles()
	if x == nil || cos == nil {
		return nil
	}
	f := fn.F
	sh := x.Shape()
	r, d := fn.Config.RopeDims, sh[3]
	part := func(from, to int) *mil.Value {
		return f.SliceByIndex(x, []int{0, 0, 0, from}, []int{sh[0], sh[1], sh[2], to})
	}
	x1, x2 := part(0, r/2), part(r/2, r)
	out := []*mil.Value{
		f.Sub(f.Mul(x1, cos), f.Mul(x2, sin)),
		f.Add(f.Mul(x2, cos), f.Mul(x1, sin)),
	}
	if r < d {
		out = append(out, part(r, d))
	}
	return f.Concat(-1, out...)
}

// LinearNormRope is Linear for a projection whose output heads (heads × head_dim rows) get
// NORM-mode RoPE in llama.cpp, adjacent pairs (x[2i], x[2i+1]). Within each head the rows
// (and bias entries) are reordered to [0, 2, 4, …, D−2, 1, 3, …, D−1], which turns those
// pairs into NEOX halves (i, i + D/2); Q and K are permuted alike, so q·k is unchanged.
func (fn *Func) LinearNormRope(x *mil.Value, prefix string, heads int) *mil.Value {
	d := fn.Config.KeyLength
	if fn.Config.RopeDims != d {
		fn.fail(fmt.Errorf("export: %s: NORM rope needs n_rot (%d) = head_dim (%d)", fn.File.Path, fn.Config.RopeDims, d))
		return nil
	}
	return fn.linear(x, prefix, "neox", neoxRows(heads, d))
}

// neoxRows is the row order that turns NORM pairs into NEOX halves: per head of d rows,
// the even rows then the odd ones.
func neoxRows(heads, d int) []int {
	rows := make([]int, 0, heads*d)
	for h := 0; h < heads; h++ {
		for i := 0; i < d; i += 2 {
			rows = append(rows, h*d+i)
		}
		for i := 1; i < d; i += 2 {
			rows = append(rows, h*d+i)
		}
	}
	return rows
}

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

// Attention is self-attention of layer l over its KV state. q [1, N, n_head·head_dim_k],
// k [1, N, n_head_kv·head_dim_k] and v [1, N, n_head_kv·head_dim_v] are the projections;
// RoPE is applied to q and k when the architecture has it, then q is multiplied by qScale
// (phi2 and gemma pre-scale q; 1 for none). The chunk's K/V rows are written into the
// states at current_pos, and attention runs over the whole updated cache with scores scaled
// by kqScale, plus the causal mask. It returns [1, N, n_head·head_dim_v], heads concatenated.
func (fn *Func) Attention(l int, q, k, v *mil.Value, qScale, kqScale float64) *mil.Value {
	if fn.err != nil || q == nil || k == nil || v == nil {
		return nil
	}
	f, cfg, n := fn.F, fn.Config, fn.N
	h, kvh, dk, dv := cfg.HeadCount, cfg.HeadCountKV, cfg.KeyLength, cfg.ValueLength
	g := h / kvh
	heads := func(x *mil.Value, nh, d int) *mil.Value { // [1, N, nh·d] → [1, nh, N, d]
		return f.Transpose(f.Reshape(x, 1, n, nh, d), 0, 2, 1, 3)
	}
	q, k, v = heads(q, h, dk), heads(k, kvh, dk), heads(v, kvh, dv)
	if cfg.Rope != gguf.RopeNone {
		q, k = fn.Rope(q), fn.Rope(k)
	}
	if qScale != 1 {
		q = f.Mul(q, fn.Scalar(qScale))
	}

	fn.kvBounds()
	kc := f.SliceUpdate(f.ReadState(fn.kCache[l]), k, fn.kvBegin, fn.kEnd)
	f.WriteState(fn.kCache[l], kc)
	vc := f.SliceUpdate(f.ReadState(fn.vCache[l]), v, fn.kvBegin, fn.vEnd)
	f.WriteState(fn.vCache[l], vc)

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

// LMHead projects the final hidden state onto the vocabulary with the first of names that
// the file holds (output.weight, or the tied token_embd.weight), plus output.bias if
// present: fp16 logits [1, N, n_vocab].
func (fn *Func) LMHead(x *mil.Value, names ...string) *mil.Value {
	for _, name := range names {
		if fn.Has(name + ".weight") {
			return fn.Linear(x, name)
		}
	}
	fn.fail(fmt.Errorf("export: %s: no LM head tensor (looked for %v)", fn.File.Path, names))
	return nil
}
