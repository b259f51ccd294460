//go:build amd64 && !purego

#include "textflag.h"

// AVX2 and F16C forms of the scale and offset maths of q4KBlock and q6KBlock, one block
// per iteration. A sub-block's scale d·sc is a float32 product of an fp16 and an integer
// below 64, exact; VCVTPS2PH with immediate 0 rounds it to the nearest fp16, ties to even,
// subnormals and overflow to Inf included: f16Nearest's bits. Q4_K's offsets are
// bestOffset's float64 steps in the same order (each IEEE operation rounds alike in Go's
// scalar code and here), rounded to fp16 in two steps that cannot round twice: to 24
// significant bits by rounding to odd (truncate, then set the lowest kept bit when a
// dropped bit was set), which VCVTPD2PS then converts exactly, and to fp16 by VCVTPS2PH.
// Rounding to odd with at least two bits more than the target keeps every tie and every
// side of one (Boldo and Melquiond, "When double rounding is odd", 2005).

DATA eight<>+0(SB)/8, $0x4020000000000000 // 8.0
GLOBL eight<>(SB), RODATA|NOPTR, $8

DATA minushalf<>+0(SB)/8, $0xbfe0000000000000 // −0.5
GLOBL minushalf<>(SB), RODATA|NOPTR, $8

DATA dropped<>+0(SB)/8, $0x000000001fffffff // the float64 fraction bits float32 has not
GLOBL dropped<>(SB), RODATA|NOPTR, $8

DATA oddbit<>+0(SB)/8, $0x0000000020000000 // the lowest fraction bit float32 keeps
GLOBL oddbit<>(SB), RODATA|NOPTR, $8

DATA magnitude<>+0(SB)/8, $0x7fff7fff7fff7fff
DATA magnitude<>+8(SB)/8, $0x7fff7fff7fff7fff
GLOBL magnitude<>(SB), RODATA|NOPTR, $16

DATA infexp<>+0(SB)/8, $0x7c007c007c007c00
DATA infexp<>+8(SB)/8, $0x7c007c007c007c00
GLOBL infexp<>(SB), RODATA|NOPTR, $16

// INF sets the words of t whose fp16 in h is Inf or NaN (exponent all ones) to all ones.
#define INF(h, t) \
	VPAND    infexp<>(SB), h, t \
	VPCMPEQW infexp<>(SB), t, t

// OFFSETS4 computes bestOffset for four sub-blocks, s, m and S (as float32) in the low
// lanes of xs, xm and xS, rounded to odd at float32's precision, into out (float32 × 4).
// Y0 = 0, Y10 = 8, Y11 = −0.5, Y12 = dropped, Y13 = oddbit; Y6…Y9 are scratch. In order:
// 8s, m − 8s, S − s, (S − s)·(lo + hi)/2 with lo + hi = −1, the sum, the quotient by S,
// then the rounding to odd (a lane with no dropped bit set stays as it is).
#define OFFSETS4(xs, xm, xS, out) \
	VCVTPS2PD  xs, Y6 \
	VCVTPS2PD  xm, Y7 \
	VCVTPS2PD  xS, Y8 \
	VMULPD     Y10, Y6, Y9 \
	VSUBPD     Y9, Y7, Y7  \
	VSUBPD     Y6, Y8, Y6  \
	VMULPD     Y11, Y6, Y6 \
	VADDPD     Y6, Y7, Y7  \
	VDIVPD     Y8, Y7, Y7  \
	TOODD(Y7, out)

// TOODD rounds the four float64 of y to odd at float32's precision and converts them
// (exactly) to the float32 of out; registers as for OFFSETS4.
#define TOODD(y, out) \
	VPAND      Y12, y, Y9 \
	VPCMPEQQ   Y0, Y9, Y9 \
	VPANDN     Y13, Y9, Y9 \
	VPANDN     y, Y12, y  \
	VPOR       Y9, y, y   \
	VCVTPD2PSY y, out

// func scalesQ4_K(raw *byte, scale, off *uint16, n int) (done int)
TEXT ·scalesQ4_K(SB), NOSPLIT, $0-40
	MOVQ         raw+0(FP), SI
	MOVQ         scale+8(FP), DI
	MOVQ         off+16(FP), DX
	MOVQ         n+24(FP), CX
	VBROADCASTSD eight<>(SB), Y10
	VBROADCASTSD minushalf<>(SB), Y11
	VPBROADCASTQ dropped<>(SB), Y12
	VPBROADCASTQ oddbit<>(SB), Y13
	XORQ         AX, AX

