//go:build amd64 && !purego

#include "textflag.h"

// AVX2 + FMA (+ F16C for the fp16 kernels) inner loops of the reference runtime. The Go
// wrappers in kernels_amd64.go check the CPU, hand over whole vector multiples only and
// finish tails in Go; kernels_generic.go holds the portable reference these are tested
// against.

// The float dots keep one 8-lane accumulator (lane l sums the products k ≡ l mod 8 in
// order) and reduce it as ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)), exactly as dot2x4Vec does
// for each of its outputs: a token's logits must not depend on whether it went through
// prefill (dot2x4) or decode (dot), because every fp16 rounding downstream would amplify
// a last-bit difference.

// func dotVec(a, b *float32, n int) float32
// Σ a[i]·b[i] for n a multiple of 8.
TEXT ·dotVec(SB), NOSPLIT, $0-28
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

// func dotHalfVec(w *uint16, x *float32, n int) float32
// Σ fp16(w[i])·x[i] for n a multiple of 8, widening with VCVTPH2PS (exact).
TEXT ·dotHalfVec(SB), NOSPLIT, $0-28
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

// func halfToFloatVec(dst *float32, src *uint16, n int)
// dst[i] = fp16(src[i]) for n a multiple of 8.
TEXT ·halfToFloatVec(SB), NOSPLIT, $0-24
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

// func dot2x4Vec(w0, w1, x *float32, stride, n int, out *[8]float32)
// out[4·r+i] = Σ_k w_r[k]·x[i·stride+k] for rows r = 0, 1 and tokens i = 0..3 (stride in
// elements), n a multiple of 8: each weight vector loaded once serves four tokens.
TEXT ·dot2x4Vec(SB), NOSPLIT, $0-48
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

// Q4BLOCK32 adds one 32-element block of dotInt4AVX2 to Y0: codes at qo(SI), deinterleaved
// x at xo(DI), fp16 scale at so(DX), correction at co(BX); Y14 = 15, Y15 = flip.
#define Q4BLOCK32(qo, xo, so, co) \
	VPMOVZXBD qo(SI), Y3 \
	VPMOVZXBD qo+8(SI), Y4 \
	VPXOR Y15, Y3, Y3 \
	VPXOR Y15, Y4, Y4 \
	VPSRLD $4, Y3, Y5 \
	VPSRLD $4, Y4, Y6 \
	VPAND Y14, Y3, Y3 \
	VPAND Y14, Y4, Y4 \
	VCVTDQ2PS Y3, Y3 \
	VCVTDQ2PS Y5, Y5 \
	VCVTDQ2PS Y4, Y4 \
	VCVTDQ2PS Y6, Y6 \
	VMULPS xo(DI), Y3, Y1 \
	VMULPS xo+32(DI), Y5, Y2 \
	VFMADD231PS xo+64(DI), Y4, Y1 \
	VFMADD231PS xo+96(DI), Y6, Y2 \
	VADDPS Y2, Y1, Y1 \
	VBROADCASTSS co(BX), Y7 \
	VSUBPS Y7, Y1, Y1 \
	VPBROADCASTW so(DX), X8 \
	VCVTPH2PS X8, Y8 \
	VFMADD231PS Y8, Y1, Y0


// S4BLOCK32 is Q4BLOCK32 for int4 codes: a byte sign-extended to 32 bits is 16·h + l with
// h the signed high nibble and l the unsigned low one, so an arithmetic shift by 4 gives h
// and shifting left then arithmetically right by 28 gives the signed low nibble.
#define S4BLOCK32(qo, xo, so) \
	VPMOVSXBD qo(SI), Y3 \
	VPMOVSXBD qo+8(SI), Y4 \
	VPSRAD $4, Y3, Y5 \
	VPSRAD $4, Y4, Y6 \
	VPSLLD $28, Y3, Y3 \
	VPSLLD $28, Y4, Y4 \
	VPSRAD $28, Y3, Y3 \
	VPSRAD $28, Y4, Y4 \
	VCVTDQ2PS Y3, Y3 \
	VCVTDQ2PS Y5, Y5 \
	VCVTDQ2PS Y4, Y4 \
	VCVTDQ2PS Y6, Y6 \
	VMULPS xo(DI), Y3, Y1 \
	VMULPS xo+32(DI), Y5, Y2 \
	VFMADD231PS xo+64(DI), Y4, Y1 \
	VFMADD231PS xo+96(DI), Y6, Y2 \
	VADDPS Y2, Y1, Y1 \
	VPBROADCASTW so(DX), X8 \
	VCVTPH2PS X8, Y8 \
	VFMADD231PS Y8, Y1, Y0

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
	CMPQ R8, $1
	JNE q4block
	MOVL flip+48(FP), R11
	CMPL R11, $0x88
	JEQ s1pair
	JMP q1pair
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
	JMP q4done
