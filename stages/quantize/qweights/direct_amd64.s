//go:build amd64 && !purego

#include "textflag.h"

// SSE2 forms of the nibble repacks of direct.go. Viewed as words, a pair of input bytes
// w = qs[2k] | qs[2k+1]<<8 gives output byte k of the low nibbles as
// (w & 0x000F) | (w>>4 & 0x00F0), and of the high nibbles as (w>>4 & 0x000F) |
// (w>>8 & 0x00F0); PACKUSWB narrows the words (each below 256) to bytes, and XOR 0x88
// turns both nibbles' q into the int4 q − 8.

DATA low4<>+0(SB)/8, $0x000f000f000f000f
DATA low4<>+8(SB)/8, $0x000f000f000f000f
GLOBL low4<>(SB), RODATA|NOPTR, $16

DATA high4<>+0(SB)/8, $0x00f000f000f000f0
DATA high4<>+8(SB)/8, $0x00f000f000f000f0
GLOBL high4<>(SB), RODATA|NOPTR, $16

DATA eights<>+0(SB)/8, $0x8888888888888888
DATA eights<>+8(SB)/8, $0x8888888888888888
GLOBL eights<>(SB), RODATA|NOPTR, $16

// PAIRS leaves in X(lo) the words of the low-nibble pairs of X(lo) and in X(hi) those of
// its high-nibble pairs; X6 = low4, X7 = high4, X(t) is scratch.
#define PAIRS(lo, hi, t) \
	MOVO  lo, hi \
	PSRLW $4, hi \
	MOVO  hi, t \
	PAND  X7, t \
	PAND  X6, lo \
	POR   t, lo \
	MOVO  hi, t \
	PSRLW $4, t \
	PAND  X6, hi \
	PAND  X7, t \
	POR   t, hi

// func repackQ4_0(raw, dst *byte, scale *uint16, n int) (done int)
TEXT ·repackQ4_0(SB), NOSPLIT, $0-40
	MOVQ  raw+0(FP), SI
	MOVQ  dst+8(FP), DI
	MOVQ  scale+16(FP), DX
	MOVQ  n+24(FP), CX
	MOVOU low4<>(SB), X6
	MOVOU high4<>(SB), X7
	MOVOU eights<>(SB), X8
	XORQ  AX, AX

q40loop:
	MOVWLZX (SI), BX // d
	MOVL    BX, R8
	ANDL    $0x7c00, R8
	CMPL    R8, $0x7c00
	JEQ     q40done  // Inf or NaN
	MOVW    BX, (DX)(AX*2)
	MOVOU   2(SI), X0
	PAIRS(X0, X1, X2)
	PACKUSWB X1, X0  // elements 0…15, then 16…31
	PXOR    X8, X0
	MOVOU   X0, (DI)
	ADDQ    $18, SI
	ADDQ    $16, DI
	INCQ    AX
	CMPQ    AX, CX
	JLT     q40loop

q40done:
	MOVQ AX, done+32(FP)
	RET

// GROUP repacks the 32 quant bytes at in(SI) of a Q4_K block: 16 bytes of low-nibble
// pairs (sub-block 2c) to out(DI), 16 of high-nibble pairs (2c+1) to out+16(DI).
#define GROUP(in, out) \
	MOVOU in(SI), X0 \
	MOVOU in+16(SI), X2 \
	PAIRS(X0, X1, X4) \
	PAIRS(X2, X3, X5) \
	PACKUSWB X2, X0 \
	PACKUSWB X3, X1 \
	PXOR  X8, X0 \
	PXOR  X8, X1 \
	MOVOU X0, out(DI) \
	MOVOU X1, out+16(DI)

// func repackQ4_K(raw, dst *byte, n int)
TEXT ·repackQ4_K(SB), NOSPLIT, $0-24
	MOVQ  raw+0(FP), SI
	MOVQ  dst+8(FP), DI
	MOVQ  n+16(FP), CX
	MOVOU low4<>(SB), X6
	MOVOU high4<>(SB), X7
	MOVOU eights<>(SB), X8

q4kloop:
	GROUP(16, 0)
	GROUP(48, 32)
	GROUP(80, 64)
	GROUP(112, 96)
	ADDQ $144, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  q4kloop
	RET

// Q6_K: element 32j + l of a half block (l < 32) is ql[l + 32(j%2)]'s low (j < 2) or high
// nibble and bits 2j, 2j+1 of qh[l] above it; its six bits go to bit 6(32j + l) of the
// half's 96 output bytes. PACK16 packs 16 such bytes as pack6 does (pairs by shift and
// mask, quads by PMADDWL (PMADDWD) with 1 and 2¹², eights by shift and mask), then moves the second
// eight's six bytes beside the first's: 12 bytes, zero above.

DATA nib<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nib<>(SB), RODATA|NOPTR, $16

DATA qhbits<>+0(SB)/8, $0x3030303030303030
DATA qhbits<>+8(SB)/8, $0x3030303030303030
GLOBL qhbits<>(SB), RODATA|NOPTR, $16

