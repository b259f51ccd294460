package quantize

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
)

// TestLUTGaussian checks the palette k-means against the Lloyd–Max quantizer of a unit
// Gaussian: 16 levels reach a mean squared error of 0.009497 (Max 1960, table for N=16),
// against 0.01154 for the best uniform 16-level quantizer.
func TestLUTGaussian(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 16
	x := make([]float32, n)
	w := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		w[i] = 1
	}
	for _, iters := range []int{10, 40, 200, 400} {
		c := lutCodec{bits: 4, group: 1, iters: iters}
		idx := make([]int32, n)
		lut := make([]uint16, 16)
		e, s := c.quantizeGroup(new(lutScratch), x, w, idx, lut)
		mse := e / n
		t.Logf("iters %d: mse %.5f (signal %.4f)", iters, mse, s/n)
		if iters == 400 && math.Abs(mse-0.009497) > 0.0002 {
			t.Errorf("iters %d: mse %.5f, want 0.009497 ± 0.0002 (Lloyd–Max, 16 levels)", iters, mse)
		}
	}
}

// referenceGroup is the palettization quantizeGroup must reproduce, written the plain
// way: sort the weighted elements by value with a comparison sort, take running sums of
// weight and weight·value, start from the weighted quantiles (k+0.5)/16, run Lloyd with
// binary searches for the boundaries between clusters, and assign each element to the
// nearest palette entry by its midpoints.
func referenceGroup(iters int, x, w []float32, idx []int32, lut []uint16) (errSum, sigSum float64) {
	type point struct{ v, w float32 }
	n := len(x)
	pts := make([]point, n)
	for i, v := range x {
		pts[i] = point{v, w[i] + 1e-12}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.v, b.v) })
	vals := make([]float32, n)
	cw, cwv := make([]float64, n+1), make([]float64, n+1)
	for i, p := range pts {
		vals[i] = p.v
		cw[i+1] = cw[i] + float64(p.w)
		cwv[i+1] = cwv[i] + float64(float64(p.w)*float64(p.v))
	}
	var cent [16]float64
	for k := range cent {
		i, _ := slices.BinarySearch(cw[1:], cw[n]*(float64(k)+0.5)/16)
		cent[k] = float64(vals[min(i, n-1)])
	}
	var bounds [17]int
	bounds[16] = n
	for range iters {
		for k := 1; k < 16; k++ {
			mid := float32((cent[k-1] + cent[k]) / 2)
			bounds[k] = max(sort.Search(n, func(i int) bool { return vals[i] > mid }), bounds[k-1])
		}
		moved := false
		for k := range cent {
			lo, hi := bounds[k], bounds[k+1]
			if sw := cw[hi] - cw[lo]; hi > lo && sw > 0 {
				if nc := (cwv[hi] - cwv[lo]) / sw; nc != cent[k] {
					cent[k], moved = nc, true
				}
			}
		}
		if !moved {
			break
		}
	}
	var pal [16]float32
	for k := range cent {
		pal[k] = f16Table[toF16(float32(cent[k]))]
	}
	slices.Sort(pal[:])
	var mids [15]float32
	for k := range pal {
		lut[k] = toF16(pal[k])
	}
	for k := range mids {
		mids[k] = (pal[k] + pal[k+1]) / 2
	}
	for i, v := range x {
		k := sort.Search(15, func(j int) bool { return v <= mids[j] }) // midpoints below v
		idx[i] = int32(k)
		e := v - pal[k]
		errSum += float64(e * e)
		sigSum += float64(v * v)
	}
	return errSum, sigSum
}

// lutGroup is a random test group: n values (fp16-exact unless f32) and weights.
type lutGroup struct {
	name     string
	n        int
	f32      bool    // values not rounded to fp16
	weighted bool    // importance weights in [1e-3, 4) instead of 1
	scale    float64 // standard deviation of the Gaussian values
	dup      int     // every value is one of this many (0: any), to make long ties
}

