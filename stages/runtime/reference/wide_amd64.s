//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 (F + BW + VL) kernels of the linear layers, for CPUs whose 512-bit units run at
// full width (Zen 5, Intel server cores). Wrappers and the CPU check are in wide_amd64.go.

// The fused int4 block dot: one block of 32 codes is 16 bytes, widened to 16 dword lanes in
// one instruction, so a block costs half the conversions and products of the AVX2 kernel.
// x comes deinterleaved per 32 elements (deinterleave32): the low nibbles of a block's 16
// bytes are its even elements, the high nibbles its odd ones.

// func dotInt4AVX512(q *byte, scale *uint16, xd, corr *float32, nblk, sub int, flip uint32) float32
// Same sum as dotInt4Generic32. sub == 1 with flip 0x88 (int4 in blocks of 32, the GGUF
// Q4_0 transcode and block-32 schemes) takes the signed path: codes sign-extended in place,
// no correction, two blocks per iteration into two accumulators so that the per-block
// scale products do not wait on one another.
TEXT ·dotInt4AVX512(SB), NOSPLIT, $0-60
	MOVQ q+0(FP), SI
	MOVQ scale+8(FP), DX
	MOVQ xd+16(FP), DI
	MOVQ corr+24(FP), BX
	MOVQ nblk+32(FP), CX
	MOVQ sub+40(FP), R8
	MOVL flip+48(FP), AX
	VPXORD Z0, Z0, Z0
	VPXORD Z9, Z9, Z9
	TESTQ CX, CX
	JZ wdone
	CMPQ R8, $1
	JNE wgeneral
	CMPL AX, $0x88
	JNE wgeneral

wpair:
	CMPQ CX, $2
	JLT wtail
	VPMOVSXBD 0(SI), Z3
	VPMOVSXBD 16(SI), Z13
	VPSLLD $28, Z3, Z4
	VPSLLD $28, Z13, Z14
	VPSRAD $28, Z4, Z4
	VPSRAD $28, Z14, Z14
	VPSRAD $4, Z3, Z3
	VPSRAD $4, Z13, Z13
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z14, Z14
	VCVTDQ2PS Z3, Z3
	VCVTDQ2PS Z13, Z13
	VMULPS 0(DI), Z4, Z1
	VMULPS 128(DI), Z14, Z11
	VFMADD231PS 64(DI), Z3, Z1
	VFMADD231PS 192(DI), Z13, Z11
	VPBROADCASTW 0(DX), Y8
	VPBROADCASTW 2(DX), Y18
	VCVTPH2PS Y8, Z8
	VCVTPH2PS Y18, Z18
	VFMADD231PS Z8, Z1, Z0
	VFMADD231PS Z18, Z11, Z9
	ADDQ $32, SI
	ADDQ $256, DI
	ADDQ $4, DX
	SUBQ $2, CX
	JMP wpair
wtail:
	TESTQ CX, CX
	JZ wdone
	VPMOVSXBD 0(SI), Z3
	VPSLLD $28, Z3, Z4
	VPSRAD $28, Z4, Z4
	VPSRAD $4, Z3, Z3
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z3, Z3
	VMULPS 0(DI), Z4, Z1
	VFMADD231PS 64(DI), Z3, Z1
	VPBROADCASTW 0(DX), Y8
	VCVTPH2PS Y8, Z8
	VFMADD231PS Z8, Z1, Z0
	JMP wdone

wgeneral:
	// Codes XORed with flip (0x88: int4 n → n+8; 0: uint4 as is) are 0..15; the sum of
	// u·x over a block is corrected by −8·corr[b], spread as −corr[b]/2 over 16 lanes.
	VPBROADCASTD AX, Z15
	MOVL $15, AX
	VPBROADCASTD AX, Z16
	MOVL $0x3f000000, AX // 0.5
	VPBROADCASTD AX, Z17
wblock:
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	MOVQ R8, R10
wsub:
	VPMOVZXBD 0(SI), Z3
	VPXORD Z15, Z3, Z3
	VPSRLD $4, Z3, Z5
	VPANDD Z16, Z3, Z3
	VCVTDQ2PS Z3, Z3
	VCVTDQ2PS Z5, Z5
	VFMADD231PS 0(DI), Z3, Z1
	VFMADD231PS 64(DI), Z5, Z2
	ADDQ $16, SI
	ADDQ $128, DI
	DECQ R10
	JNZ wsub
	VADDPS Z2, Z1, Z1
	VBROADCASTSS 0(BX), Z3
	VMULPS Z17, Z3, Z3
	VSUBPS Z3, Z1, Z1
	VPBROADCASTW 0(DX), Y8
	VCVTPH2PS Y8, Z8
	VFMADD231PS Z8, Z1, Z0
	ADDQ $2, DX
	ADDQ $4, BX
	DECQ CX
	JNZ wblock

