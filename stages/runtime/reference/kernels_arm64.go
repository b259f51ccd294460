//go:build arm64 && !purego

package reference

import "github.com/lilims/lilims/internal/simd"

// useSIMD selects the NEON kernels (kernels_arm64.s). Advanced SIMD, including the fp16
// conversions FCVTL/FCVTL2, is part of every ARMv8-A core, so there is nothing to detect but
// LILIMS_KERNELS; tests flip it to compare both paths.
var useSIMD = simd.Allowed() >= simd.Base

//go:noescape
func dotInt4NEON(q *byte, scale *uint16, xd *float32, nblk, sub int, signed bool) float32

//go:noescape
func rowInt4NEON(dst *float32, q *byte, scale *uint16, nblk, sub int, signed bool)

// hasInt4Kernel reports whether dotInt4 runs in assembly (else the caller keeps the
// portable row loop, which needs no deinterleaved input).
func hasInt4Kernel() bool { return useSIMD }

// dotInt4 is the fused int4 block dot (see dotInt4Generic for the arguments). The NEON
// kernel sign-extends int4 codes in place, so it does not read corr (flip 0x88 means int4).
func dotInt4(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	nblk := len(scale)
	_ = q[nblk*sub*16-1]
	_ = xd[nblk*sub*32-1]
	_ = corr[nblk-1]
	if !useSIMD {
		return dotInt4Generic(q, scale, xd, corr, sub, flip)
	}
	return dotInt4NEON(&q[0], &scale[0], &xd[0], nblk, sub, flip == 0x88)
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
	rowInt4NEON(&dst[0], &q[0], &scale[0], nblk, sub, signed)
}