func (g lutGroup) make(rng *rand.Rand) (x, w []float32, src []byte) {
	x, w, src = make([]float32, g.n), make([]float32, g.n), make([]byte, 2*g.n)
	var pool []float32
	for range g.dup {
		pool = append(pool, float32(rng.NormFloat64()*g.scale))
	}
	for i := range x {
		v := float32(rng.NormFloat64() * g.scale)
		if g.dup > 0 {
			v = pool[rng.IntN(g.dup)]
			if rng.IntN(7) == 0 {
				v = -v * 0 // −0 and +0 both, equal in value, distinct in bits
			}
		}
		v = max(min(v, 65504), -65504) // fp16's largest finite value
		if !g.f32 {
			v = f16Table[toF16(v)]
		}
		x[i] = v
		binary.LittleEndian.PutUint16(src[2*i:], toF16(v))
		w[i] = 1
		if g.weighted {
			w[i] = float32(1e-3 + 4*rng.Float64()*rng.Float64())
		}
	}
	return x, w, src
}

var lutGroups = []lutGroup{
	{name: "tiny", n: 7, scale: 1},                // fewer values than entries
	{name: "gauss-2560", n: 2560, scale: 0.02},    // Phi-2's d_model, one row a group
	{name: "gauss-10240", n: 10240, scale: 0.02},  // Phi-2's ffn_down row
	{name: "ties", n: 4096, scale: 0.05, dup: 40}, // long runs of equal values, ±0
	{name: "subnormal", n: 3000, scale: 2e-6},     // fp16 subnormals (below 6.1e-5)
	{name: "huge", n: 10240, scale: 30000},        // n·max|v| ≥ 2²⁹: the sorted-sum path
	{name: "big-group", n: 70000, scale: 0.01},    // beyond 16-bit counts and indices
	{name: "weighted-2560", n: 2560, scale: 0.02, weighted: true},
	{name: "weighted-ties", n: 4096, scale: 0.05, dup: 40, weighted: true},
	{name: "weighted-big", n: 70000, scale: 0.01, weighted: true},
	{name: "f32-2560", n: 2560, scale: 0.02, f32: true},
	{name: "f32-weighted", n: 2560, scale: 0.02, f32: true, weighted: true},
	{name: "f32-ties", n: 4096, scale: 0.05, dup: 40, f32: true},
}

// TestLUTMatchesReference checks quantizeGroup, and quantizeGroupF16 on fp16 values,
// against referenceGroup on random groups. With weight 1 the running sums are the same
// numbers in every order, so palette, indices and error sums must be bit-identical. With
// importance weights the sums' rounding depends on the order in which ties are added,
// which a comparison sort leaves open (ours is stable): a palette entry may then differ by
// one fp16 ulp and the weighted error by 1e-6 relative, no more.
func TestLUTMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var s lutScratch // shared by every case: no group may leave state behind
	weighted, identical := 0, 0
	defer func() { t.Logf("weighted groups: %d of %d bit-identical to the reference", identical, weighted) }()
	for _, g := range lutGroups {
		for rep := range 3 {
			x, w, src := g.make(rng)
			n := len(x)
			wantIdx, wantLUT := make([]int32, n), make([]uint16, 16)
			we, ws := referenceGroup(200, x, w, wantIdx, wantLUT)
			type result struct {
				path   string
				idx    []int32
				lut    []uint16
				e, sig float64
			}
			var got []result
			r := result{path: "float32", idx: make([]int32, n), lut: make([]uint16, 16)}
			c := lutCodec{bits: 4, group: 1, iters: 200}
			r.e, r.sig = c.quantizeGroup(&s, x, w, r.idx, r.lut)
			got = append(got, r)
			if !g.f32 {
				r := result{path: "fp16", idx: make([]int32, n), lut: make([]uint16, 16)}
				var ok bool
				if r.e, r.sig, ok = c.quantizeGroupF16(&s, src, w, r.idx, r.lut); !ok {
					t.Fatalf("%s: finite group reported non-finite", g.name)
				}
				got = append(got, r)
			}
			for _, r := range got {
				if !g.weighted {
					if !slices.EqualFunc(r.lut, wantLUT, sameF16) || !slices.Equal(r.idx, wantIdx) || r.e != we || r.sig != ws {
						t.Errorf("%s #%d %s: palette %04x, want %04x; error %v, want %v (bit-identical)",
							g.name, rep, r.path, r.lut, wantLUT, r.e, we)
					}
					continue
				}
				weighted++
				if slices.EqualFunc(r.lut, wantLUT, sameF16) && slices.Equal(r.idx, wantIdx) {
					identical++
				}
				for k, a := range r.lut {
					b := wantLUT[k]
					if d := int(a) - int(b); !sameF16(a, b) && (d < -1 || d > 1 || (a^b)&0x8000 != 0) {
						t.Errorf("%s #%d %s: palette entry %d is %#04x, want %#04x within 1 ulp", g.name, rep, r.path, k, a, b)
					}
				}
				gotW, wantW := weightedError(x, w, r.idx, r.lut), weightedError(x, w, wantIdx, wantLUT)
				if math.Abs(gotW-wantW) > 1e-6*wantW {
					t.Errorf("%s #%d %s: weighted error %v, want %v within 1e-6 relative", g.name, rep, r.path, gotW, wantW)
				}
			}
		}
	}
}