q1pair:
	// Blocks of 32 (GGUF Q4_0/Q4_1 transcodes): two blocks per iteration, no inner loop,
	// the scale broadcast straight from memory. Each block's arithmetic is the general
	// path's (a product into zero is the same rounding as VMULPS), so results are identical.
	CMPQ CX, $2
	JLT q1tail
	Q4BLOCK32(0, 0, 0, 0)
	Q4BLOCK32(16, 128, 2, 4)
	ADDQ $32, SI
	ADDQ $256, DI
	ADDQ $4, DX
	ADDQ $8, BX
	SUBQ $2, CX
	JMP q1pair
q1tail:
	TESTQ CX, CX
	JZ q4done
	Q4BLOCK32(0, 0, 0, 0)
	JMP q4done
s1pair:
	// int4 in blocks of 32: codes sign-extended in place, so no flip and no correction
	// (corr is not read): Σ_b s_b·Σ n·x, the sum the correction reconstructs, computed
	// directly and without its cancellation.
	CMPQ CX, $2
	JLT s1tail
	S4BLOCK32(0, 0, 0)
	S4BLOCK32(16, 128, 2)
	ADDQ $32, SI
	ADDQ $256, DI
	ADDQ $4, DX
	SUBQ $2, CX
	JMP s1pair
s1tail:
	TESTQ CX, CX
	JZ q4done
	S4BLOCK32(0, 0, 0)
q4done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+56(FP)
	RET

// func rowInt4AVX2(dst *float32, q *byte, scale *uint16, nblk, sub int, flip uint32, bias float32)
// Dequantizes one row of 4-bit codes: dst[k] = fp16(scale[b])·(u_k − bias) over nblk blocks of
// sub 32-element chunks, u_k the k-th code XORed with flip (element 2k in the low nibble of
// byte k). With flip 0x88 and bias 8, u − 8 is the int4 value n exactly, so each element is
// the same single product s·n as the portable row loop.
TEXT ·rowInt4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ scale+16(FP), DX
	MOVQ nblk+24(FP), CX
	MOVQ sub+32(FP), R8
	MOVL flip+40(FP), AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $15, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VBROADCASTSS bias+44(FP), Y13
	TESTQ CX, CX
	JZ r4done
r4block:
	MOVWLZX (DX), AX
	VMOVD AX, X12
	VCVTPH2PS X12, X12
	VBROADCASTSS X12, Y12
	MOVQ R8, R10
r4sub:
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
	VSUBPS Y13, Y3, Y3
	VSUBPS Y13, Y5, Y5
	VSUBPS Y13, Y4, Y4
	VSUBPS Y13, Y6, Y6
	VMULPS Y12, Y3, Y3
	VMULPS Y12, Y5, Y5
	VMULPS Y12, Y4, Y4
	VMULPS Y12, Y6, Y6
	// Interleave low (Y3) and high (Y5) nibbles: [l0 h0 l1 h1 … l7 h7].
	VUNPCKLPS Y5, Y3, Y7
	VUNPCKHPS Y5, Y3, Y8
	VPERM2F128 $0x20, Y8, Y7, Y9
	VPERM2F128 $0x31, Y8, Y7, Y10
	VMOVUPS Y9, 0(DI)
	VMOVUPS Y10, 32(DI)
	VUNPCKLPS Y6, Y4, Y7
	VUNPCKHPS Y6, Y4, Y8
	VPERM2F128 $0x20, Y8, Y7, Y9
	VPERM2F128 $0x31, Y8, Y7, Y10
	VMOVUPS Y9, 64(DI)
	VMOVUPS Y10, 96(DI)
	ADDQ $16, SI
	ADDQ $128, DI
	DECQ R10
	JNZ r4sub
	ADDQ $2, DX
	DECQ CX
	JNZ r4block
r4done:
	VZEROUPPER
	RET

