package reference

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly kernels against their portable forms, on lengths around the vector widths
// (8 lanes, 32-element int4 chunks) so that every tail path runs. The float kernels sum in a
// different order than dotGeneric, so they agree to float32 rounding of the sum: |Δ| ≤
// 1e-5·Σ|a·b| (n ≤ 1000 products, each rounding ≤ 2^-24 relative, far below that bound).

var kernelLengths = []int{0, 1, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100, 257, 1000}

func randFloats(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func absDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) * float64(b[i]))
	}
	return s
}

// deltas records the largest |fast − portable| seen, absolute and relative to Σ|a·b|, so
// that a run (native or under emulation) reports how close the kernels came.
type deltas struct{ abs, rel float64 }

func (d *deltas) note(delta, scale float64) {
	delta = math.Abs(delta)
	d.abs = max(d.abs, delta)
	if scale > 0 {
		d.rel = max(d.rel, delta/scale)
	}
}

func (d *deltas) log(t *testing.T, what string) {
	t.Logf("%s (SIMD %v): worst |Δ| %.3g, worst |Δ|/Σ|w·x| %.3g", what, useSIMD, d.abs, d.rel)
}

func withKernels(t *testing.T, fast bool, f func()) {
	t.Helper()
	saved := useSIMD
	useSIMD = useSIMD && fast
	defer func() { useSIMD = saved }()
	f()
}

func TestDotKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lut := halfLUT()
	var worst deltas
	defer worst.log(t, "dot, dotHalf vs portable")
	for _, n := range kernelLengths {
		a, b := randFloats(r, n), randFloats(r, n)
		h := make([]uint16, n)
		for i := range h {
			h[i] = floatToHalf(a[i])
		}
		aw := make([]float32, n)
		halfsToFloatsGeneric(aw, h)
		tol := 1e-5*absDot(a, b) + 1e-30
		if got, want := dot(a, b), dotGeneric(a, b); math.Abs(float64(got-want)) > tol {
			t.Errorf("dot n=%d: %v, portable %v", n, got, want)
		} else {
			worst.note(float64(got-want), absDot(a, b))
		}
		if got, want := dotHalf(h, b, lut), dotGeneric(aw, b); math.Abs(float64(got-want)) > tol {
			t.Errorf("dotHalf n=%d: %v, portable %v", n, got, want)
		} else {
			worst.note(float64(got-want), absDot(aw, b))
		}
		// Widening is exact: bit-identical.
		got := make([]float32, n)
		halfsToFloats(got, h)
		for i := range got {
			if got[i] != aw[i] {
				t.Fatalf("halfsToFloats n=%d [%d] = %v, want %v", n, i, got[i], aw[i])
			}
		}
	}
}

// TestDot2x4MatchesDot checks that the prefill tile gives bit for bit what dot gives for
// each (row, token): prefill and decode must produce identical logits.
func TestDot2x4MatchesDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, k := range kernelLengths[1:] {
		stride := k + 3
		w0, w1, x := randFloats(r, k), randFloats(r, k), randFloats(r, 3*stride+k)
		var out [8]float32
		dot2x4(w0, w1, x, stride, &out)
		for i := range 4 {
			xi := x[i*stride : i*stride+k]
			if out[i] != dot(w0, xi) || out[4+i] != dot(w1, xi) {
				t.Errorf("k=%d token %d: dot2x4 %v %v, dot %v %v", k, i, out[i], out[4+i], dot(w0, xi), dot(w1, xi))
			}
			if want := dotGeneric(w0, xi); math.Abs(float64(out[i]-want)) > 1e-5*absDot(w0, xi) {
				t.Errorf("k=%d token %d: %v, portable %v", k, i, out[i], want)
			}
		}
	}
}

// TestInt4Kernel compares the fused int4 dot (assembly when available) with the portable
// kernel and with a plain dot over the dequantized row, for int4 and uint4 codes, blocks of
// 32, 64 and 128 and 1 to 9 blocks per row.
func TestInt4Kernel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var worst deltas
	defer worst.log(t, "dotInt4 vs portable")
	for _, dt := range []DType{Int4, Uint4} {
		for _, cb := range []int{32, 64, 128} {
			for _, nb := range []int{1, 2, 3, 9} {
				w := randInt4Row(r, dt, cb, nb)
				cols, q, scale := w.cols, w.data.raw, w.scaleH
				x := randFloats(r, cols)
				dense := make([]float32, cols)
				w.row(0, dense)
				want := dotGeneric(dense, x)
				tol := 1e-5 * absDot(dense, x)
				if got := w.dotRow(0, x); math.Abs(float64(got-want)) > tol {
					t.Errorf("%v cb=%d nb=%d: dotRow %v, dense %v", dt, cb, nb, got, want)
				}
				xd, corr := make([]float32, cols), make([]float32, nb)
				w.prepare(x, xd, corr)
				flip := byte(0)
				if dt == Int4 {
					flip = 0x88
				}
				portable := dotInt4Generic(q, scale, xd, corr, cb/32, flip)
				withKernels(t, true, func() {
					got := dotInt4(q, scale, xd, corr, cb/32, flip)
					// Σ(u·x) − 8·Σx cancels: allow for float32 rounding of both sums.
					if math.Abs(float64(got-portable)) > tol+1e-5*8*float64(nb*cb) {
						t.Errorf("%v cb=%d nb=%d: kernel %v, portable %v", dt, cb, nb, got, portable)
					}
					worst.note(float64(got-portable), absDot(dense, x))
				})
				if math.Abs(float64(portable-want)) > tol+1e-5*8*float64(nb*cb) {
					t.Errorf("%v cb=%d nb=%d: portable fused %v, dense %v", dt, cb, nb, portable, want)
				}
			}
		}
	}
}

