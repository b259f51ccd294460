//go:build arm64 && !purego

#include "textflag.h"

// NEON forms of the scale and offset maths of q4KBlock and q6KBlock, the arm64
// counterparts of scales_amd64.s (whose comment gives the why): FCVTN rounds float32 to
// fp16 by FPCR's mode, nearest-even as Go leaves it, subnormals and overflow to Inf
// included; FCVTXN narrows float64 to float32 rounding to odd. Go's assembler has neither
// these nor NEON's floating-point arithmetic, so they are WORDs, each with its instruction.
// Go's compiler fuses x·y + z on arm64, but in bestOffset every product (8s, (S − s)·(−½))
// is exact, so the fused and the separate forms round alike.

// func scalesQ4_K(raw *byte, scale, off *uint16, n int) (done int)
TEXT ·scalesQ4_K(SB), NOSPLIT, $0-40
	MOVD raw+0(FP), R0
	MOVD scale+8(FP), R1
	MOVD off+16(FP), R2
	MOVD n+24(FP), R3
	MOVD $0, R4
	MOVD $0x7fff, R5
	VDUP R5, V16.H8 // fp16 magnitude
	MOVD $0x7c00, R5
	VDUP R5, V17.H8 // fp16 exponent
	MOVD $0x4020000000000000, R5
	VDUP R5, V19.D2 // 8.0
	MOVD $0xbfe0000000000000, R5
	VDUP R5, V20.D2 // −0.5