q4kscale:
	MOVWLZX (SI), BX  // d
	MOVWLZX 2(SI), R8 // dmin
	MOVL    BX, R9
	ANDL    $0x7c00, R9
	CMPL    R9, $0x7c00
	JEQ     q4kdone
	MOVL    R8, R9
	ANDL    $0x7c00, R9
	CMPL    R9, $0x7c00
	JEQ     q4kdone
	VMOVD        BX, X0
	VPBROADCASTW X0, X0
	VCVTPH2PS    X0, Y0 // d × 8
	VMOVD        R8, X1
	VPBROADCASTW X1, X1
	VCVTPH2PS    X1, Y1 // dmin × 8

	// kScaleMin for all eight: q0, q1, q2 are the 12 packed bytes. Scales 0…3 are q0's
	// bytes & 63, 4…7 q2's low nibbles with q0's top two bits above; mins alike from q1
	// and q2's high nibbles.
	MOVL 4(SI), R9
	MOVL 8(SI), R10
	MOVL 12(SI), R11
	MOVL R9, R12
	ANDL $0x3f3f3f3f, R12
	MOVL R9, R13
	SHRL $2, R13
	ANDL $0x30303030, R13
	MOVL R11, BX
	ANDL $0x0f0f0f0f, BX
	ORL  R13, BX
	SHLQ $32, BX
	ORQ  R12, BX // sc, a byte each
	MOVL R10, R12
	ANDL $0x3f3f3f3f, R12
	MOVL R10, R13
	SHRL $2, R13
	ANDL $0x30303030, R13
	MOVL R11, R8
	SHRL $4, R8
	ANDL $0x0f0f0f0f, R8
	ORL  R13, R8
	SHLQ $32, R8
	ORQ  R12, R8 // mn, a byte each

	VMOVQ     BX, X2
	VPMOVZXBD X2, Y2
	VCVTDQ2PS Y2, Y2
	VMULPS    Y0, Y2, Y2     // s
	VMOVQ     R8, X3
	VPMOVZXBD X3, Y3
	VCVTDQ2PS Y3, Y3
	VMULPS    Y1, Y3, Y3     // m
	VCVTPS2PH $0, Y2, X4     // S

	// A scale of ±0 takes q4KBlock's rare branches, one of Inf its refusal.
	VPXOR     Y0, Y0, Y0
	VPAND     magnitude<>(SB), X4, X1
	VPCMPEQW  X0, X1, X1
	INF(X4, X5)
	VPOR      X5, X1, X1
	VPMOVMSKB X1, R9
	TESTL     R9, R9
	JNZ       q4kdone

	VCVTPH2PS    X4, Y5 // S as float32
	VEXTRACTF128 $1, Y2, X1
	VEXTRACTF128 $1, Y3, X14
	VEXTRACTF128 $1, Y5, X15
	OFFSETS4(X2, X3, X5, X2)
	OFFSETS4(X1, X14, X15, X3)
	VINSERTF128  $1, X3, Y2, Y2
	VCVTPS2PH    $0, Y2, X3 // O

	INF(X3, X5)
	VPMOVMSKB X5, R9
	TESTL     R9, R9
	JNZ       q4kdone

	VMOVDQU X4, (DI)
	VMOVDQU X3, (DX)
	ADDQ    $144, SI
	ADDQ    $16, DI
	ADDQ    $16, DX
	INCQ    AX
	CMPQ    AX, CX
	JLT     q4kscale

q4kdone:
	VZEROUPPER
	MOVQ AX, done+32(FP)
	RET

// func scalesQ6_K(raw *byte, scale *uint16, n int) (done int)
TEXT ·scalesQ6_K(SB), NOSPLIT, $0-32
	MOVQ raw+0(FP), SI
	MOVQ scale+8(FP), DI
	MOVQ n+16(FP), CX
	XORQ AX, AX

q6kscale:
	MOVWLZX 208(SI), BX // d
	MOVL    BX, R9
	ANDL    $0x7c00, R9
	CMPL    R9, $0x7c00
	JEQ     q6kdone
	VMOVD        BX, X0
	VPBROADCASTW X0, X0
	VCVTPH2PS    X0, Y0
	VPMOVSXBD    192(SI), Y1 // sc 0…7, int8
	VCVTDQ2PS    Y1, Y1
	VMULPS       Y0, Y1, Y1
	VCVTPS2PH    $0, Y1, X1
	VPMOVSXBD    200(SI), Y2 // sc 8…15
	VCVTDQ2PS    Y2, Y2
	VMULPS       Y0, Y2, Y2
	VCVTPS2PH    $0, Y2, X2

	INF(X1, X3)
	INF(X2, X4)
	VPOR      X4, X3, X3
	VPMOVMSKB X3, R9
	TESTL     R9, R9
	JNZ       q6kdone

	VMOVDQU X1, (DI)
	VMOVDQU X2, 16(DI)
	ADDQ    $210, SI
	ADDQ    $32, DI
	INCQ    AX
	CMPQ    AX, CX
	JLT     q6kscale

q6kdone:
	VZEROUPPER
	MOVQ AX, done+24(FP)
	RET

// func f16x8(x *[8]float32, h *[8]uint16)
TEXT ·f16x8(SB), NOSPLIT, $0-16
	MOVQ      x+0(FP), SI
	MOVQ      h+8(FP), DI
	VMOVUPS   (SI), Y1
	VCVTPS2PH $0, Y1, X1
	VMOVDQU   X1, (DI)
	VZEROUPPER
	RET

// func f16x4d(x *[4]float64, h *[4]uint16)
TEXT ·f16x4d(SB), NOSPLIT, $0-16
	MOVQ         x+0(FP), SI
	MOVQ         h+8(FP), DI
	VPXOR        Y0, Y0, Y0
	VPBROADCASTQ dropped<>(SB), Y12
	VPBROADCASTQ oddbit<>(SB), Y13
	VMOVUPD      (SI), Y1
	TOODD(Y1, X1)
	VCVTPS2PH    $0, X1, X1
	VMOVQ        X1, (DI)
	VZEROUPPER
	RET
