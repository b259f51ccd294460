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
