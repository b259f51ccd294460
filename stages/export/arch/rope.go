package arch

import (
	"cmp"
	"fmt"
	"math"

	"github.com/lilims/lilims/stages/export/mil"
)

// ropeScaling is how a model scales its rotary angles, as ggml's rope cache applies it
// (ggml/src/ggml-cpu/ops.cpp, rope_yarn): every angle is divided by its pair's frequency
// factor (rope_freqs, rope_factors_long/short), then interpolated by freqScale; YaRN
// (extFactor 1) mixes interpolated and extrapolated angles along a ramp over the pairs
// [corr[0], corr[1]]; cos and sin are multiplied by mscale.
type ropeScaling struct {
	freqScale float32
	factors   []float32 // nil: 1 for every pair
	extFactor float32
	corr      [2]float32
	mscale    float32
}

// ropeTables returns cos and sin, each [C, n_rot/2] row-major, exactly as ggml's rope cache
// computes them: theta_scale = powf(base, −2/n_rot) in f32, theta_0 = p and
// theta_{i+1} = theta_i·theta_scale by repeated f32 multiplication, then rope_yarn's
// scaling (ropeScaling), then cosf/sinf.
func ropeTables(c, nRot int, base float32, s ropeScaling) (cos, sin []float32) {
	half := nRot / 2
	cos, sin = make([]float32, c*half), make([]float32, c*half)
	thetaScale := float32(math.Pow(float64(base), float64(float32(-2)/float32(nRot))))
	mscale := s.mscale
	if s.extFactor != 0 {
		mscale *= 1 + 0.1*float32(math.Log(float64(1/s.freqScale)))
	}
	for p := 0; p < c; p++ {
		theta := float32(p)
		for i := 0; i < half; i++ {
			extrap := theta
			if s.factors != nil {
				extrap /= s.factors[i]
			}
			t := s.freqScale * extrap
			if s.extFactor != 0 {
				// rope_yarn_ramp of dimension i0 = 2i
				y := (float32(i) - s.corr[0]) / max(0.001, s.corr[1]-s.corr[0])
				mix := (1 - min(1, max(0, y))) * s.extFactor
				t = t*(1-mix) + extrap*mix
			}
			cos[p*half+i] = float32(math.Cos(float64(t))) * mscale
			sin[p*half+i] = float32(math.Sin(float64(t))) * mscale
			theta *= thetaScale
		}
	}
	return cos, sin
}

// yarnCorrDims are the pairs where YaRN's ramp starts and ends (ggml.c,
// ggml_rope_yarn_corr_dims): the dimensions whose wavelength spans beta_fast and beta_slow
// rotations over the original context.
func yarnCorrDims(nRot, origCtx int, base, betaFast, betaSlow float32) [2]float32 {
	dim := func(beta float32) float64 {
		return float64(nRot) * math.Log(float64(float32(origCtx)/(beta*2*math.Pi))) / (2 * math.Log(float64(base)))
	}
	start, end := float32(math.Floor(dim(betaFast))), float32(math.Ceil(dim(betaSlow)))
	return [2]float32{max(0, start), min(float32(nRot-1), end)}
}

