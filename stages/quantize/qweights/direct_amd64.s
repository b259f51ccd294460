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
