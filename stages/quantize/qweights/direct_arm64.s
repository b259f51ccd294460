//go:build arm64 && !purego

#include "textflag.h"

// NEON forms of the nibble repacks of direct.go, the arm64 counterparts of direct_amd64.s.
// VLD2 splits the quant bytes into the even ones E (qs[2k]) and the odd ones O (qs[2k+1]);
// output byte k of the low nibbles is then O<<4 | E&0x0F (VSLI $4, O into E) and of the
// high nibbles E>>4 | O&0xF0 (VSRI $4, E into O). XOR 0x88 turns both nibbles' q into the
// int4 q − 8.

// func repackQ4_0(raw, dst *byte, scale *uint16, n int) (done int)
TEXT ·repackQ4_0(SB), NOSPLIT, $0-40
	MOVD  raw+0(FP), R0
	MOVD  dst+8(FP), R1
	MOVD  scale+16(FP), R2
	MOVD  n+24(FP), R3
	MOVD  $0, R4
	VMOVI $0x88, V7.B16

q40loop:
	MOVHU (R0), R5 // d
	AND   $0x7c00, R5, R6
	CMP   $0x7c00, R6
	BEQ   q40done      // Inf or NaN
	MOVH  R5, (R2)(R4<<1)
	ADD   $2, R0, R6
	VLD2  (R6), [V0.B8, V1.B8] // E, O
	VEOR  V7.B8, V0.B8, V0.B8
	VEOR  V7.B8, V1.B8, V1.B8
	VMOV  V0.B8, V2.B8
	VSLI  $4, V1.B8, V0.B8     // elements 0…15
	VSRI  $4, V2.B8, V1.B8     // elements 16…31
	VST1.P [V0.B8, V1.B8], 16(R1)
	ADD   $18, R0
	ADD   $1, R4
	CMP   R3, R4
	BLT   q40loop

q40done:
	MOVD R4, done+32(FP)
	RET

// GROUP repacks the next 32 quant bytes of a Q4_K block at R0: 16 bytes of low-nibble
// pairs (sub-block 2c), then 16 of high-nibble pairs (2c+1), to R1.
#define GROUP \
	VLD2.P 32(R0), [V0.B16, V1.B16] \
	VEOR   V7.B16, V0.B16, V0.B16 \
	VEOR   V7.B16, V1.B16, V1.B16 \
	VMOV   V0.B16, V2.B16 \
	VSLI   $4, V1.B16, V0.B16 \
	VSRI   $4, V2.B16, V1.B16 \
	VST1.P [V0.B16, V1.B16], 32(R1)

// func repackQ4_K(raw, dst *byte, n int)
TEXT ·repackQ4_K(SB), NOSPLIT, $0-24
	MOVD  raw+0(FP), R0
	MOVD  dst+8(FP), R1
	MOVD  n+16(FP), R2
	VMOVI $0x88, V7.B16

q4kloop:
	ADD  $16, R0 // past d, dmin and the scales to qs
	GROUP
	GROUP
	GROUP
	GROUP
	SUBS $1, R2, R2
	BNE  q4kloop
	RET

// Q6_K: element 32j + l of a half block (l < 32) is ql[l + 32(j%2)]'s low (j < 2) or high
// nibble and bits 2j, 2j+1 of qh[l] above it; its six bits go to bit 6(32j + l) of the
// half's 96 output bytes. PACK16 packs 16 such bytes as pack6 does, pairs then quads then
// eights, each a shift and an insert (VSLI), leaving six bytes in each eight; two VTBLs
// gather the 24 bytes of 32 elements.

// Table indices into the pair V0, V1: bytes 0–5, 8–13 of V0 and 0–3 of V1, then 4–5,
// 8–13 of V1.
DATA gather<>+0(SB)/8, $0x0908050403020100
DATA gather<>+8(SB)/8, $0x131211100d0c0b0a
DATA gather<>+16(SB)/8, $0x1d1c1b1a19181514
DATA gather<>+24(SB)/8, $0xffffffffffffffff
GLOBL gather<>(SB), RODATA|NOPTR, $32