// scaling is the model's ropeScaling at the function's context: the frequency factors of
// rope_freqs.weight (Llama 3), else LongRoPE's rope_factors_long.weight when the exported
// context exceeds the original one and rope_factors_short.weight otherwise (phi3; llama.cpp
// src/llama-model.cpp, get_rope_factors); mscale from rope.scaling.attn_factor and YaRN's
// magnitude (src/llama-context.cpp). A local (sliding-window) layer has its own freq_scale
// (llama.cpp's rope_freq_scale_train_swa, 1 unless the architecture says otherwise).
func (fn *Func) scaling(local bool) (ropeScaling, error) {
	cfg := fn.Config
	s := ropeScaling{freqScale: cfg.RopeScale, mscale: 1}
	if local {
		s.freqScale = cmp.Or(cfg.RopeScaleSWA, 1)
	}
	if cfg.RopeAttnFactor != 0 {
		s.mscale = cfg.RopeAttnFactor
	}
	name := "rope_freqs.weight"
	if !fn.Has(name) {
		name = "rope_factors_short.weight"
		if fn.C > cfg.OrigContext() {
			name = "rope_factors_long.weight"
		}
	}
	if t, ok := fn.File.Tensor(name); ok {
		v, err := fn.File.Float32s(t)
		if err != nil || len(v) != cfg.RopeDims/2 {
			return s, fmt.Errorf("export: %s: tensor %s: want %d frequency factors (n_rot/2), got %d (%v)", fn.File.Path, name, cfg.RopeDims/2, len(v), err)
		}
		s.factors = v
	} else if name != "rope_freqs.weight" && fn.Has("rope_factors_long.weight") != fn.Has("rope_factors_short.weight") {
		return s, fmt.Errorf("export: %s: tensor %s is missing (LongRoPE needs rope_factors_long and rope_factors_short)", fn.File.Path, name)
	}
	if cfg.RopeScaling == "yarn" {
		// llama.cpp sets the attention factor of every layer to get_mscale(factor)/(1 + 0.1·ln
		// factor) of the model's factor, which cancels the magnitude rope_yarn applies unless
		// factor ≤ 1 (or the layer has its own freq_scale).
		factor := 1 / cfg.RopeScale
		get := float32(1)
		if factor > 1 {
			get = 0.1*float32(math.Log(float64(factor))) + 1
		}
		s.mscale *= get / (1 + 0.1*float32(math.Log(float64(factor))))
		s.extFactor = 1
		s.corr = yarnCorrDims(cfg.RopeDims, cfg.OrigContext(), cfg.RopeBase, cfg.YarnBetaFast, cfg.YarnBetaSlow)
	}
	return s, nil
}

// transposed returns the [cols, rows] transpose of row-major m [rows, cols].
func transposed(m []float32, rows, cols int) []float32 {
	t := make([]float32, len(m))
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			t[c*rows+r] = m[r*cols+c]
		}
	}
	return t
}

// ropeAngles gathers the cos/sin of the chunk's positions, once per function and kind of
// layer (global, local): [1, 1, N, n_rot/2] each (Standard), or [1, 1, n_rot/2, N] (ANE,
// head_dim before sequence).
func (fn *Func) ropeAngles(local bool) (cos, sin *mil.Value) {
	i, base, name := 0, fn.Config.RopeBase, fmt.Sprintf("rope_%%s_%d", fn.C)
	if local {
		i, base, name = 1, fn.Config.RopeBaseSWA, fmt.Sprintf("rope_%%s_%d_local", fn.C)
	}
	if fn.cos[i] != nil || fn.err != nil {
		return fn.cos[i], fn.sin[i]
	}
	cfg := fn.Config
	half := cfg.RopeDims / 2
	sc, err := fn.scaling(local)
	if err != nil {
		fn.fail(err)
		return nil, nil
	}
	c, s := ropeTables(fn.C, cfg.RopeDims, base, sc)
	f := fn.F
	gather := func(name string, v []float32) *mil.Value {
		if fn.Layout == ANE {
			// The table is stored transposed, [n_rot/2, C], so that gathering positions
			// along axis 1 yields [n_rot/2, N] without a transpose per call.
			w := f.Weight(name+"T", mil.FP16, []int{half, fn.C}, mil.Bytes(halves(nil, transposed(v, fn.C, half))))
			return f.Reshape(f.Gather(w, fn.PositionIDs, 1), 1, 1, half, fn.N)
		}
		w := f.Weight(name, mil.FP16, []int{fn.C, half}, mil.Bytes(halves(nil, v)))
		return f.Reshape(f.Gather(w, fn.PositionIDs, 0), 1, 1, fn.N, half)
	}
	fn.cos[i], fn.sin[i] = gather(fmt.Sprintf(name, "cos"), c), gather(fmt.Sprintf(name, "sin"), s)
	return fn.cos[i], fn.sin[i]
}