q4kscale:
	MOVHU (R0), R5 // d
	AND   $0x7c00, R5, R7
	CMP   $0x7c00, R7
	BEQ   q4kdone
	MOVHU 2(R0), R6 // dmin
	AND   $0x7c00, R6, R7
	CMP   $0x7c00, R7
	BEQ   q4kdone
	VDUP  R5, V0.H4
	VDUP  R6, V1.H4
	WORD $0x0e217800 // fcvtl v0.4s, v0.4h
	WORD $0x0e217821 // fcvtl v1.4s, v1.4h

	// kScaleMin for all eight, as scales_amd64.s: R7 the scales, R8 the mins, a byte each.
	MOVWU 4(R0), R9
	MOVWU 8(R0), R10
	MOVWU 12(R0), R11
	ANDW  $0x3f3f3f3f, R9, R12
	LSRW  $2, R9, R13
	ANDW  $0x30303030, R13, R13
	ANDW  $0x0f0f0f0f, R11, R7
	ORRW  R13, R7, R7
	ORR   R7<<32, R12, R7
	ANDW  $0x3f3f3f3f, R10, R12
	LSRW  $2, R10, R13
	ANDW  $0x30303030, R13, R13
	LSRW  $4, R11, R8
	ANDW  $0x0f0f0f0f, R8, R8
	ORRW  R13, R8, R8
	ORR   R8<<32, R12, R8
	FMOVD R7, F2
	FMOVD R8, F3
	WORD $0x2f08a442 // uxtl v2.8h, v2.8b
	WORD $0x6f10a444 // uxtl2 v4.4s, v2.8h
	WORD $0x2f10a442 // uxtl v2.4s, v2.4h
	WORD $0x6e21d842 // ucvtf v2.4s, v2.4s
	WORD $0x6e21d884 // ucvtf v4.4s, v4.4s
	WORD $0x6e20dc42 // fmul v2.4s, v2.4s, v0.4s
	WORD $0x6e20dc84 // fmul v4.4s, v4.4s, v0.4s
	WORD $0x2f08a463 // uxtl v3.8h, v3.8b
	WORD $0x6f10a465 // uxtl2 v5.4s, v3.8h
	WORD $0x2f10a463 // uxtl v3.4s, v3.4h
	WORD $0x6e21d863 // ucvtf v3.4s, v3.4s
	WORD $0x6e21d8a5 // ucvtf v5.4s, v5.4s
	WORD $0x6e21dc63 // fmul v3.4s, v3.4s, v1.4s
	WORD $0x6e21dca5 // fmul v5.4s, v5.4s, v1.4s
	// s in V2 (sub-blocks 0…3) and V4 (4…7), m in V3 and V5; S in V6.
	WORD $0x0e216846 // fcvtn v6.4h, v2.4s
	WORD $0x4e216886 // fcvtn2 v6.8h, v4.4s

	// A scale of ±0 takes q4KBlock's rare branches, one of Inf its refusal.
	WORD $0x4e301cc7 // and v7.16b, v6.16b, v16.16b
	WORD $0x4e6098e7 // cmeq v7.8h, v7.8h, #0
	WORD $0x4e311cd2 // and v18.16b, v6.16b, v17.16b
	WORD $0x6e718e52 // cmeq v18.8h, v18.8h, v17.8h
	WORD $0x4eb21ce7 // orr v7.16b, v7.16b, v18.16b
	VMOV  V7.D[0], R12
	VMOV  V7.D[1], R13
	ORR   R12, R13, R12
	CBNZ  R12, q4kdone

	// bestOffset two sub-blocks at a time, as OFFSETS4 of scales_amd64.s, S as float32
	// in V7 and V18; the four pairs' quotients rounded to odd into V25 and V26.
	WORD $0x0e2178c7 // fcvtl v7.4s, v6.4h
	WORD $0x4e2178d2 // fcvtl2 v18.4s, v6.8h
	WORD $0x0e617855 // fcvtl v21.2d, v2.2s
	WORD $0x0e617876 // fcvtl v22.2d, v3.2s
	WORD $0x0e6178f7 // fcvtl v23.2d, v7.2s
	WORD $0x6e73deb8 // fmul v24.2d, v21.2d, v19.2d
	WORD $0x4ef8d6d6 // fsub v22.2d, v22.2d, v24.2d
	WORD $0x4ef5d6f5 // fsub v21.2d, v23.2d, v21.2d
	WORD $0x6e74deb5 // fmul v21.2d, v21.2d, v20.2d
	WORD $0x4e75d6d6 // fadd v22.2d, v22.2d, v21.2d
	WORD $0x6e77fed6 // fdiv v22.2d, v22.2d, v23.2d
	WORD $0x2e616ad9 // fcvtxn v25.2s, v22.2d
	WORD $0x4e617855 // fcvtl2 v21.2d, v2.4s
	WORD $0x4e617876 // fcvtl2 v22.2d, v3.4s
	WORD $0x4e6178f7 // fcvtl2 v23.2d, v7.4s
	WORD $0x6e73deb8 // fmul v24.2d, v21.2d, v19.2d
	WORD $0x4ef8d6d6 // fsub v22.2d, v22.2d, v24.2d
	WORD $0x4ef5d6f5 // fsub v21.2d, v23.2d, v21.2d
	WORD $0x6e74deb5 // fmul v21.2d, v21.2d, v20.2d
	WORD $0x4e75d6d6 // fadd v22.2d, v22.2d, v21.2d
	WORD $0x6e77fed6 // fdiv v22.2d, v22.2d, v23.2d
	WORD $0x6e616ad9 // fcvtxn2 v25.4s, v22.2d
	WORD $0x0e617895 // fcvtl v21.2d, v4.2s
	WORD $0x0e6178b6 // fcvtl v22.2d, v5.2s
	WORD $0x0e617a57 // fcvtl v23.2d, v18.2s
	WORD $0x6e73deb8 // fmul v24.2d, v21.2d, v19.2d
	WORD $0x4ef8d6d6 // fsub v22.2d, v22.2d, v24.2d
	WORD $0x4ef5d6f5 // fsub v21.2d, v23.2d, v21.2d
	WORD $0x6e74deb5 // fmul v21.2d, v21.2d, v20.2d
	WORD $0x4e75d6d6 // fadd v22.2d, v22.2d, v21.2d
	WORD $0x6e77fed6 // fdiv v22.2d, v22.2d, v23.2d
	WORD $0x2e616ada // fcvtxn v26.2s, v22.2d
	WORD $0x4e617895 // fcvtl2 v21.2d, v4.4s
	WORD $0x4e6178b6 // fcvtl2 v22.2d, v5.4s
	WORD $0x4e617a57 // fcvtl2 v23.2d, v18.4s
	WORD $0x6e73deb8 // fmul v24.2d, v21.2d, v19.2d
	WORD $0x4ef8d6d6 // fsub v22.2d, v22.2d, v24.2d
	WORD $0x4ef5d6f5 // fsub v21.2d, v23.2d, v21.2d
	WORD $0x6e74deb5 // fmul v21.2d, v21.2d, v20.2d
	WORD $0x4e75d6d6 // fadd v22.2d, v22.2d, v21.2d
	WORD $0x6e77fed6 // fdiv v22.2d, v22.2d, v23.2d
	WORD $0x6e616ada // fcvtxn2 v26.4s, v22.2d
	WORD $0x0e216b3b // fcvtn v27.4h, v25.4s
	WORD $0x4e216b5b // fcvtn2 v27.8h, v26.4s

	WORD $0x4e311f7c // and v28.16b, v27.16b, v17.16b
	WORD $0x6e718f9c // cmeq v28.8h, v28.8h, v17.8h
	VMOV  V28.D[0], R12
	VMOV  V28.D[1], R13
	ORR   R12, R13, R12
	CBNZ  R12, q4kdone

	VST1.P [V6.H8], 16(R1)
	VST1.P [V27.H8], 16(R2)
	ADD    $144, R0
	ADD    $1, R4
	CMP    R3, R4
	BLT    q4kscale