// sameF16 reports whether two fp16 palette entries are the same bits, or both zero: a
// cluster of zeros keeps the zero its quantile start picked, +0 or −0, and which of
// them comes first among equal values is the comparison sort's choice.
func sameF16(a, b uint16) bool { return a == b || (a|b)&0x7fff == 0 }

// weightedError is Σ w·(x − lut[idx])².
func weightedError(x, w []float32, idx []int32, lut []uint16) float64 {
	var sum float64
	for i, v := range x {
		e := float64(v) - float64(f16Table[lut[idx[i]]])
		sum += float64(w[i]) * e * e
	}
	return sum
}

// TestLUTF16MatchesFloat32 checks that the fp16 path gives the float32 path's result bit
// for bit, weighted or not, at every palette width: both sort stably, so even ties add up
// in the same order.
func TestLUTF16MatchesFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var s lutScratch // shared across widths: no width may leave state behind
	for _, bits := range LUTWidths {
		c := lutCodec{bits: bits, group: 1, iters: 200}
		for _, g := range lutGroups {
			if g.f32 {
				continue
			}
			x, w, src := g.make(rng)
			n := len(x)
			idx32, lut32 := make([]int32, n), make([]uint16, c.entries())
			e32, s32 := c.quantizeGroup(&s, x, w, idx32, lut32)
			idx16, lut16 := make([]int32, n), make([]uint16, c.entries())
			e16, s16, ok := c.quantizeGroupF16(&s, src, w, idx16, lut16)
			if !ok || !slices.Equal(lut16, lut32) || !slices.Equal(idx16, idx32) || e16 != e32 || s16 != s32 {
				t.Errorf("%d bits, %s: fp16 path palette %04x error %v, float32 path %04x %v", bits, g.name, lut16, e16, lut32, e32)
			}
		}
	}
}

// TestLUTF16NonFinite checks that an Inf or NaN anywhere in a group makes
// quantizeGroupF16 report it, on each of its paths, and leaves no count behind: the next
// group gets the result a fresh scratch gives.
func TestLUTF16NonFinite(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	c := lutCodec{bits: 4, group: 1, iters: 200}
	var s lutScratch
	for _, g := range lutGroups {
		if g.f32 {
			continue
		}
		_, w, src := g.make(rng)
		n := len(src) / 2
		bad := slices.Clone(src)
		binary.LittleEndian.PutUint16(bad[2*(n/2):], []uint16{0x7c00, 0xfc00, 0x7e01}[n%3])
		idx, lut := make([]int32, n), make([]uint16, 16)
		if _, _, ok := c.quantizeGroupF16(&s, bad, w, idx, lut); ok {
			t.Errorf("%s: non-finite element not reported", g.name)
		}
		e, _, _ := c.quantizeGroupF16(&s, src, w, idx, lut)
		var fresh lutScratch
		idx2, lut2 := make([]int32, n), make([]uint16, 16)
		e2, _, _ := c.quantizeGroupF16(&fresh, src, w, idx2, lut2)
		if e != e2 || !slices.Equal(lut, lut2) || !slices.Equal(idx, idx2) {
			t.Errorf("%s: after a non-finite group the scratch gives error %v, a fresh one %v", g.name, e, e2)
		}
	}
}