// Rope rotates x by its tokens' positions. x is [1, heads, N, head_dim] (Standard) or
// [1, heads, head_dim, N] (ANE). The rotation is computed in NEOX form, pairs
// (x[i], x[i + n_rot/2]) for i < n_rot/2: out = concat(x1·cos − x2·sin, x2·cos + x1·sin,
// x[n_rot:]); dimensions from n_rot on are left as they are (partial rotary, phi2).
//
// A NORM-mode model (llama: adjacent pairs (x[2i], x[2i+1])) first has each head's
// dimensions reordered in the graph to [0, 2, …, D−2, 1, 3, …, D−1], which turns its pairs
// into NEOX halves. Q and K are reordered alike, so q·k — the only use of either — is
// unchanged, and V is untouched. Reordering activations rather than permuting the rows of
// attn_q/attn_k at export keeps quantized weights exactly as the quantize stage wrote them
// (a row permutation would split LUT groups and undo lossless Q4_0 transcoding).
func (fn *Func) Rope(x *mil.Value) *mil.Value { return fn.rope(x, false) }

// rope is Rope with the angles of a global or a local (sliding-window) layer.
func (fn *Func) rope(x *mil.Value, local bool) *mil.Value {
	cfg := fn.Config
	if cfg.Rope == RopeNorm {
		x = fn.normToNeox(x)
	}
	cos, sin := fn.ropeAngles(local)
	if x == nil || cos == nil {
		return nil
	}
	f := fn.F
	sh := x.Shape()
	axis := 3
	if fn.Layout == ANE {
		axis = 2
	}
	r, d := cfg.RopeDims, sh[axis]
	part := func(from, to int) *mil.Value {
		begin, end := make([]int, 4), append([]int(nil), sh...)
		begin[axis], end[axis] = from, to
		return f.SliceByIndex(x, begin, end)
	}
	x1, x2 := part(0, r/2), part(r/2, r)
	out := []*mil.Value{
		f.Sub(f.Mul(x1, cos), f.Mul(x2, sin)),
		f.Add(f.Mul(x2, cos), f.Mul(x1, sin)),
	}
	if r < d {
		out = append(out, part(r, d))
	}
	return f.Concat(axis, out...)
}

// normToNeox reorders the head dimension of x ([1, H, N, D] Standard, [1, H, D, N] ANE) to
// the even dimensions then the odd ones. It is a reshape that splits D into (D/2, 2), a
// swap of those two axes and a reshape back — all rank 4, the Neural Engine's native rank
// (a gather along the last axis would do the same but gathers run on the CPU).
func (fn *Func) normToNeox(x *mil.Value) *mil.Value {
	if x == nil || fn.err != nil {
		return nil
	}
	cfg := fn.Config
	sh := x.Shape()
	if fn.Layout == ANE {
		h, d, n := sh[1], sh[2], sh[3]
		if cfg.RopeDims != d || d%2 != 0 {
			fn.fail(fmt.Errorf("export: %s: NORM rope needs an even n_rot (%d) = head_dim (%d)", fn.File.Path, cfg.RopeDims, d))
			return nil
		}
		// [H, D/2, 2, N] → [H, 2, D/2, N]
		f := fn.F
		return f.Reshape(f.Transpose(f.Reshape(x, h, d/2, 2, n), 0, 2, 1, 3), 1, h, d, n)
	}
	h, n, d := sh[1], sh[2], sh[3]
	if cfg.RopeDims != d || d%2 != 0 {
		fn.fail(fmt.Errorf("export: %s: NORM rope needs an even n_rot (%d) = head_dim (%d)", fn.File.Path, cfg.RopeDims, d))
		return nil
	}
	// [1, H·N, D/2, 2] → [1, H·N, 2, D/2]
	f := fn.F
	return f.Reshape(f.Transpose(f.Reshape(x, 1, h*n, d/2, 2), 0, 1, 3, 2), 1, h, n, d)
}