DATA six<>+0(SB)/8, $0x003f003f003f003f
DATA six<>+8(SB)/8, $0x003f003f003f003f
GLOBL six<>(SB), RODATA|NOPTR, $16

DATA sixhi<>+0(SB)/8, $0x0fc00fc00fc00fc0
DATA sixhi<>+8(SB)/8, $0x0fc00fc00fc00fc0
GLOBL sixhi<>(SB), RODATA|NOPTR, $16

DATA quads<>+0(SB)/8, $0x1000000110000001
DATA quads<>+8(SB)/8, $0x1000000110000001
GLOBL quads<>(SB), RODATA|NOPTR, $16

DATA quadlo<>+0(SB)/8, $0x0000000000ffffff
DATA quadlo<>+8(SB)/8, $0x0000000000ffffff
GLOBL quadlo<>(SB), RODATA|NOPTR, $16

DATA quadhi<>+0(SB)/8, $0x0000ffffff000000
DATA quadhi<>+8(SB)/8, $0x0000ffffff000000
GLOBL quadhi<>(SB), RODATA|NOPTR, $16

DATA lowq<>+0(SB)/8, $0xffffffffffffffff
DATA lowq<>+8(SB)/8, $0x0000000000000000
GLOBL lowq<>(SB), RODATA|NOPTR, $16

// PACK16 packs the 16 six-bit bytes of x into its low 12 bytes; X6 is scratch.
#define PACK16(x) \
	MOVO   x, X6 \
	PSRLW  $2, X6 \
	PAND   X11, X6 \
	PAND   X10, x \
	POR    X6, x \
	PMADDWL X12, x \
	MOVO   x, X6 \
	PSRLQ  $8, X6 \
	PAND   X14, X6 \
	PAND   X13, x \
	POR    X6, x \
	MOVO   x, X6 \
	PSRLDQ $8, X6 \
	PSLLDQ $6, X6 \
	PAND   X15, x \
	POR    X6, x

// STORE24 writes the 12 bytes of X0 and then those of X1 to out(DI).
#define STORE24(out) \
	MOVO   X1, X6 \
	PSLLDQ $12, X6 \
	POR    X6, X0 \
	MOVOU  X0, out(DI) \
	PSRLDQ $4, X1 \
	MOVQ   X1, out+16(DI)

// LOW(x, ql, qh, shift): x = ql's low nibbles | (qh << shift) & 0x30, 16 elements.
#define LOW(x, ql, qh, shift) \
	MOVOU ql(SI), x \
	PAND  X8, x \
	MOVOU qh(SI), X7 \
	PSLLW $shift, X7 \
	PAND  X9, X7 \
	POR   X7, x

// HIGH(x, ql, qh, shift): x = ql's high nibbles | (qh >> shift) & 0x30, 16 elements.
#define HIGH(x, ql, qh, shift) \
	MOVOU ql(SI), x \
	PSRLW $4, x \
	PAND  X8, x \
	MOVOU qh(SI), X7 \
	PSRLW $shift, X7 \
	PAND  X9, X7 \
	POR   X7, x

// HALF repacks half block h: ql at 64h(SI), qh at 128+32h(SI), 96 bytes to 96h(DI).
#define HALF(ql, qh, out) \
	LOW(X0, ql, qh, 4) \
	LOW(X1, ql+16, qh+16, 4) \
	PACK16(X0) \
	PACK16(X1) \
	STORE24(out) \
	LOW(X0, ql+32, qh, 2) \
	LOW(X1, ql+48, qh+16, 2) \
	PACK16(X0) \
	PACK16(X1) \
	STORE24(out+24) \
	HIGH(X0, ql, qh, 0) \
	HIGH(X1, ql+16, qh+16, 0) \
	PACK16(X0) \
	PACK16(X1) \
	STORE24(out+48) \
	HIGH(X0, ql+32, qh, 2) \
	HIGH(X1, ql+48, qh+16, 2) \
	PACK16(X0) \
	PACK16(X1) \
	STORE24(out+72)

// func repackQ6_K(raw, dst *byte, n int)
TEXT ·repackQ6_K(SB), NOSPLIT, $0-24
	MOVQ  raw+0(FP), SI
	MOVQ  dst+8(FP), DI
	MOVQ  n+16(FP), CX
	MOVOU nib<>(SB), X8
	MOVOU qhbits<>(SB), X9
	MOVOU six<>(SB), X10
	MOVOU sixhi<>(SB), X11
	MOVOU quads<>(SB), X12
	MOVOU quadlo<>(SB), X13
	MOVOU quadhi<>(SB), X14
	MOVOU lowq<>(SB), X15

q6kloop:
	HALF(0, 128, 0)
	HALF(64, 160, 96)
	ADDQ $210, SI
	ADDQ $192, DI
	DECQ CX
	JNZ  q6kloop
	RET
