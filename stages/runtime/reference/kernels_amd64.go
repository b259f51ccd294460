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
func rowInt4AVX2(dst *float32, q *byte, scale *uint16, nblk, sub int, flip uint32, bias float32)

//go:noescape
func dotInt4AVX2(q *byte, scale *uint16, xd, corr *float32, nblk, sub int, flip uint32) float32

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