// PACK16 packs the 16 six-bit bytes of x into the low six bytes of each half; t is scratch.
#define PACK16(x, t) \
	VUSHR $8, x.H8, t.H8 \
	VSLI  $6, t.H8, x.H8 \
	VUSHR $16, x.S4, t.S4 \
	VSLI  $12, t.S4, x.S4 \
	VUSHR $32, x.D2, t.D2 \
	VSLI  $24, t.D2, x.D2

// LOWJ(x, ql, qh, s): x = ql's low nibbles | (qh << s) & 0x30.
#define LOWJ(x, ql, qh, s) \
	VAND V6.B16, ql.B16, x.B16 \
	VSHL $s, qh.B16, V2.B16 \
	VAND V7.B16, V2.B16, V2.B16 \
	VORR V2.B16, x.B16, x.B16

// MIDJ(x, ql, qh): x = ql's high nibbles | qh & 0x30.
#define MIDJ(x, ql, qh) \
	VUSHR $4, ql.B16, x.B16 \
	VAND  V7.B16, qh.B16, V2.B16 \
	VORR  V2.B16, x.B16, x.B16

// HIGHJ(x, ql, qh): x = ql's high nibbles | (qh >> 2) & 0x30.
#define HIGHJ(x, ql, qh) \
	VUSHR $4, ql.B16, x.B16 \
	VUSHR $2, qh.B16, V2.B16 \
	VAND  V7.B16, V2.B16, V2.B16 \
	VORR  V2.B16, x.B16, x.B16

// EMIT packs the 32 elements in V0, V1 and writes their 24 bytes to R1.
#define EMIT \
	PACK16(V0, V2) \
	PACK16(V1, V3) \
	VTBL   V20.B16, [V0.B16, V1.B16], V4.B16 \
	VTBL   V21.B16, [V0.B16, V1.B16], V5.B16 \
	VST1.P [V4.B16], 16(R1) \
	VST1.P [V5.B8], 8(R1)

// HALF repacks a half block: ql in q0…q3, qh in h0, h1.
#define HALF(q0, q1, q2, q3, h0, h1) \
	LOWJ(V0, q0, h0, 4) \
	LOWJ(V1, q1, h1, 4) \
	EMIT \
	LOWJ(V0, q2, h0, 2) \
	LOWJ(V1, q3, h1, 2) \
	EMIT \
	MIDJ(V0, q0, h0) \
	MIDJ(V1, q1, h1) \
	EMIT \
	HIGHJ(V0, q2, h0) \
	HIGHJ(V1, q3, h1) \
	EMIT

// func repackQ6_K(raw, dst *byte, n int)
TEXT ·repackQ6_K(SB), NOSPLIT, $0-24
	MOVD  raw+0(FP), R0
	MOVD  dst+8(FP), R1
	MOVD  n+16(FP), R2
	VMOVI $0x0f, V6.B16
	VMOVI $0x30, V7.B16
	MOVD  $gather<>(SB), R3
	VLD1  (R3), [V20.B16, V21.B16]

q6kloop:
	MOVD   R0, R4
	VLD1.P 64(R4), [V16.B16, V17.B16, V18.B16, V19.B16] // ql, first half
	VLD1.P 64(R4), [V24.B16, V25.B16, V26.B16, V27.B16] // ql, second half
	VLD1.P 32(R4), [V22.B16, V23.B16]                   // qh, first half
	VLD1   (R4), [V28.B16, V29.B16]                     // qh, second half
	HALF(V16, V17, V18, V19, V22, V23)
	HALF(V24, V25, V26, V27, V28, V29)
	ADD    $210, R0
	SUBS   $1, R2, R2
	BNE    q6kloop
	RET