// func axpyVec(dst *float32, a float32, x *float32, n int)
// dst[i] += a·x[i] for n a multiple of 8, the product rounded before the sum (VMULPS then
// VADDPS, not FMA), exactly as the Go loop computes it.
TEXT ·axpyVec(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	VBROADCASTSS a+8(FP), Y0
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ axdone
axloop:
	VMULPS (SI), Y0, Y1
	VADDPS (DI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ axloop
axdone:
	VZEROUPPER
	RET

// func dot3x4Vec(w0, w1, w2, x *float32, stride, n int, out *[12]float32)
// out[4·r+i] = Σ_k w_r[k]·x[i·stride+k] for rows r = 0..2 and tokens i = 0..3, n a multiple
// of 8: dot2x4Vec with a third row, twelve accumulators (one per output, summed in k order
// per lane and reduced as dot2x4Vec does, so each output is the same bits as dot) and 7
// loads per 12 multiply-adds instead of 6 per 8.
TEXT ·dot3x4Vec(SB), NOSPLIT, $0-56
	MOVQ w0+0(FP), SI
	MOVQ w1+8(FP), DX
	MOVQ w2+16(FP), BX
	MOVQ x+24(FP), DI
	MOVQ stride+32(FP), R8
	SHLQ $2, R8
	MOVQ n+40(FP), CX
	MOVQ out+48(FP), AX
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
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	SHRQ $3, CX
	JZ d34done
d34loop:
	VMOVUPS (SI), Y12
	VMOVUPS (DX), Y13
	VMOVUPS (BX), Y14
	VMOVUPS (DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS (DI)(R8*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS (DI)(R8*2), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS (R9), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, BX
	ADDQ $32, DI
	ADDQ $32, R9
	DECQ CX
	JNZ d34loop
d34done:
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
	VHADDPS Y9, Y8, Y8
	VHADDPS Y11, Y10, Y10
	VHADDPS Y10, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPS X9, X8, X8
	VMOVUPS X8, 32(AX)
	VZEROUPPER
	RET

// lut4shift holds the per-lane right shifts that take an 8-element run's indices out of
// four bytes, each byte duplicated: element 2k is the low nibble of byte k, 2k+1 the high.
DATA lut4shift<>+0(SB)/4, $0
DATA lut4shift<>+4(SB)/4, $4
DATA lut4shift<>+8(SB)/4, $0
DATA lut4shift<>+12(SB)/4, $4
DATA lut4shift<>+16(SB)/4, $0
DATA lut4shift<>+20(SB)/4, $4
DATA lut4shift<>+24(SB)/4, $0
DATA lut4shift<>+28(SB)/4, $4
GLOBL lut4shift<>(SB), RODATA|NOPTR, $32

// LUT4GATHER8 leaves in Y3 the palette values of the 8 indices in the 4 bytes at (SI):
// Y14 = pal[0:8], Y13 = pal[8:16], Y12 = lut4shift. VPERMPS reads only an index's low 3
// bits, so each half of the palette is permuted by the unmasked nibble and bit 3, shifted
// into the sign bit, picks the half (VBLENDVPS).
#define LUT4GATHER8 \
	MOVL (SI), AX \
	VMOVD AX, X1 \
	VPUNPCKLBW X1, X1, X1 \
	VPMOVZXBD X1, Y1 \
	VPSRLVD Y12, Y1, Y1 \
	VPSLLD $28, Y1, Y2 \
	VPERMPS Y14, Y1, Y3 \
	VPERMPS Y13, Y1, Y4 \
	VBLENDVPS Y2, Y4, Y3, Y3

// func dotLUT4Vec(idx *byte, pal *[16]float32, x *float32, n int) float32
// Σ_k pal[n_k]·x[k] for n a multiple of 8 (n/2 index bytes), one 8-lane accumulator
// reduced as dotVec reduces it: the same bits as dotVec over the expanded row.
TEXT ·dotLUT4Vec(SB), NOSPLIT, $0-36
	MOVQ idx+0(FP), SI
	MOVQ pal+8(FP), DX
	MOVQ x+16(FP), DI
	MOVQ n+24(FP), CX
	VMOVUPS 0(DX), Y14
	VMOVUPS 32(DX), Y13
	VMOVDQU lut4shift<>(SB), Y12
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JZ l4ddone
l4dloop:
	LUT4GATHER8
	VFMADD231PS 0(DI), Y3, Y0
	ADDQ $4, SI
	ADDQ $32, DI
	DECQ CX
	JNZ l4dloop
l4ddone:
	VHADDPS Y0, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+32(FP)
	RET

// func rowLUT4Vec(dst *float32, idx *byte, pal *[16]float32, n int)
// dst[k] = pal[n_k] for n a multiple of 8.
TEXT ·rowLUT4Vec(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ idx+8(FP), SI
	MOVQ pal+16(FP), DX
	MOVQ n+24(FP), CX
	VMOVUPS 0(DX), Y14
	VMOVUPS 32(DX), Y13
	VMOVDQU lut4shift<>(SB), Y12
	SHRQ $3, CX
	JZ l4rdone
l4rloop:
	LUT4GATHER8
	VMOVUPS Y3, 0(DI)
	ADDQ $4, SI
	ADDQ $32, DI
	DECQ CX
	JNZ l4rloop
l4rdone:
	VZEROUPPER
	RET