wdone:
	VADDPS Z9, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+56(FP)
	RET

// The float dots below keep 16-lane accumulators and reduce each by first adding its upper
// 8 lanes to its lower 8, then exactly as the AVX2 kernels reduce 8 lanes. dotAVX512,
// dotHalfAVX512 and dot3x4AVX512 share that order, so prefill and decode give a token the
// same bits on dense weights (see kernels_amd64.s), as the AVX2 kernels do among themselves.

// func dotAVX512(a, b *float32, n int) float32
// Σ a[i]·b[i] for n a multiple of 16.
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	SHRQ $4, CX
	JZ wdotdone
wdotloop:
	VMOVUPS 0(SI), Z4
	VFMADD231PS 0(DI), Z4, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ wdotloop
wdotdone:
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotHalfAVX512(w *uint16, x *float32, n int) float32
// Σ fp16(w[i])·x[i] for n a multiple of 16, widening with VCVTPH2PS (exact).
TEXT ·dotHalfAVX512(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	SHRQ $4, CX
	JZ whalfdone
whalfloop:
	VCVTPH2PS 0(SI), Z4
	VFMADD231PS 0(DI), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ whalfloop
whalfdone:
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VHADDPS Y0, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// FOLD adds the upper 8 lanes of Z register a into its lower 8 (Y register a), using t.
#define FOLD(za, ya, yt) \
	VEXTRACTF64X4 $1, za, yt \
	VADDPS yt, ya, ya

// func dot3x4AVX512(w0, w1, w2, x *float32, stride, n int, out *[12]float32)
// out[4·r+i] = w_r·x[i·stride:] over n (a multiple of 16) elements, rows r < 3, tokens
// i < 4: the dot3x4Vec tile (kernels_amd64.s) at twice the width.
TEXT ·dot3x4AVX512(SB), NOSPLIT, $0-56
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
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	SHRQ $4, CX
	JZ w34done
w34loop:
	VMOVUPS (SI), Z12
	VMOVUPS (DX), Z13
	VMOVUPS (BX), Z14
	VMOVUPS (DI), Z15
	VFMADD231PS Z15, Z12, Z0
	VFMADD231PS Z15, Z13, Z4
	VFMADD231PS Z15, Z14, Z8
	VMOVUPS (DI)(R8*1), Z16
	VFMADD231PS Z16, Z12, Z1
	VFMADD231PS Z16, Z13, Z5
	VFMADD231PS Z16, Z14, Z9
	VMOVUPS (DI)(R8*2), Z17
	VFMADD231PS Z17, Z12, Z2
	VFMADD231PS Z17, Z13, Z6
	VFMADD231PS Z17, Z14, Z10
	VMOVUPS (R9), Z18
	VFMADD231PS Z18, Z12, Z3
	VFMADD231PS Z18, Z13, Z7
	VFMADD231PS Z18, Z14, Z11
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, BX
	ADDQ $64, DI
	ADDQ $64, R9
	DECQ CX
	JNZ w34loop
w34done:
	FOLD(Z0, Y0, Y16)
	FOLD(Z1, Y1, Y16)
	FOLD(Z2, Y2, Y16)
	FOLD(Z3, Y3, Y16)
	FOLD(Z4, Y4, Y16)
	FOLD(Z5, Y5, Y16)
	FOLD(Z6, Y6, Y16)
	FOLD(Z7, Y7, Y16)
	FOLD(Z8, Y8, Y16)
	FOLD(Z9, Y9, Y16)
	FOLD(Z10, Y10, Y16)
	FOLD(Z11, Y11, Y16)
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

// HADD4 reduces the folded 8-lane accumulators ya..yd (Y0–Y15) of one row to its four
// token outputs at off(AX), in the order of dot3x4Vec.
#define HADD4(ya, yb, yc, yd, xa, xt, off) \
	VHADDPS yb, ya, ya \
	VHADDPS yd, yc, yc \
	VHADDPS yc, ya, ya \
	VEXTRACTF128 $1, ya, xt \
	VADDPS xt, xa, xa \
	VMOVUPS xa, off(AX)

// ROW6 multiplies the six weight vectors Z24–Z29 with token vector xz into the accumulators
// of token column a: Z(a), Z(a+4), … Z(a+20).
#define ROW6(xz, a0, a1, a2, a3, a4, a5) \
	VFMADD231PS xz, Z24, a0 \
	VFMADD231PS xz, Z25, a1 \
	VFMADD231PS xz, Z26, a2 \
	VFMADD231PS xz, Z27, a3 \
	VFMADD231PS xz, Z28, a4 \
	VFMADD231PS xz, Z29, a5

// func dot6x4AVX512(w0, w1, w2, w3, w4, w5, x *float32, stride, n int, out *[24]float32)
// out[4·r+i] = w_r·x[i·stride:] over n (a multiple of 16) elements, rows r < 6, tokens
// i < 4: six rows share each token load (ten loads for 24 products, against seven for 12
// in the 3x4 tile), which is what prefill is bound by once the rows are dequantized.
TEXT ·dot6x4AVX512(SB), NOSPLIT, $0-80
	MOVQ w0+0(FP), SI
	MOVQ w1+8(FP), DX
	MOVQ w2+16(FP), BX
	MOVQ w3+24(FP), R10
	MOVQ w4+32(FP), R11
	MOVQ w5+40(FP), R12
	MOVQ x+48(FP), DI
	MOVQ stride+56(FP), R8
	SHLQ $2, R8
	MOVQ n+64(FP), CX
	MOVQ out+72(FP), AX
	LEAQ (DI)(R8*2), R9
	ADDQ R8, R9
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	SHRQ $4, CX
	JZ w64done
w64loop:
	VMOVUPS (SI), Z24
	VMOVUPS (DX), Z25
	VMOVUPS (BX), Z26
	VMOVUPS (R10), Z27
	VMOVUPS (R11), Z28
	VMOVUPS (R12), Z29
	VMOVUPS (DI), Z30
	ROW6(Z30, Z0, Z4, Z8, Z12, Z16, Z20)
	VMOVUPS (DI)(R8*1), Z31
	ROW6(Z31, Z1, Z5, Z9, Z13, Z17, Z21)
	VMOVUPS (DI)(R8*2), Z30
	ROW6(Z30, Z2, Z6, Z10, Z14, Z18, Z22)
	VMOVUPS (R9), Z31
	ROW6(Z31, Z3, Z7, Z11, Z15, Z19, Z23)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, BX
	ADDQ $64, R10
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, DI
	ADDQ $64, R9
	DECQ CX
	JNZ w64loop
w64done:
	FOLD(Z0, Y0, Y24)
	FOLD(Z1, Y1, Y24)
	FOLD(Z2, Y2, Y24)
	FOLD(Z3, Y3, Y24)
	FOLD(Z4, Y4, Y24)
	FOLD(Z5, Y5, Y24)
	FOLD(Z6, Y6, Y24)
	FOLD(Z7, Y7, Y24)
	FOLD(Z8, Y8, Y24)
	FOLD(Z9, Y9, Y24)
	FOLD(Z10, Y10, Y24)
	FOLD(Z11, Y11, Y24)
	FOLD(Z12, Y12, Y24)
	FOLD(Z13, Y13, Y24)
	FOLD(Z14, Y14, Y24)
	FOLD(Z15, Y15, Y24)
	FOLD(Z16, Y16, Y24)
	FOLD(Z17, Y17, Y24)
	FOLD(Z18, Y18, Y24)
	FOLD(Z19, Y19, Y24)
	FOLD(Z20, Y20, Y24)
	FOLD(Z21, Y21, Y24)
	FOLD(Z22, Y22, Y24)
	FOLD(Z23, Y23, Y24)
	HADD4(Y0, Y1, Y2, Y3, X0, X1, 0)
	HADD4(Y4, Y5, Y6, Y7, X4, X5, 16)
	HADD4(Y8, Y9, Y10, Y11, X8, X9, 32)
	HADD4(Y12, Y13, Y14, Y15, X12, X13, 48)
	// VHADDPS has no EVEX form: rows 4 and 5 move down to Y0–Y7 first.
	VMOVAPS Y16, Y0
	VMOVAPS Y17, Y1
	VMOVAPS Y18, Y2
	VMOVAPS Y19, Y3
	VMOVAPS Y20, Y4
	VMOVAPS Y21, Y5
	VMOVAPS Y22, Y6
	VMOVAPS Y23, Y7
	HADD4(Y0, Y1, Y2, Y3, X0, X1, 64)
	HADD4(Y4, Y5, Y6, Y7, X4, X5, 80)
	VZEROUPPER
	RET
