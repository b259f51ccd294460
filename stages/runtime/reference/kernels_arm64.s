//go:build arm64 && !purego

#include "textflag.h"

// NEON inner loops of the reference runtime, the arm64 counterparts of kernels_amd64.s. The
// Go wrappers in kernels_arm64.go hand over whole vector multiples only and finish tails in
// Go; kernels_generic.go holds the portable reference these are tested against.
//
// The float dots keep an 8-lane accumulator in two registers (lanes 0–3, 4–7; lane l sums
// the products k ≡ l mod 8 in order, fused as FMLA) and reduce it as
// ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)), like the AVX2 kernels, so that dot, dot2x4, dot3x4
// and dotLUT4 give each output the same bits: prefill and decode logits must not differ.
//
// Go's assembler has no mnemonic for the vector forms of FADD, FMUL, FADDP, SCVTF, FCVTL,
// SSHR and SXTL; the macros below emit them with WORD, each with the instruction it encodes
// (Arm ARM, "Advanced SIMD" encodings; Q = 1 selects the 128-bit form). Arguments are
// register numbers: Vd is written, Vn and Vm are read.

// FADD Vd.4S, Vn.4S, Vm.4S
#define VFADD4S(m, n, d) WORD $(0x4E20D400 | ((m)<<16) | ((n)<<5) | (d))
// FMUL Vd.4S, Vn.4S, Vm.4S
#define VFMUL4S(m, n, d) WORD $(0x6E20DC00 | ((m)<<16) | ((n)<<5) | (d))
// FADDP Vd.4S, Vn.4S, Vm.4S: Vd = [n0+n1, n2+n3, m0+m1, m2+m3]
#define VFADDP4S(m, n, d) WORD $(0x6E20D400 | ((m)<<16) | ((n)<<5) | (d))
// FADDP Sd, Vn.2S: Sd = n0+n1
#define FADDP2S(n, d) WORD $(0x7E30D800 | ((n)<<5) | (d))
// SCVTF Vd.4S, Vn.4S (int32 → float32, exact for the small integers used here)
#define VSCVTF4S(n, d) WORD $(0x4E21D800 | ((n)<<5) | (d))
// FCVTL Vd.4S, Vn.4H (fp16 → fp32 of lanes 0–3, exact)
#define VFCVTL(n, d) WORD $(0x0E217800 | ((n)<<5) | (d))
// FCVTL2 Vd.4S, Vn.8H (fp16 → fp32 of lanes 4–7, exact)
#define VFCVTL2(n, d) WORD $(0x4E217800 | ((n)<<5) | (d))
// SSHR Vd.16B, Vn.16B, #4 (immh:immb = 16 − 4)
#define VSSHR4B16(n, d) WORD $(0x4F0C0400 | ((n)<<5) | (d))
// SXTL Vd.8H, Vn.8B (SSHLL #0)
#define VSXTL8H(n, d) WORD $(0x0F08A400 | ((n)<<5) | (d))
// SXTL2 Vd.8H, Vn.16B
#define VSXTL28H(n, d) WORD $(0x4F08A400 | ((n)<<5) | (d))
// SXTL Vd.4S, Vn.4H
#define VSXTL4S(n, d) WORD $(0x0F10A400 | ((n)<<5) | (d))
// SXTL2 Vd.4S, Vn.8H
#define VSXTL24S(n, d) WORD $(0x4F10A400 | ((n)<<5) | (d))

// REDUCE8 leaves in Fd the 8-lane sum held in Vd (lanes 0–3) and Vh (lanes 4–7):
// ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)).
#define REDUCE8(h, d) \
	VFADDP4S(h, d, d) \
	VFADDP4S(d, d, d) \
	FADDP2S(d, d)