// TestRowInt4Kernel: the dequantized row is exact — every element is the one product
// fp16(scale)·n — so the vector kernel, the portable kernel and the element-wise definition
// W[r,c] = scale[r, c/cb]·data[r,c] (constexpr_blockwise_shift_scale, no offset) agree bit for bit, int4 and uint4.
func TestRowInt4Kernel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []DType{Int4, Uint4} {
		for _, cb := range []int{32, 64, 128} {
			for _, nb := range []int{1, 2, 3, 9} {
				cols := cb * nb
				q := make([]byte, cols/2)
				for i := range q {
					q[i] = byte(r.Uint32())
				}
				scale := make([]uint16, nb)
				for i := range scale {
					scale[i] = floatToHalf(float32(r.NormFloat64() * 0.1))
				}
				data := &Tensor{DType: dt, Shape: []int{1, cols}, raw: q}
				want := make([]float32, cols)
				for c := range want {
					want[c] = halfLUT()[scale[c/cb]] * float32(data.intAt(c))
				}
				for _, fast := range []bool{false, true} {
					got := make([]float32, cols)
					withKernels(t, fast, func() { rowInt4(got, q, scale, cb/32, dt == Int4) })
					for c := range want {
						if math.Float32bits(got[c]) != math.Float32bits(want[c]) {
							t.Fatalf("%v cb=%d nb=%d fast=%v: element %d = %v, want %v", dt, cb, nb, fast, c, got[c], want[c])
						}
					}
				}
			}
		}
	}
}

// TestAxpyKernel: each element of a·x + dst is one rounded product and one rounded sum in
// both forms, so the vector kernel equals the element-wise Go expression bit for bit.
func TestAxpyKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range kernelLengths {
		x, dst0 := randFloats(r, n), randFloats(r, n)
		a := float32(r.NormFloat64())
		want := make([]float32, n)
		for i := range want {
			want[i] = dst0[i] + float32(a*x[i])
		}
		for _, fast := range []bool{false, true} {
			got := append([]float32(nil), dst0...)
			withKernels(t, fast, func() { axpy(got, a, x) })
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d fast=%v: element %d = %v, want %v", n, fast, i, got[i], want[i])
				}
			}
		}
	}
}

// TestDot3x4MatchesDot: the three-row prefill tile gives bit for bit what dot gives for each
// (row, token), like dot2x4, so that prefill and decode logits stay identical.
func TestDot3x4MatchesDot(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, k := range kernelLengths[1:] {
		stride := k + 5
		w := [3][]float32{randFloats(r, k), randFloats(r, k), randFloats(r, k)}
		x := randFloats(r, 3*stride+k)
		var out [12]float32
		dot3x4(w[0], w[1], w[2], x, stride, &out)
		for row := range 3 {
			for i := range 4 {
				xi := x[i*stride : i*stride+k]
				if want := dot(w[row], xi); out[4*row+i] != want {
					t.Errorf("k=%d row %d token %d: dot3x4 %v, dot %v", k, row, i, out[4*row+i], want)
				}
			}
		}
	}
}

// expandLUT4 is the element-wise definition of 4-bit palette indices (blob v2 packing:
// element 2k in the low nibble of byte k), written independently of the kernels.
func expandLUT4(idx []byte, pal *[16]float32) []float32 {
	out := make([]float32, 2*len(idx))
	for k := range out {
		out[k] = pal[(idx[k/2]>>(4*(k%2)))&15]
	}
	return out
}