q4kdone:
	MOVD R4, done+32(FP)
	RET

// func scalesQ6_K(raw *byte, scale *uint16, n int) (done int)
TEXT ·scalesQ6_K(SB), NOSPLIT, $0-32
	MOVD raw+0(FP), R0
	MOVD scale+8(FP), R1
	MOVD n+16(FP), R3
	MOVD $0, R4
	MOVD $0x7c00, R5
	VDUP R5, V17.H8

q6kscale:
	MOVHU 208(R0), R5 // d
	AND   $0x7c00, R5, R7
	CMP   $0x7c00, R7
	BEQ   q6kdone
	VDUP  R5, V0.H4
	WORD $0x0e217800 // fcvtl v0.4s, v0.4h
	ADD   $192, R0, R6
	VLD1  (R6), [V1.B16] // sc, int8
	WORD $0x0f08a422 // sxtl v2.8h, v1.8b
	WORD $0x4f08a423 // sxtl2 v3.8h, v1.16b
	WORD $0x0f10a444 // sxtl v4.4s, v2.4h
	WORD $0x4f10a445 // sxtl2 v5.4s, v2.8h
	WORD $0x0f10a466 // sxtl v6.4s, v3.4h
	WORD $0x4f10a467 // sxtl2 v7.4s, v3.8h
	WORD $0x4e21d884 // scvtf v4.4s, v4.4s
	WORD $0x4e21d8a5 // scvtf v5.4s, v5.4s
	WORD $0x4e21d8c6 // scvtf v6.4s, v6.4s
	WORD $0x4e21d8e7 // scvtf v7.4s, v7.4s
	WORD $0x6e20dc84 // fmul v4.4s, v4.4s, v0.4s
	WORD $0x6e20dca5 // fmul v5.4s, v5.4s, v0.4s
	WORD $0x6e20dcc6 // fmul v6.4s, v6.4s, v0.4s
	WORD $0x6e20dce7 // fmul v7.4s, v7.4s, v0.4s
	WORD $0x0e216882 // fcvtn v2.4h, v4.4s
	WORD $0x4e2168a2 // fcvtn2 v2.8h, v5.4s
	WORD $0x0e2168c3 // fcvtn v3.4h, v6.4s
	WORD $0x4e2168e3 // fcvtn2 v3.8h, v7.4s

	WORD $0x4e311c44 // and v4.16b, v2.16b, v17.16b
	WORD $0x6e718c84 // cmeq v4.8h, v4.8h, v17.8h
	WORD $0x4e311c65 // and v5.16b, v3.16b, v17.16b
	WORD $0x6e718ca5 // cmeq v5.8h, v5.8h, v17.8h
	WORD $0x4ea51c84 // orr v4.16b, v4.16b, v5.16b
	VMOV  V4.D[0], R12
	VMOV  V4.D[1], R13
	ORR   R12, R13, R12
	CBNZ  R12, q6kdone

	VST1.P [V2.H8, V3.H8], 32(R1)
	ADD    $210, R0
	ADD    $1, R4
	CMP    R3, R4
	BLT    q6kscale

q6kdone:
	MOVD R4, done+24(FP)
	RET

// func f16x8(x *[8]float32, h *[8]uint16)
TEXT ·f16x8(SB), NOSPLIT, $0-16
	MOVD x+0(FP), R0
	MOVD h+8(FP), R1
	VLD1 (R0), [V0.S4, V1.S4]
	WORD $0x0e216802 // fcvtn v2.4h, v0.4s
	WORD $0x4e216822 // fcvtn2 v2.8h, v1.4s
	VST1 [V2.H8], (R1)
	RET

// func f16x4d(x *[4]float64, h *[4]uint16)
TEXT ·f16x4d(SB), NOSPLIT, $0-16
	MOVD x+0(FP), R0
	MOVD h+8(FP), R1
	VLD1 (R0), [V0.D2, V1.D2]
	WORD $0x2e616802 // fcvtxn v2.2s, v0.2d
	WORD $0x6e616822 // fcvtxn2 v2.4s, v1.2d
	WORD $0x0e216843 // fcvtn v3.4h, v2.4s
	VST1 [V3.H4], (R1)
	RET