// REDUCE4X8 reduces four 8-lane sums held in Vb..Vb+7 (output j in Vb+2j, Vb+2j+1) to
// Vb = [s0, s1, s2, s3], each sum in REDUCE8's order.
#define REDUCE4X8(b, b1, b2, b3, b4, b5, b6, b7) \
	VFADDP4S(b1, b, b) \
	VFADDP4S(b3, b2, b2) \
	VFADDP4S(b5, b4, b4) \
	VFADDP4S(b7, b6, b6) \
	VFADDP4S(b2, b, b) \
	VFADDP4S(b6, b4, b4) \
	VFADDP4S(b4, b, b)

// func dotVec(a, b *float32, n int) float32
// Σ a[i]·b[i] for n a multiple of 8.
TEXT ·dotVec(SB), NOSPLIT, $0-28
	MOVD a+0(FP), R0
	MOVD b+8(FP), R1
	MOVD n+16(FP), R2
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	LSR $3, R2, R2
	CBZ R2, dotdone
dotloop:
	VLD1.P 32(R0), [V2.S4, V3.S4]
	VLD1.P 32(R1), [V4.S4, V5.S4]
	VFMLA V2.S4, V4.S4, V0.S4
	VFMLA V3.S4, V5.S4, V1.S4
	SUBS $1, R2, R2
	BNE dotloop
dotdone:
	REDUCE8(1, 0)
	FMOVS F0, ret+24(FP)
	RET

// func dotHalfVec(w *uint16, x *float32, n int) float32
// Σ fp16(w[i])·x[i] for n a multiple of 8, widening with FCVTL (exact).
TEXT ·dotHalfVec(SB), NOSPLIT, $0-28
	MOVD w+0(FP), R0
	MOVD x+8(FP), R1
	MOVD n+16(FP), R2
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	LSR $3, R2, R2
	CBZ R2, halfdone
halfloop:
	VLD1.P 16(R0), [V2.H8]
	VFCVTL(2, 3)
	VFCVTL2(2, 4)
	VLD1.P 32(R1), [V5.S4, V6.S4]
	VFMLA V3.S4, V5.S4, V0.S4
	VFMLA V4.S4, V6.S4, V1.S4
	SUBS $1, R2, R2
	BNE halfloop
halfdone:
	REDUCE8(1, 0)
	FMOVS F0, ret+24(FP)
	RET