// TestLUTEndToEndF16 checks the stage's F16 path (lutF16) against the portable one
// (decodeRows + quantizeGroup): identical weights files and manifests, data-free and
// with importance weights from a calibration text (without GPTQ, which takes the
// portable path either way).
func TestLUTEndToEndF16(t *testing.T) {
	t.Cleanup(func() { lutFromF16 = true })
	for _, tc := range []struct {
		model string
		p     stage.Params
	}{
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut4"}},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "lut4", "group_size": int64(8)}},
		{"tiny-phi2-f16.gguf", stage.Params{"scheme": "lut4"}},
	} {
		sameOutputWithSwitch(t, tc.model, tc.p, &lutFromF16, "the F16 path")
	}
}

// TestLUTInfError checks that a non-finite F16 weight met on the lut4 F16 path gets the
// loader's error naming the tensor and the row (row 9 of a 64×64 matrix).
func TestLUTInfError(t *testing.T) {
	wantRow9Error(t, ggml.F16, f16Matrix64(0xfc00), "lut4") // −Inf
}

// TestF16Key checks that the sort keys order every pair of non-NaN binary16 values as
// their values are ordered (−0 just below +0) and that f16Code inverts f16Key; likewise
// for binary32 on a sample.
func TestF16Key(t *testing.T) {
	var codes []uint16
	for h := range 1 << 16 {
		if f16Code(f16Key(uint16(h))) != uint16(h) {
			t.Fatalf("f16Code(f16Key(%#04x)) = %#04x", h, f16Code(f16Key(uint16(h))))
		}
		if uint16(h)&0x7c00 != 0x7c00 || uint16(h)&0x3ff == 0 { // all but NaNs
			codes = append(codes, uint16(h))
		}
	}
	slices.SortFunc(codes, func(a, b uint16) int { return cmp.Compare(f16Key(a), f16Key(b)) })
	for i := 1; i < len(codes); i++ {
		a, b := f16Table[codes[i-1]], f16Table[codes[i]]
		if a > b || (a == b && codes[i-1] != 0x8000) {
			t.Fatalf("keys order %#04x (%v) before %#04x (%v)", codes[i-1], a, codes[i], b)
		}
	}
	rng := rand.New(rand.NewPCG(17, 18))
	for range 100000 {
		a, b := rng.Uint32(), rng.Uint32()
		fa, fb := math.Float32frombits(a), math.Float32frombits(b)
		if fa != fa || fb != fb {
			continue
		}
		if f32Bits(f32Key(a)) != a || (fa < fb) != (f32Key(a) < f32Key(b)) {
			t.Fatalf("f32Key misorders %v and %v", fa, fb)
		}
	}
}

