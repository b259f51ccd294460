//go:build amd64 && !purego

#include "textflag.h"

// func fitLevels4(xs, ws *float32, n int, iscale, lo, hi float32, acc *[8]float32)
//
// Per element, as fitLevelsGo: l = min(max((x·iscale + M) − M, lo), hi) with M = 1.5·2²³
// (round to nearest even), then Σ (w·l)·x and Σ (w·l)·l, one lane per element mod 4.
TEXT ·fitLevels4(SB), NOSPLIT, $0-48
	MOVQ  xs+0(FP), SI
	MOVQ  ws+8(FP), DI
	MOVQ  n+16(FP), CX
	MOVSS iscale+24(FP), X0
	SHUFPS $0, X0, X0
	MOVSS lo+28(FP), X1
	SHUFPS $0, X1, X1
	MOVSS hi+32(FP), X2
	SHUFPS $0, X2, X2
	MOVQ  acc+40(FP), DX
	MOVL  $0x4b400000, AX // 1.5·2²³ as float32 bits
	MOVQ  AX, X3
	SHUFPS $0, X3, X3
	XORPS X4, X4 // Σ w·l·x
	XORPS X5, X5 // Σ w·l·l

loop:
	CMPQ   CX, $4
	JLT    done
	MOVUPS (SI), X6 // x
	MOVAPS X6, X7
	MULPS  X0, X7   // x·iscale
	ADDPS  X3, X7
	SUBPS  X3, X7   // rounded to an integer
	MAXPS  X1, X7
	MINPS  X2, X7   // l
	MOVUPS (DI), X8 // w
	MULPS  X7, X8   // w·l
	MULPS  X8, X6   // w·l·x
	ADDPS  X6, X4
	MULPS  X7, X8   // w·l·l
	ADDPS  X8, X5
	ADDQ   $16, SI
	ADDQ   $16, DI
	SUBQ   $4, CX
	JMP    loop

done:
	MOVUPS X4, (DX)
	MOVUPS X5, 16(DX)
	RET

// func minMax4(xs *float32, n int, acc *[8]float32)
//
// The four lanes of min(0, x…) into acc[0:4] and of max(0, x…) into acc[4:8], over the
// first n elements (n a multiple of 4); inputs are finite.
TEXT ·minMax4(SB), NOSPLIT, $0-24
	MOVQ  xs+0(FP), SI
	MOVQ  n+8(FP), CX
	MOVQ  acc+16(FP), DX
	XORPS X0, X0 // min
	XORPS X1, X1 // max

mmloop:
	CMPQ   CX, $4
	JLT    mmdone
	MOVUPS (SI), X2
	MINPS  X2, X0
	MAXPS  X2, X1
	ADDQ   $16, SI
	SUBQ   $4, CX
	JMP    mmloop

mmdone:
	MOVUPS X0, (DX)
	MOVUPS X1, 16(DX)
	RET

// func assign4(xs *float32, qs *int32, n int, id, z, lo, hi float32)
//
// As assign's float loop over the first n elements (n a multiple of 4):
// q = int32(clamp(round(clamp(x·id, lo−z−1, hi−z+1)) + z, lo, hi)).
TEXT ·assign4(SB), NOSPLIT, $0-40
	MOVQ   xs+0(FP), SI
	MOVQ   qs+8(FP), DI
	MOVQ   n+16(FP), CX
	MOVSS  id+24(FP), X0
	SHUFPS $0, X0, X0
	MOVSS  z+28(FP), X1
	SHUFPS $0, X1, X1
	MOVSS  lo+32(FP), X2
	SHUFPS $0, X2, X2
	MOVSS  hi+36(FP), X3
	SHUFPS $0, X3, X3
	MOVL   $0x4b400000, AX // 1.5·2²³
	MOVQ   AX, X4
	SHUFPS $0, X4, X4
	MOVL   $0x3f800000, AX // 1
	MOVQ   AX, X5
	SHUFPS $0, X5, X5
	MOVAPS X2, X6
	SUBPS  X1, X6
	SUBPS  X5, X6          // lo − z − 1
	MOVAPS X3, X7
	SUBPS  X1, X7
	ADDPS  X5, X7          // hi − z + 1

asloop:
	CMPQ     CX, $4
	JLT      asdone
	MOVUPS   (SI), X8
	MULPS    X0, X8
	MAXPS    X6, X8
	MINPS    X7, X8
	ADDPS    X4, X8
	SUBPS    X4, X8
	ADDPS    X1, X8
	MAXPS    X2, X8
	MINPS    X3, X8
	CVTTPS2PL X8, X8
	MOVUPS   X8, (DI)
	ADDQ     $16, SI
	ADDQ     $16, DI
	SUBQ     $4, CX
	JMP      asloop

asdone:
	RET
