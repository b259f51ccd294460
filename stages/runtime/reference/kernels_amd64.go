//go:build amd64 && !purego

package reference

import (
	"golang.org/x/sys/cpu"

	"github.com/lilims/lilims/internal/simd"
)

// useSIMD selects the assembly kernels: AVX2 and FMA for float32, int4 and LUT4, F16C for
// fp16 (all three on every x86-64 CPU since Haswell). Tests flip it to compare both paths.
var useSIMD = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C &&
	simd.Allowed() >= simd.Base

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dotHalfAVX2(w *uint16, x *float32, n int) float32

//go:noescape
func halfToFloatAVX2(dst *float32, src *uint16, n int)

//go:noescape
func dot2x4AVX2(w0, w1, x *float32, stride, n int, out *[8]float32)

//go:noescape
func rowInt4AVX2(dst *float32, q *byte, scale *uint16, nblk, sub int, flip uint32, bias float32)

//go:noescape
func dot3x4AVX2(w0, w1, w2, x *float32, stride, n int, out *[12]float32)

//go:noescape
func axpyAVX2(dst *float32, a float32, x *float32, n int)

//go:noescape
func dotLUT4AVX2(idx *byte, pal *[16]float32, x *float32, n int) float32

//go:noescape
func rowLUT4AVX2(dst *float32, idx *byte, pal *[16]float32, n int)

//go:noescape
func dotInt4AVX2(q *byte, scale *uint16, xd, corr *float32, nblk, sub int, flip uint32) float32

// dot returns a·b (len(b) ≥ len(a)).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	if !useSIMD || len(a) < 8 {
		return dotGeneric(a, b)
	}
	n := len(a) &^ 7
	return dotAVX2(&a[0], &b[0], n) + dotGeneric(a[n:], b[n:])
}

// dotHalf returns Σ fp16(w[i])·x[i] (len(x) ≥ len(w)).
func dotHalf(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	x = x[:len(w)]
	if !useSIMD || len(w) < 8 {
		return dotHalfGeneric(w, x, lut)
	}
	n := len(w) &^ 7
	return dotHalfAVX2(&w[0], &x[0], n) + dotHalfGeneric(w[n:], x[n:], lut)
}

// halfsToFloats widens src into dst (len(src) ≥ len(dst)).
func halfsToFloats(dst []float32, src []uint16) {
	src = src[:len(dst)]
	n := 0
	if useSIMD && len(dst) >= 8 {
		n = len(dst) &^ 7
		halfToFloatAVX2(&dst[0], &src[0], n)
	}
	halfsToFloatsGeneric(dst[n:], src[n:])
}

// dot2x4 sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for r < 2, i < 4.
func dot2x4(w0, w1, x []float32, stride int, out *[8]float32) {
	k := len(w0)
	w1 = w1[:k]
	_ = x[3*stride+k-1]
	if !useSIMD || k < 8 {
		dot2x4Generic(w0, w1, x, stride, out)
		return
	}
	n := k &^ 7
	dot2x4AVX2(&w0[0], &w1[0], &x[0], stride, n, out)
	if n < k {
		var t [8]float32
		dot2x4Generic(w0[n:], w1[n:], x[n:], stride, &t)
		for i := range out {
			out[i] += t[i]
		}
	}
}

// hasInt4Kernel reports whether dotInt4 runs in assembly (else the caller keeps the
// portable row loop, which needs no deinterleaved input).
func hasInt4Kernel() bool { return useSIMD }

// dotInt4 is the fused int4 block dot (see dotInt4Generic for the arguments).
func dotInt4(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	nblk := len(scale)
	_ = q[nblk*sub*16-1]
	_ = xd[nblk*sub*32-1]
	_ = corr[nblk-1]
	if !useSIMD {
		return dotInt4Generic(q, scale, xd, corr, sub, flip)
	}
	return dotInt4AVX2(&q[0], &scale[0], &xd[0], &corr[0], nblk, sub, uint32(flip))
}

// rowInt4 writes one row of 4-bit codes dequantized (see rowInt4Generic for the arguments).
func rowInt4(dst []float32, q []byte, scale []uint16, sub int, signed bool) {
	nblk := len(scale)
	_ = q[nblk*sub*16-1]
	_ = dst[nblk*sub*32-1]
	if !useSIMD {
		rowInt4Generic(dst, q, scale, sub, signed)
		return
	}
	flip, bias := uint32(0), float32(0)
	if signed {
		flip, bias = 0x88, 8
	}
	rowInt4AVX2(&dst[0], &q[0], &scale[0], nblk, sub, flip, bias)
}

// axpy adds a·x to dst (len(x) ≥ len(dst)); elements are independent, so the vector kernel
// (a product then a sum, not fused) gives the portable loop's results bit for bit.
func axpy(dst []float32, a float32, x []float32) {
	x = x[:len(dst)]
	n := 0
	if useSIMD && len(dst) >= 8 {
		n = len(dst) &^ 7
		axpyAVX2(&dst[0], a, &x[0], n)
	}
	axpyGeneric(dst[n:], a, x[n:])
}

// dot3x4 sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for r < 3, i < 4.
func dot3x4(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	k := len(w0)
	w1, w2 = w1[:k], w2[:k]
	_ = x[3*stride+k-1]
	if !useSIMD || k < 8 {
		dot3x4Generic(w0, w1, w2, x, stride, out)
		return
	}
	n := k &^ 7
	dot3x4AVX2(&w0[0], &w1[0], &w2[0], &x[0], stride, n, out)
	if n < k {
		var t [12]float32
		dot3x4Generic(w0[n:], w1[n:], w2[n:], x[n:], stride, &t)
		for i := range out {
			out[i] += t[i]
		}
	}
}

// dotLUT4 returns Σ_k pal[n_k]·x[k] over the 4-bit indices of idx (see dotLUT4Generic). The
// kernel takes whole 8-element runs, accumulating like dotAVX2, and the tail is finished as
// dot finishes it, so the result is dot(expanded row, x) bit for bit.
func dotLUT4(idx []byte, pal *[16]float32, x []float32) float32 {
	x = x[:2*len(idx)]
	if !useSIMD || len(x) < 8 {
		return dotLUT4Generic(idx, pal, x)
	}
	nb := len(idx) &^ 3 // 4 bytes = 8 elements
	return dotLUT4AVX2(&idx[0], pal, &x[0], 2*nb) + dotLUT4Generic(idx[nb:], pal, x[2*nb:])
}

// rowLUT4 expands 4-bit palette indices into dst (see rowLUT4Generic).
func rowLUT4(dst []float32, idx []byte, pal *[16]float32) {
	dst = dst[:2*len(idx)]
	nb := 0
	if useSIMD && len(idx) >= 4 {
		nb = len(idx) &^ 3
		rowLUT4AVX2(&dst[0], &idx[0], pal, 2*nb)
	}
	rowLUT4Generic(dst[2*nb:], idx[nb:], pal)
}