// func halfToFloatVec(dst *float32, src *uint16, n int)
// dst[i] = fp16(src[i]) for n a multiple of 8.
TEXT ·halfToFloatVec(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	LSR $3, R2, R2
	CBZ R2, h2fdone
h2floop:
	VLD1.P 16(R1), [V0.H8]
	VFCVTL(0, 1)
	VFCVTL2(0, 2)
	VST1.P [V1.S4, V2.S4], 32(R0)
	SUBS $1, R2, R2
	BNE h2floop
h2fdone:
	RET

// func dot2x4Vec(w0, w1, x *float32, stride, n int, out *[8]float32)
// out[4·r+i] = Σ_k w_r[k]·x[i·stride+k] for rows r = 0, 1 and tokens i = 0..3 (stride in
// elements), n a multiple of 8. Output j accumulates in V2j, V2j+1.
TEXT ·dot2x4Vec(SB), NOSPLIT, $0-48
	MOVD w0+0(FP), R0
	MOVD w1+8(FP), R1
	MOVD x+16(FP), R6
	MOVD stride+24(FP), R3
	LSL $2, R3, R3
	MOVD n+32(FP), R4
	MOVD out+40(FP), R5
	ADD R3, R6, R7
	ADD R3, R7, R8
	ADD R3, R8, R9
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	LSR $3, R4, R4
	CBZ R4, d24done
d24loop:
	VLD1.P 32(R0), [V16.S4, V17.S4]
	VLD1.P 32(R1), [V18.S4, V19.S4]
	VLD1.P 32(R6), [V20.S4, V21.S4]
	VFMLA V16.S4, V20.S4, V0.S4
	VFMLA V17.S4, V21.S4, V1.S4
	VFMLA V18.S4, V20.S4, V8.S4
	VFMLA V19.S4, V21.S4, V9.S4
	VLD1.P 32(R7), [V22.S4, V23.S4]
	VFMLA V16.S4, V22.S4, V2.S4
	VFMLA V17.S4, V23.S4, V3.S4
	VFMLA V18.S4, V22.S4, V10.S4
	VFMLA V19.S4, V23.S4, V11.S4
	VLD1.P 32(R8), [V20.S4, V21.S4]
	VFMLA V16.S4, V20.S4, V4.S4
	VFMLA V17.S4, V21.S4, V5.S4
	VFMLA V18.S4, V20.S4, V12.S4
	VFMLA V19.S4, V21.S4, V13.S4
	VLD1.P 32(R9), [V22.S4, V23.S4]
	VFMLA V16.S4, V22.S4, V6.S4
	VFMLA V17.S4, V23.S4, V7.S4
	VFMLA V18.S4, V22.S4, V14.S4
	VFMLA V19.S4, V23.S4, V15.S4
	SUBS $1, R4, R4
	BNE d24loop
d24done:
	REDUCE4X8(0, 1, 2, 3, 4, 5, 6, 7)
	REDUCE4X8(8, 9, 10, 11, 12, 13, 14, 15)
	VST1 [V0.S4], (R5)
	ADD $16, R5, R5
	VST1 [V8.S4], (R5)
	RET

// func dot3x4Vec(w0, w1, w2, x *float32, stride, n int, out *[12]float32)
// dot2x4Vec with a third row: twelve 8-lane accumulators fill V0–V23, the three weight
// vectors V24–V29 and the token's x V30–V31, all 32 registers.
TEXT ·dot3x4Vec(SB), NOSPLIT, $0-56
	MOVD w0+0(FP), R0
	MOVD w1+8(FP), R1
	MOVD w2+16(FP), R2
	MOVD x+24(FP), R7
	MOVD stride+32(FP), R3
	LSL $2, R3, R3
	MOVD n+40(FP), R4
	MOVD out+48(FP), R5
	ADD R3, R7, R8
	ADD R3, R8, R9
	ADD R3, R9, R10
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	VEOR V5.B16, V5.B16, V5.B16
	VEOR V6.B16, V6.B16, V6.B16
	VEOR V7.B16, V7.B16, V7.B16
	VEOR V8.B16, V8.B16, V8.B16
	VEOR V9.B16, V9.B16, V9.B16
	VEOR V10.B16, V10.B16, V10.B16
	VEOR V11.B16, V11.B16, V11.B16
	VEOR V12.B16, V12.B16, V12.B16
	VEOR V13.B16, V13.B16, V13.B16
	VEOR V14.B16, V14.B16, V14.B16
	VEOR V15.B16, V15.B16, V15.B16
	VEOR V16.B16, V16.B16, V16.B16
	VEOR V17.B16, V17.B16, V17.B16
	VEOR V18.B16, V18.B16, V18.B16
	VEOR V19.B16, V19.B16, V19.B16
	VEOR V20.B16, V20.B16, V20.B16
	VEOR V21.B16, V21.B16, V21.B16
	VEOR V22.B16, V22.B16, V22.B16
	VEOR V23.B16, V23.B16, V23.B16
	LSR $3, R4, R4
	CBZ R4, d34done
d34loop:
	VLD1.P 32(R0), [V24.S4, V25.S4]
	VLD1.P 32(R1), [V26.S4, V27.S4]
	VLD1.P 32(R2), [V28.S4, V29.S4]
	VLD1.P 32(R7), [V30.S4, V31.S4]
	VFMLA V24.S4, V30.S4, V0.S4
	VFMLA V25.S4, V31.S4, V1.S4
	VFMLA V26.S4, V30.S4, V8.S4
	VFMLA V27.S4, V31.S4, V9.S4
	VFMLA V28.S4, V30.S4, V16.S4
	VFMLA V29.S4, V31.S4, V17.S4
	VLD1.P 32(R8), [V30.S4, V31.S4]
	VFMLA V24.S4, V30.S4, V2.S4
	VFMLA V25.S4, V31.S4, V3.S4
	VFMLA V26.S4, V30.S4, V10.S4
	VFMLA V27.S4, V31.S4, V11.S4
	VFMLA V28.S4, V30.S4, V18.S4
	VFMLA V29.S4, V31.S4, V19.S4
	VLD1.P 32(R9), [V30.S4, V31.S4]
	VFMLA V24.S4, V30.S4, V4.S4
	VFMLA V25.S4, V31.S4, V5.S4
	VFMLA V26.S4, V30.S4, V12.S4
	VFMLA V27.S4, V31.S4, V13.S4
	VFMLA V28.S4, V30.S4, V20.S4
	VFMLA V29.S4, V31.S4, V21.S4
	VLD1.P 32(R10), [V30.S4, V31.S4]
	VFMLA V24.S4, V30.S4, V6.S4
	VFMLA V25.S4, V31.S4, V7.S4
	VFMLA V26.S4, V30.S4, V14.S4
	VFMLA V27.S4, V31.S4, V15.S4
	VFMLA V28.S4, V30.S4, V22.S4
	VFMLA V29.S4, V31.S4, V23.S4
	SUBS $1, R4, R4
	BNE d34loop
d34done:
	REDUCE4X8(0, 1, 2, 3, 4, 5, 6, 7)
	REDUCE4X8(8, 9, 10, 11, 12, 13, 14, 15)
	REDUCE4X8(16, 17, 18, 19, 20, 21, 22, 23)
	VST1.P [V0.S4], 16(R5)
	VST1.P [V8.S4], 16(R5)
	VST1 [V16.S4], (R5)
	RET

// NIBBLES splits the 16 code bytes in V16 into low nibbles (V17) and high nibbles (V18),
// as uint4 (V5 = 0x0F in every byte) or int4 (two's complement, sign-extended by shifting
// the nibble to the top of the byte and arithmetically back).
#define NIBBLESU \
	VAND V5.B16, V16.B16, V17.B16 \
	VUSHR $4, V16.B16, V18.B16

#define NIBBLESS \
	VSHL $4, V16.B16, V17.B16 \
	VSSHR4B16(17, 17) \
	VSSHR4B16(16, 18)

// INT4CHUNK multiplies one 32-element chunk of codes (V17 low, V18 high nibbles) with the
// deinterleaved x at (R2) into the accumulators V0–V3: the 8 evens of a 16-element run are
// the low nibbles of 8 bytes, the 8 odds their high nibbles (deinterleave16).
#define INT4CHUNK \
	VLD1.P 64(R2), [V24.S4, V25.S4, V26.S4, V27.S4] \
	VLD1.P 64(R2), [V28.S4, V29.S4, V30.S4, V31.S4] \
	VSXTL8H(17, 8) \
	VSXTL28H(17, 9) \
	VSXTL8H(18, 10) \
	VSXTL28H(18, 11) \
	VSXTL4S(8, 12) \
	VSXTL24S(8, 13) \
	VSXTL4S(10, 14) \
	VSXTL24S(10, 15) \
	VSCVTF4S(12, 12) \
	VSCVTF4S(13, 13) \
	VSCVTF4S(14, 14) \
	VSCVTF4S(15, 15) \
	VFMLA V24.S4, V12.S4, V0.S4 \
	VFMLA V25.S4, V13.S4, V1.S4 \
	VFMLA V26.S4, V14.S4, V2.S4 \
	VFMLA V27.S4, V15.S4, V3.S4 \
	VSXTL4S(9, 12) \
	VSXTL24S(9, 13) \
	VSXTL4S(11, 14) \
	VSXTL24S(11, 15) \
	VSCVTF4S(12, 12) \
	VSCVTF4S(13, 13) \
	VSCVTF4S(14, 14) \
	VSCVTF4S(15, 15) \
	VFMLA V28.S4, V12.S4, V0.S4 \
	VFMLA V29.S4, V13.S4, V1.S4 \
	VFMLA V30.S4, V14.S4, V2.S4 \
	VFMLA V31.S4, V15.S4, V3.S4

// INT4SCALE adds the block's sum (V0–V3) times fp16 scale (R1), advancing R1, to V4 and
// clears V0–V3 for the next block.
#define INT4SCALE \
	VFADD4S(1, 0, 0) \
	VFADD4S(3, 2, 2) \
	VFADD4S(2, 0, 0) \
	VLD1R.P 2(R1), [V6.H4] \
	VFCVTL(6, 7) \
	VFMLA V7.S4, V0.S4, V4.S4 \
	VEOR V0.B16, V0.B16, V0.B16 \
	VEOR V1.B16, V1.B16, V1.B16 \
	VEOR V2.B16, V2.B16, V2.B16 \
	VEOR V3.B16, V3.B16, V3.B16

// func dotInt4NEON(q *byte, scale *uint16, xd *float32, nblk, sub int, signed bool) float32
// Σ_b fp16(scale[b])·Σ_k n_k·xd_k over nblk blocks of sub 32-element chunks, n_k the k-th
// 4-bit code read as int4 when signed, else as uint4, xd x deinterleaved per 16 elements.
// The codes are sign- or zero-extended in place, so no correction term is needed (the
// amd64 kernel's corr[b] only undoes its flip to unsigned).
TEXT ·dotInt4NEON(SB), NOSPLIT, $0-52
	MOVD q+0(FP), R0
	MOVD scale+8(FP), R1
	MOVD xd+16(FP), R2
	MOVD nblk+24(FP), R3
	MOVD sub+32(FP), R4
	MOVBU signed+40(FP), R5
	VMOVI $15, V5.B16
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V4.B16, V4.B16, V4.B16
	CBZ R3, q4done
	CBNZ R5, s4block
q4block:
	MOVD R4, R6
q4sub:
	VLD1.P 16(R0), [V16.B16]
	NIBBLESU
	INT4CHUNK
	SUBS $1, R6, R6
	BNE q4sub
	INT4SCALE
	SUBS $1, R3, R3
	BNE q4block
	B q4done
s4block:
	MOVD R4, R6
s4sub:
	VLD1.P 16(R0), [V16.B16]
	NIBBLESS
	INT4CHUNK
	SUBS $1, R6, R6
	BNE s4sub
	INT4SCALE
	SUBS $1, R3, R3
	BNE s4block
q4done:
	VFADDP4S(4, 4, 4)
	FADDP2S(4, 4)
	FMOVS F4, ret+48(FP)
	RET

// INT4ROW writes one 32-element chunk (V17 low, V18 high nibbles) times the scale in V7 to
// (R0): zipping low and high nibbles puts the codes in element order (element 2k is the low
// nibble of byte k); each element is the one product s·n, as in the portable loop.
#define INT4ROW \
	VZIP1 V18.B16, V17.B16, V8.B16 \
	VZIP2 V18.B16, V17.B16, V9.B16 \
	VSXTL8H(8, 10) \
	VSXTL28H(8, 11) \
	VSXTL8H(9, 12) \
	VSXTL28H(9, 13) \
	VSXTL4S(10, 24) \
	VSXTL24S(10, 25) \
	VSXTL4S(11, 26) \
	VSXTL24S(11, 27) \
	VSXTL4S(12, 28) \
	VSXTL24S(12, 29) \
	VSXTL4S(13, 30) \
	VSXTL24S(13, 31) \
	VSCVTF4S(24, 24) \
	VSCVTF4S(25, 25) \
	VSCVTF4S(26, 26) \
	VSCVTF4S(27, 27) \
	VSCVTF4S(28, 28) \
	VSCVTF4S(29, 29) \
	VSCVTF4S(30, 30) \
	VSCVTF4S(31, 31) \
	VFMUL4S(7, 24, 24) \
	VFMUL4S(7, 25, 25) \
	VFMUL4S(7, 26, 26) \
	VFMUL4S(7, 27, 27) \
	VFMUL4S(7, 28, 28) \
	VFMUL4S(7, 29, 29) \
	VFMUL4S(7, 30, 30) \
	VFMUL4S(7, 31, 31) \
	VST1.P [V24.S4, V25.S4, V26.S4, V27.S4], 64(R0) \
	VST1.P [V28.S4, V29.S4, V30.S4, V31.S4], 64(R0)

// func rowInt4NEON(dst *float32, q *byte, scale *uint16, nblk, sub int, signed bool)
// dst[k] = fp16(scale[b])·n_k over nblk blocks of sub 32-element chunks.
TEXT ·rowInt4NEON(SB), NOSPLIT, $0-41
	MOVD dst+0(FP), R0
	MOVD q+8(FP), R2
	MOVD scale+16(FP), R1
	MOVD nblk+24(FP), R3
	MOVD sub+32(FP), R4
	MOVBU signed+40(FP), R5
	VMOVI $15, V5.B16
	CBZ R3, r4done
r4block:
	VLD1R.P 2(R1), [V6.H4]
	VFCVTL(6, 7)
	MOVD R4, R6
r4sub:
	VLD1.P 16(R2), [V16.B16]
	CBNZ R5, r4signed
	NIBBLESU
	B r4row
r4signed:
	NIBBLESS
r4row:
	INT4ROW
	SUBS $1, R6, R6
	BNE r4sub
	SUBS $1, R3, R3
	BNE r4block
r4done:
	RET

// func axpyVec(dst *float32, a float32, x *float32, n int)
// dst[i] += a·x[i] for n a multiple of 8, the product rounded before the sum (FMUL then
// FADD, not FMLA), exactly as the Go loop computes it.
TEXT ·axpyVec(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	FMOVS a+8(FP), F0
	MOVD x+16(FP), R1
	MOVD n+24(FP), R2
	VDUP V0.S[0], V0.S4
	LSR $3, R2, R2
	CBZ R2, axdone
axloop:
	VLD1.P 32(R1), [V2.S4, V3.S4]
	VLD1 (R0), [V4.S4, V5.S4]
	VFMUL4S(0, 2, 2)
	VFMUL4S(0, 3, 3)
	VFADD4S(2, 4, 4)
	VFADD4S(3, 5, 5)
	VST1.P [V4.S4, V5.S4], 32(R0)
	SUBS $1, R2, R2
	BNE axloop
axdone:
	RET

// The LUT4 kernels gather fp32 palette values with TBL, which looks up bytes in a 16-byte
// table: VLD4 splits the 16-entry palette into four byte planes (V16 holds byte 0 of every
// entry, … V19 byte 3), one TBL per plane fetches that byte for 16 indices, and two rounds
// of ZIP put the four bytes of each value back together.

// LUT4NIB turns the packed indices in the low 8 bytes of V21 into up to 16 index bytes in
// element order in V21 (element 2k = low nibble of byte k); V20 = 0x0F in every byte.
#define LUT4NIB \
	VAND V20.B16, V21.B16, V22.B16 \
	VUSHR $4, V21.B16, V23.B16 \
	VZIP1 V23.B16, V22.B16, V21.B16

// LUT4GATHER16 leaves the palette values of the 16 indices in V21 in V2–V5 (elements 0–3,
// 4–7, 8–11, 12–15).
#define LUT4GATHER16 \
	VTBL V21.B16, [V16.B16], V22.B16 \
	VTBL V21.B16, [V17.B16], V23.B16 \
	VTBL V21.B16, [V18.B16], V24.B16 \
	VTBL V21.B16, [V19.B16], V25.B16 \
	VZIP1 V23.B16, V22.B16, V26.B16 \
	VZIP2 V23.B16, V22.B16, V27.B16 \
	VZIP1 V25.B16, V24.B16, V28.B16 \
	VZIP2 V25.B16, V24.B16, V29.B16 \
	VZIP1 V28.H8, V26.H8, V2.H8 \
	VZIP2 V28.H8, V26.H8, V3.H8 \
	VZIP1 V29.H8, V27.H8, V4.H8 \
	VZIP2 V29.H8, V27.H8, V5.H8

// LUT4GATHER8 is LUT4GATHER16 for the first 8 indices only (into V2, V3).
#define LUT4GATHER8 \
	VTBL V21.B16, [V16.B16], V22.B16 \
	VTBL V21.B16, [V17.B16], V23.B16 \
	VTBL V21.B16, [V18.B16], V24.B16 \
	VTBL V21.B16, [V19.B16], V25.B16 \
	VZIP1 V23.B16, V22.B16, V26.B16 \
	VZIP1 V25.B16, V24.B16, V28.B16 \
	VZIP1 V28.H8, V26.H8, V2.H8 \
	VZIP2 V28.H8, V26.H8, V3.H8

// func dotLUT4Vec(idx *byte, pal *[16]float32, x *float32, n int) float32
// Σ_k pal[n_k]·x[k] for n a multiple of 8 (n/2 index bytes), accumulated and reduced as
// dotVec: the same bits as dotVec over the expanded row.
TEXT ·dotLUT4Vec(SB), NOSPLIT, $0-36
	MOVD idx+0(FP), R0
	MOVD pal+8(FP), R1
	MOVD x+16(FP), R2
	MOVD n+24(FP), R3
	VLD4 (R1), [V16.B16, V17.B16, V18.B16, V19.B16]
	VMOVI $15, V20.B16
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	LSR $4, R3, R4
	AND $8, R3, R5
	CBZ R4, l4d8
l4d16:
	VLD1.P 8(R0), V21.D[0]
	LUT4NIB
	LUT4GATHER16
	VLD1.P 64(R2), [V6.S4, V7.S4, V8.S4, V9.S4]
	VFMLA V2.S4, V6.S4, V0.S4
	VFMLA V3.S4, V7.S4, V1.S4
	VFMLA V4.S4, V8.S4, V0.S4
	VFMLA V5.S4, V9.S4, V1.S4
	SUBS $1, R4, R4
	BNE l4d16
l4d8:
	CBZ R5, l4ddone
	VLD1 (R0), V21.S[0]
	LUT4NIB
	LUT4GATHER8
	VLD1 (R2), [V6.S4, V7.S4]
	VFMLA V2.S4, V6.S4, V0.S4
	VFMLA V3.S4, V7.S4, V1.S4
l4ddone:
	REDUCE8(1, 0)
	FMOVS F0, ret+32(FP)
	RET

// func rowLUT4Vec(dst *float32, idx *byte, pal *[16]float32, n int)
// dst[k] = pal[n_k] for n a multiple of 8.
TEXT ·rowLUT4Vec(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R2
	MOVD idx+8(FP), R0
	MOVD pal+16(FP), R1
	MOVD n+24(FP), R3
	VLD4 (R1), [V16.B16, V17.B16, V18.B16, V19.B16]
	VMOVI $15, V20.B16
	LSR $4, R3, R4
	AND $8, R3, R5
	CBZ R4, l4r8
l4r16:
	VLD1.P 8(R0), V21.D[0]
	LUT4NIB
	LUT4GATHER16
	VST1.P [V2.S4, V3.S4, V4.S4, V5.S4], 64(R2)
	SUBS $1, R4, R4
	BNE l4r16
l4r8:
	CBZ R5, l4rdone
	VLD1 (R0), V21.S[0]
	LUT4NIB
	LUT4GATHER8
	VST1 [V2.S4, V3.S4], (R2)
l4rdone:
	RET
