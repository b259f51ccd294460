//go:build amd64 && !purego

#include "textflag.h"

// AVX2 + FMA (+ F16C for the fp16 kernels) inner loops of the reference runtime. The Go
// wrappers in kernels_amd64.go check the CPU, hand over whole vector multiples only and
// finish tails in Go; kernels_generic.go holds the portable reference these are tested
// against.

// The float dots keep one 8-lane accumulator (lane l sums the products k ≡ l mod 8 in
// order) and reduce it as ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)), exactly as dot2x4AVX2 does
// for each of its outputs: a token's logits must not depend on whether it went through
// prefill (dot2x4) or decode (dot), because every fp16 rounding downstream would amplify
// a last-bit difference.

// func dotAVX2(a, b *float32, n int) float32
// Σ a[i]·b[i] for n a multiple of 8.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JZ dotdone
dotloop:
	VMOVUPS 0(SI), Y4
	VFMADD231PS 0(DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ dotloop
dotdone:
	VHADDPS Y0, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotHalfAVX2(w *uint16, x *float32, n int) float32
// Σ fp16(w[i])·x[i] for n a multiple of 8, widening with VCVTPH2PS (exact).
TEXT ·dotHalfAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JZ halfdone
halfloop:
	VCVTPH2PS 0(SI), Y4
	VFMADD231PS 0(DI), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ halfloop
halfdone:
	VHADDPS Y0, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func halfToFloatAVX2(dst *float32, src *uint16, n int)
// dst[i] = fp16(src[i]) for n a multiple of 8.
TEXT ·halfToFloatAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ h2fdone
h2floop:
	VCVTPH2PS 0(SI), Y0
	VMOVUPS Y0, 0(DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ h2floop
h2fdone:
	VZEROUPPER
	RET

// func dot2x4AVX2(w0, w1, x *float32, stride, n int, out *[8]float32)
// out[4·r+i] = Σ_k w_r[k]·x[i·stride+k] for rows r = 0, 1 and tokens i = 0..3 (stride in
// elements), n a multiple of 8: each weight vector loaded once serves four tokens.
TEXT ·dot2x4AVX2(SB), NOSPLIT, $0-48
	MOVQ w0+0(FP), SI
	MOVQ w1+8(FP), DX
	MOVQ x+16(FP), DI
	MOVQ stride+24(FP), R8
	SHLQ $2, R8
	MOVQ n+32(FP), CX
	MOVQ out+40(FP), AX
	LEAQ (DI)(R8*2), R9
	ADDQ R8, R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $3, CX
	JZ d24done
d24loop:
	VMOVUPS (SI), Y8
	VMOVUPS (DX), Y9
	VMOVUPS (DI), Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y4
	VMOVUPS (DI)(R8*1), Y11
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y11, Y9, Y5
	VMOVUPS (DI)(R8*2), Y12
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y12, Y9, Y6
	VMOVUPS (R9), Y13
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y13, Y9, Y7
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	ADDQ $32, R9
	DECQ CX
	JNZ d24loop
d24done:
	// Reduce each accumulator to one float: pairwise hadds over (Y0..Y3) and (Y4..Y7).
	VHADDPS Y1, Y0, Y0
	VHADDPS Y3, Y2, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVUPS X0, 0(AX)
	VHADDPS Y5, Y4, Y4
	VHADDPS Y7, Y6, Y6
	VHADDPS Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VMOVUPS X4, 16(AX)
	VZEROUPPER
	RET

// func dotInt4AVX2(q *byte, scale *uint16, xd, corr *float32, nblk, sub int, flip uint32) float32
// Σ_b fp16(scale[b])·(Σ_{k<32·sub} u_k·xd_k − 8·corr[b]... see below) over nblk blocks of
// sub 32-element chunks. q holds two 4-bit codes per byte; each byte is first XORed with
// flip (0x88 turns int4 two's complement n into u = n + 8; 0 keeps uint4 codes), so u is in
// 0..15 and the caller folds the −8 back through corr: the kernel subtracts corr[b] from
// each of the 8 lanes, corr[b] = 8·Σ_block x / 8 = Σ_block x for int4 (0 for uint4).
// xd is x deinterleaved per 16 elements (evens, then odds), matching low/high nibbles.
TEXT ·dotInt4AVX2(SB), NOSPLIT, $0-60
	MOVQ q+0(FP), SI
	MOVQ scale+8(FP), DX
	MOVQ xd+16(FP), DI
	MOVQ corr+24(FP), BX
	MOVQ nblk+32(FP), CX
	MOVQ sub+40(FP), R8
	MOVL flip+48(FP), AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $15, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VXORPS Y0, Y0, Y0
	TESTQ CX, CX
	JZ q4done
q4block:
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	MOVQ R8, R10
q4sub:
	VPMOVZXBD 0(SI), Y3
	VPMOVZXBD 8(SI), Y4
	VPXOR Y15, Y3, Y3
	VPXOR Y15, Y4, Y4
	VPSRLD $4, Y3, Y5
	VPSRLD $4, Y4, Y6
	VPAND Y14, Y3, Y3
	VPAND Y14, Y4, Y4
	VCVTDQ2PS Y3, Y3
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y6, Y6
	VFMADD231PS 0(DI), Y3, Y1
	VFMADD231PS 32(DI), Y5, Y2
	VFMADD231PS 64(DI), Y4, Y1
	VFMADD231PS 96(DI), Y6, Y2
	ADDQ $16, SI
	ADDQ $128, DI
	DECQ R10
	JNZ q4sub
	VADDPS Y2, Y1, Y1
	VBROADCASTSS (BX), Y3
	VSUBPS Y3, Y1, Y1
	MOVWLZX (DX), AX
	VMOVD AX, X4
	VCVTPH2PS X4, X4
	VBROADCASTSS X4, Y4
	VFMADD231PS Y4, Y1, Y0
	ADDQ $2, DX
	ADDQ $4, BX
	DECQ CX
	JNZ q4block
q4done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+56(FP)
	RET