// TestLUT4Kernel: the fused palette dot and the row expansion, vector and portable, on byte
// counts around the kernels' 4- and 8-byte steps. Expansion is a copy of palette values, so
// rowLUT4 equals the definition bit for bit. dotLUT4 accumulates as dot does over the
// expanded row, so it equals dot(expanded, x) bit for bit on either path; against the other
// path it agrees to float32 rounding of the sum, |Δ| ≤ 1e-5·Σ|w·x| as for dot.
func TestLUT4Kernel(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	var worst deltas
	defer worst.log(t, "dotLUT4 vs portable")
	for _, nb := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 100, 1280} {
		idx := make([]byte, nb)
		for i := range idx {
			idx[i] = byte(r.Uint32())
		}
		var pal [16]float32
		for i := range pal {
			pal[i] = float32(r.NormFloat64() * 0.05)
		}
		x := randFloats(r, 2*nb+3) // longer than the row: only 2·nb elements are read
		want := expandLUT4(idx, &pal)
		for _, fast := range []bool{false, true} {
			got := make([]float32, 2*nb)
			withKernels(t, fast, func() { rowLUT4(got, idx, &pal) })
			for k := range want {
				if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
					t.Fatalf("rowLUT4 bytes=%d fast=%v: element %d = %v, want %v", nb, fast, k, got[k], want[k])
				}
			}
			withKernels(t, fast, func() {
				if got, want := dotLUT4(idx, &pal, x), dot(want, x); math.Float32bits(got) != math.Float32bits(want) {
					t.Errorf("dotLUT4 bytes=%d fast=%v: %v, dot over the expanded row %v", nb, fast, got, want)
				}
			})
		}
		var fast, portable float32
		withKernels(t, true, func() { fast = dotLUT4(idx, &pal, x) })
		withKernels(t, false, func() { portable = dotLUT4(idx, &pal, x) })
		s := absDot(want, x)
		if math.Abs(float64(fast-portable)) > 1e-5*s+1e-30 {
			t.Errorf("dotLUT4 bytes=%d: kernel %v, portable %v", nb, fast, portable)
		}
		worst.note(float64(fast-portable), s)
	}
}

// TestLutWeightRows: constexpr_lut_to_dense weights through dotRow and row, against the
// definition W[r,c] = lut[r/rg, c/cg, indices[r,c]] (constexpr_lut_to_dense, VECTOR_SIZE 1), for layouts that
// take the LUT4 kernels (even group widths), layouts that fall back to the scalar loop (odd
// widths, groups starting mid-byte) and uint8 indices.
func TestLutWeightRows(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for _, c := range []struct {
		dt         DType
		rows, cols int
		rg, lc     int // rows per palette, palettes along columns
	}{
		{Uint4, 4, 2560, 4, 1}, // one palette per tensor
		{Uint4, 6, 96, 1, 1},   // one palette per row
		{Uint4, 4, 96, 2, 3},   // groups of 32 columns
		{Uint4, 3, 30, 1, 3},   // groups of 10: whole bytes, not 4-byte runs
		{Uint4, 3, 45, 1, 3},   // groups of 15: odd, scalar path, rows start mid-byte
		{Uint4, 5, 7, 5, 1},    // odd row width
		{Uint8, 2, 40, 1, 2},
	} {
		pal := 16
		if c.dt == Uint8 {
			pal = 256
		}
		n := c.rows * c.cols
		raw := make([]byte, n)
		if c.dt == Uint4 {
			raw = raw[:(n+1)/2]
		}
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		idx := &Tensor{DType: c.dt, Shape: []int{c.rows, c.cols}, raw: raw}
		lut := randFloats(r, c.rows/c.rg*c.lc*pal)
		cg := c.cols / c.lc
		w := &lutWeight{idx: idx, lut: lut, rows: c.rows, cols: c.cols, rg: c.rg, cg: cg, lc: c.lc, pal: pal}
		x := randFloats(r, c.cols)
		for _, fast := range []bool{false, true} {
			withKernels(t, fast, func() {
				dst := make([]float32, c.cols)
				for row := range c.rows {
					var want float64
					var scale float64
					w.row(row, dst)
					for col := range c.cols {
						k := row*c.cols + col
						var code int
						if c.dt == Uint4 {
							code = int(raw[k/2]>>(4*(k%2))) & 15
						} else {
							code = int(raw[k])
						}
						v := lut[((row/c.rg)*c.lc+col/cg)*pal+code]
						if math.Float32bits(dst[col]) != math.Float32bits(v) {
							t.Fatalf("%+v fast=%v: row %d col %d = %v, want %v", c, fast, row, col, dst[col], v)
						}
						want += float64(v) * float64(x[col])
						scale += math.Abs(float64(v) * float64(x[col]))
					}
					got := w.dotRow(row, x)
					if math.Abs(float64(got)-want) > 1e-5*scale {
						t.Errorf("%+v fast=%v: dotRow %d = %v, want %v", c, fast, row, got, want)
					}
					// One palette group per row: decode's dotRow is dot over row (prefill's sum
					// unless the 512-bit kernels run prefill; see lutWeight.dotRow).
					if c.lc == 1 && c.dt == Uint4 && c.cols%2 == 0 && got != dot(dst, x) {
						t.Errorf("%+v fast=%v: dotRow %d = %v, dot over row %v", c, fast, row, got, dot(dst, x))
					}
				}
			})
		}
	}
}