// TestRadixSort checks radixSort against a stable comparison sort, keys alone and with
// weights (whose order among equal keys shows stability), for 16- and 32-bit keys and
// for keys stored above a 16-bit index.
func TestRadixSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, tc := range []struct{ n, lo, bits, spread int }{
		{1, 0, 16, 1 << 16}, {1000, 0, 16, 1 << 16}, {1000, 0, 16, 30}, {5000, 0, 32, 1 << 31},
		{5000, 0, 32, 300}, {3000, 16, 16, 1 << 16}, {3000, 0, 16, 1}, // one digit everywhere: no pass moves
	} {
		keys, wts := make([]uint32, tc.n), make([]float32, tc.n)
		for i := range keys {
			keys[i] = uint32(rng.IntN(tc.spread))
			if tc.bits == 32 {
				keys[i] *= 2 // reach the top digit
			}
			if tc.lo == 16 {
				keys[i] = keys[i]<<16 | uint32(i)
			}
			wts[i] = float32(i)
		}
		type kw struct {
			k uint32
			w float32
		}
		want := make([]kw, tc.n)
		for i := range want {
			want[i] = kw{keys[i], wts[i]}
		}
		slices.SortStableFunc(want, func(a, b kw) int { return cmp.Compare(a.k>>tc.lo, b.k>>tc.lo) })
		gk, gw := radixSort(slices.Clone(keys), make([]uint32, tc.n), slices.Clone(wts), make([]float32, tc.n), uint(tc.lo), uint(tc.bits))
		for i := range want {
			if gk[i] != want[i].k || gw[i] != want[i].w {
				t.Fatalf("%+v: element %d is (%d, %v), want (%d, %v)", tc, i, gk[i], gw[i], want[i].k, want[i].w)
			}
		}
		gk, _ = radixSort(slices.Clone(keys), make([]uint32, tc.n), nil, nil, uint(tc.lo), uint(tc.bits))
		for i := range want {
			if gk[i]>>tc.lo != want[i].k>>tc.lo {
				t.Fatalf("%+v without weights: key %d is %d, want %d", tc, i, gk[i], want[i].k)
			}
		}
	}
}

// TestAbove checks the boundary searches against sort.Search from every starting guess.
func TestAbove(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 2, 3, 17, 200} {
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(rng.IntN(50))
		}
		slices.Sort(vals)
		for tv := float32(-1); tv <= 51; tv += 0.5 {
			want := sort.Search(n, func(i int) bool { return vals[i] > tv })
			if got := above(vals, tv); got != want {
				t.Fatalf("above(%v, %v) = %d, want %d", vals, tv, got, want)
			}
			for j := -1; j <= n+1; j++ {
				if got := aboveFrom(vals, j, tv); got != want {
					t.Fatalf("aboveFrom(n=%d, %d, %v) = %d, want %d", n, j, tv, got, want)
				}
			}
		}
	}
}

// TestPack4 checks pack4 against nibble for every length up to 40 (the eight-at-a-time
// body and both tails) with levels of both signs: element 2k goes to the low nibble of
// byte k, int4 as two's complement (MILBlob's sub-byte packing).
func TestPack4(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for n := range 41 {
		vals := make([]int32, n)
		for i := range vals {
			vals[i] = int32(rng.IntN(16)) - 8
		}
		dst := make([]byte, (n+1)/2)
		pack4(dst, vals)
		for i, v := range vals {
			if got := nibble(dst, i, true); got != v {
				t.Fatalf("n %d: element %d unpacks to %d, want %d", n, i, got, v)
			}
		}
		if n%2 == 1 && dst[n/2]>>4 != 0 {
			t.Errorf("n %d: the last byte's high nibble is %d, want 0", n, dst[n/2]>>4)
		}
	}
}

// TestLUTEmpty checks that an empty group, which plan never makes, gets an all-zero
// palette from both paths rather than a panic.
func TestLUTEmpty(t *testing.T) {
	c := lutCodec{bits: 4, group: 1, iters: 200}
	var s lutScratch
	lut := []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if e, sig := c.quantizeGroup(&s, nil, nil, nil, lut); e != 0 || sig != 0 || slices.ContainsFunc(lut, func(h uint16) bool { return h != 0 }) {
		t.Errorf("float32 path: error %v, signal %v, palette %04x; want zeros", e, sig, lut)
	}
	for _, w := range [][]float32{nil, {}} {
		lut[3] = 7
		if e, sig, ok := c.quantizeGroupF16(&s, nil, w, nil, lut); !ok || e != 0 || sig != 0 || lut[3] != 0 {
			t.Errorf("fp16 path (weights %v): ok %v, error %v, signal %v, palette %04x; want zeros", w, ok, e, sig, lut)
		}
	}
}
