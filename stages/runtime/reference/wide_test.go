package reference

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestInt4WideKernel: the AVX-512 fused int4 dot (on x deinterleaved per 32) against its
// portable form and against the dense product of the dequantized row, int4 and uint4, blocks
// of 32·sub, odd block counts so that the two-block loop's tail runs. The kernel sums in 16
// lanes and two accumulators, so agreement is to float32 rounding of the sums: the bound of
// TestInt4Kernel (1e-5·Σ|w·x| plus the 8·Σx cancellation of the flipped path).
func TestInt4WideKernel(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 on this CPU: dotInt4Wide is the portable form, tested below")
	}
	testInt4Wide(t)
}

func TestInt4WidePortable(t *testing.T) { testInt4Wide(t) }

func testInt4Wide(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, dt := range []DType{Int4, Uint4} {
		for _, cb := range []int{32, 64, 96} {
			for _, nb := range []int{1, 2, 3, 5, 80} {
				w := randInt4Row(r, dt, cb, nb)
				cols, q, scale := w.cols, w.data.raw, w.scaleH
				x := randFloats(r, cols)
				dense := make([]float32, cols)
				w.row(0, dense)
				want := dotGeneric(dense, x)
				tol := 1e-5*absDot(dense, x) + 1e-5*8*float64(cols)
				xd, corr := make([]float32, cols), make([]float32, nb)
				w.prepareWide(x, xd, corr)
				flip := byte(0)
				if dt == Int4 {
					flip = 0x88
				}
				portable := dotInt4Generic32(q, scale, xd, corr, cb/32, flip)
				got := w.dotFused(0, xd, corr, true)
				if math.Abs(float64(got-portable)) > tol || math.Abs(float64(portable-want)) > tol {
					t.Errorf("%v cb=%d nb=%d: wide %v, portable %v, dense %v", dt, cb, nb, got, portable, want)
				}
			}
		}
	}
}

// randInt4Row is one row of nb blocks of cb random 4-bit codes (dtype Int4 or Uint4) with
// random fp16 scales in [0.01, 0.11], in the fused kernels' layout.
func randInt4Row(r *rand.Rand, dt DType, cb, nb int) *blockwiseWeight {
	cols := cb * nb
	q := make([]byte, cols/2)
	for i := range q {
		q[i] = byte(r.Uint32())
	}
	scale := make([]uint16, nb)
	for i := range scale {
		scale[i] = floatToHalf(float32(0.01 + 0.1*r.Float64()))
	}
	return &blockwiseWeight{data: &Tensor{DType: dt, Shape: []int{1, cols}, raw: q}, scaleH: scale,
		rows: 1, cols: cols, rb: 1, cb: cb, sc: nb}
}

// BenchmarkInt4Dot: one 2560-wide int4 row in blocks of 32 (a Phi-2 projection row), per
// kernel; bytes are the packed codes and scales read.
func BenchmarkInt4Dot(b *testing.B) {
	const cols = 2560
	r := rand.New(rand.NewPCG(1, 2))
	q := make([]byte, cols/2)
	for i := range q {
		q[i] = byte(r.Uint32())
	}
	scale := make([]uint16, cols/32)
	for i := range scale {
		scale[i] = floatToHalf(0.05)
	}
	w := &blockwiseWeight{data: &Tensor{DType: Int4, Shape: []int{1, cols}, raw: q}, scaleH: scale,
		rows: 1, cols: cols, rb: 1, cb: 32, sc: cols / 32}
	x := randFloats(r, cols)
	xd, corr := make([]float32, cols), make([]float32, cols/32)
	for _, k := range []struct {
		name string
		wide bool
		ok   bool
	}{{"simd", false, useSIMD}, {"avx512", true, useAVX512}} {
		if !k.ok {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			if k.wide {
				w.prepareWide(x, xd, corr)
			} else {
				w.prepare(x, xd, corr)
			}
			b.SetBytes(int64(len(q) + 2*len(scale)))
			var s float32
			for b.Loop() {
				s += w.dotFused(0, xd, corr, k.wide)
			}
			_ = s
		})
	}
}

// TestWideFloatKernels: the 512-bit dots against the portable dot (float32 rounding of the
// sum, the bound of TestDotKernels), and among themselves bit for bit — the 3x4 tile, the
// fp16 dot and the plain dot give each output the same bits, so a token's logits do not
// depend on whether prefill or decode computed them.
func TestWideFloatKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	lut := halfLUT()
	for _, k := range kernelLengths {
		w := [3][]float32{randFloats(r, k), randFloats(r, k), randFloats(r, k)}
		h := make([]uint16, k)
		for i := range h {
			h[i] = floatToHalf(w[0][i])
			w[0][i] = lut[h[i]]
		}
		stride := k + 3
		x := randFloats(r, 3*stride+k)
		var tile [12]float32
		linearDot3x4(w[0], w[1], w[2], x, stride, &tile)
		for row := range 3 {
			for i := range 4 {
				xi := x[i*stride : i*stride+k]
				d := linearDot(w[row], xi)
				if tile[4*row+i] != d {
					t.Errorf("k=%d row %d token %d: tile %v, dot %v (must be equal)", k, row, i, tile[4*row+i], d)
				}
				if row == 0 {
					if hd := linearDotHalf(h, xi, lut); hd != d {
						t.Errorf("k=%d token %d: fp16 dot %v, dot %v (must be equal)", k, i, hd, d)
					}
				}
				if g := dotGeneric(w[row], xi); math.Abs(float64(d-g)) > 1e-5*absDot(w[row], xi) {
					t.Errorf("k=%d: dot %v, portable %v", k, d, g)
				}
			}
		}
	}
}

// TestKernelsName: the name follows the switches (what bench and doctor report).
func TestKernelsName(t *testing.T) {
	saved := useSIMD
	defer func() { useSIMD = saved }()
	useSIMD = false
	if k := Kernels(); k != "portable" {
		t.Errorf("with SIMD off, Kernels() = %q, want portable", k)
	}
	useSIMD = saved
	want := map[string]string{"amd64": "avx2", "arm64": "neon"}[runtime.GOARCH]
	switch {
	case wideKernels():
		want = "avx512"
	case !useSIMD || want == "":
		want = "portable"
	}
	if k := Kernels(); k != want {
		t.Errorf("Kernels() = %q, want %q", k, want)
	}
}
