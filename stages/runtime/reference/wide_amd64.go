//go:build amd64 && !purego

package reference

import (
	"golang.org/x/sys/cpu"

	"github.com/lilims/lilims/internal/simd"
)

// useAVX512 selects the 512-bit kernels of the linear layers (wide_amd64.s). Where the
// units run at full width (measured: an AMD EPYC with AVX-512, 1.8× the AVX2 int4 dot and
// 2.3× its prefill tile) they do twice the work per instruction; where 512-bit operations
// are split in two (Zen 4) they should do about as well as AVX2 (not measured).
// LILIMS_KERNELS=simd turns them off; tests flip it.
var useAVX512 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C &&
	cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	simd.Allowed() >= simd.Widest

// wideKernels reports whether the linear layers use the 512-bit kernels: the CPU has them
// and the SIMD kernels are on (tests turn useSIMD off for the portable path everywhere).
func wideKernels() bool { return useAVX512 && useSIMD }

//go:noescape
func dotInt4AVX512(q *byte, scale *uint16, xd, corr *float32, nblk, sub int, flip uint32) float32

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func dotHalfAVX512(w *uint16, x *float32, n int) float32

//go:noescape
func dot3x4AVX512(w0, w1, w2, x *float32, stride, n int, out *[12]float32)

// dotInt4Wide is dotInt4 on x deinterleaved by deinterleave32; callers use it only when
// wideKernels holds.
func dotInt4Wide(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	nblk := len(scale)
	_ = q[nblk*sub*16-1]
	_ = xd[nblk*sub*32-1]
	_ = corr[nblk-1]
	return dotInt4AVX512(&q[0], &scale[0], &xd[0], &corr[0], nblk, sub, uint32(flip))
}

// linearDot returns a·b (len(b) ≥ len(a)) for the linear layers: the 512-bit kernel where
// useAVX512 holds, else dot. linearDot, linearDotHalf and linearDot3x4 give each output the
// same bits (the prefill/decode contract, see kernels_amd64.s).
func linearDot(a, b []float32) float32 {
	if !wideKernels() || len(a) < 16 {
		return dot(a, b)
	}
	b = b[:len(a)]
	n := len(a) &^ 15
	return dotAVX512(&a[0], &b[0], n) + dotGeneric(a[n:], b[n:])
}

// linearDotHalf returns Σ fp16(w[i])·x[i] (len(x) ≥ len(w)), as linearDot of the widened w.
func linearDotHalf(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	if !wideKernels() || len(w) < 16 {
		return dotHalf(w, x, lut)
	}
	x = x[:len(w)]
	n := len(w) &^ 15
	return dotHalfAVX512(&w[0], &x[0], n) + dotHalfGeneric(w[n:], x[n:], lut)
}

// linearDot3x4 sets out[4·r+i] = linearDot(w_r, x[i·stride:]) for r < 3, i < 4.
func linearDot3x4(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	k := len(w0)
	if !wideKernels() || k < 16 {
		dot3x4(w0, w1, w2, x, stride, out)
		return
	}
	w1, w2 = w1[:k], w2[:k]
	_ = x[3*stride+k-1]
	n := k &^ 15
	dot3x4AVX512(&w0[0], &w1[0], &w2[0], &x[0], stride, n, out)
	if n < k {
		var t [12]float32
		dot3x4Generic(w0[n:], w1[n:], w2[n:], x[n:], stride, &t)
		for i := range out {
			out[i] += t[i]
		}
	}
}

//go:noescape
func dot6x4AVX512(w0, w1, w2, w3, w4, w5, x *float32, stride, n int, out *[24]float32)

// linearDot6x4 sets out[4·r+i] = linearDot(w[r], x[i·stride:]) for r < 6, i < 4.
func linearDot6x4(w *[6][]float32, x []float32, stride int, out *[24]float32) {
	k := len(w[0])
	for r := 1; r < 6; r++ {
		w[r] = w[r][:k]
	}
	if !wideKernels() || k < 16 { // linearDot's fallback, for the same bits
		linearDot3x4(w[0], w[1], w[2], x, stride, (*[12]float32)(out[:12]))
		linearDot3x4(w[3], w[4], w[5], x, stride, (*[12]float32)(out[12:]))
		return
	}
	_ = x[3*stride+k-1]
	n := k &^ 15
	dot6x4AVX512(&w[0][0], &w[1][0], &w[2][0], &w[3][0], &w[4][0], &w[5][0], &x[0], stride, n, out)
	if n < k {
		var t [12]float32
		dot3x4Generic(w[0][n:], w[1][n:], w[2][n:], x[n:], stride, &t)
		for i := range t {
			out[i] += t[i]
		}
		dot3x4Generic(w[3][n:], w[4][n:], w[5][n:], x[n:], stride, &t)
		for i := range t {
			out[12+i] += t[i]
		}
	}
}
