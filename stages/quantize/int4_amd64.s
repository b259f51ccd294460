//go:build amd64 && !purego

#include "textflag.h"

// Offsets into int4Args (int4_amd64.go).
#define A_SRC 0
#define A_STRIDE 8
#define A_NB 16
#define A_W 24
#define A_CAND 32
#define A_NCAND 40
#define A_SCRATCH 48
#define A_DATA 56
#define A_DSTRIDE 64
#define A_SCALE 72
#define A_ERR 80
#define A_SIG 88
#define A_BAD 96
#define A_BLOCK 104
#define A_UNIFORM 112

// Slots of the scratch area after xT and qT (8 floats each).
#define M_VMAX 0
#define M_BESTD 32
#define M_ZERO 64

DATA absmask<>+0(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+8(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+16(SB)/8, $0x7fffffff7fffffff
DATA absmask<>+24(SB)/8, $0x7fffffff7fffffff
GLOBL absmask<>(SB), RODATA|NOPTR, $32

DATA signmask<>+0(SB)/8, $0x8000000080000000
DATA signmask<>+8(SB)/8, $0x8000000080000000
DATA signmask<>+16(SB)/8, $0x8000000080000000
DATA signmask<>+24(SB)/8, $0x8000000080000000
GLOBL signmask<>(SB), RODATA|NOPTR, $32

DATA nibmask<>+0(SB)/8, $0x0000000f0000000f
DATA nibmask<>+8(SB)/8, $0x0000000f0000000f
DATA nibmask<>+16(SB)/8, $0x0000000f0000000f
DATA nibmask<>+24(SB)/8, $0x0000000f0000000f
GLOBL nibmask<>(SB), RODATA|NOPTR, $32

// Bytes 0 and 8 of each 128-bit lane to bytes 0 and 1; the rest zero.
DATA packctl<>+0(SB)/8, $0x8080808080800800
DATA packctl<>+8(SB)/8, $0x8080808080808080
DATA packctl<>+16(SB)/8, $0x8080808080800800
DATA packctl<>+24(SB)/8, $0x8080808080808080
GLOBL packctl<>(SB), RODATA|NOPTR, $32

DATA expmask<>+0(SB)/8, $0x7c007c007c007c00
DATA expmask<>+8(SB)/8, $0x7c007c007c007c00
GLOBL expmask<>(SB), RODATA|NOPTR, $16

DATA minus9<>+0(SB)/8, $0xc1100000c1100000
DATA minus9<>+8(SB)/8, $0xc1100000c1100000
DATA minus9<>+16(SB)/8, $0xc1100000c1100000
DATA minus9<>+24(SB)/8, $0xc1100000c1100000
GLOBL minus9<>(SB), RODATA|NOPTR, $32

DATA plus8<>+0(SB)/8, $0x4100000041000000
DATA plus8<>+8(SB)/8, $0x4100000041000000
DATA plus8<>+16(SB)/8, $0x4100000041000000
DATA plus8<>+24(SB)/8, $0x4100000041000000
GLOBL plus8<>(SB), RODATA|NOPTR, $32

DATA minus8<>+0(SB)/8, $0xc1000000c1000000
DATA minus8<>+8(SB)/8, $0xc1000000c1000000
DATA minus8<>+16(SB)/8, $0xc1000000c1000000
DATA minus8<>+24(SB)/8, $0xc1000000c1000000
GLOBL minus8<>(SB), RODATA|NOPTR, $32

DATA plus7<>+0(SB)/8, $0x40e0000040e00000
DATA plus7<>+8(SB)/8, $0x40e0000040e00000
DATA plus7<>+16(SB)/8, $0x40e0000040e00000
DATA plus7<>+24(SB)/8, $0x40e0000040e00000
GLOBL plus7<>(SB), RODATA|NOPTR, $32

DATA magic8<>+0(SB)/8, $0x4b4000004b400000
DATA magic8<>+8(SB)/8, $0x4b4000004b400000
DATA magic8<>+16(SB)/8, $0x4b4000004b400000
DATA magic8<>+24(SB)/8, $0x4b4000004b400000
GLOBL magic8<>(SB), RODATA|NOPTR, $32

DATA one8<>+0(SB)/8, $0x3f8000003f800000
DATA one8<>+8(SB)/8, $0x3f8000003f800000
DATA one8<>+16(SB)/8, $0x3f8000003f800000
DATA one8<>+24(SB)/8, $0x3f8000003f800000
GLOBL one8<>(SB), RODATA|NOPTR, $32

DATA minus1<>+0(SB)/8, $0xbf800000bf800000
DATA minus1<>+8(SB)/8, $0xbf800000bf800000
DATA minus1<>+16(SB)/8, $0xbf800000bf800000
DATA minus1<>+24(SB)/8, $0xbf800000bf800000
GLOBL minus1<>(SB), RODATA|NOPTR, $32

// TRANSPOSE8 transposes the 8×8 matrix of 32-bit elements whose rows are Y0…Y7 into
// columns Y8…Y15 (Y8 holds element 0 of every row); Y0…Y7 are clobbered.
#define TRANSPOSE8 \
	VUNPCKLPS  Y1, Y0, Y8;  \
	VUNPCKHPS  Y1, Y0, Y9;  \
	VUNPCKLPS  Y3, Y2, Y10; \
	VUNPCKHPS  Y3, Y2, Y11; \
	VUNPCKLPS  Y5, Y4, Y12; \
	VUNPCKHPS  Y5, Y4, Y13; \
	VUNPCKLPS  Y7, Y6, Y14; \
	VUNPCKHPS  Y7, Y6, Y15; \
	VSHUFPS    $0x44, Y10, Y8, Y0;  \
	VSHUFPS    $0xEE, Y10, Y8, Y1;  \
	VSHUFPS    $0x44, Y11, Y9, Y2;  \
	VSHUFPS    $0xEE, Y11, Y9, Y3;  \
	VSHUFPS    $0x44, Y14, Y12, Y4; \
	VSHUFPS    $0xEE, Y14, Y12, Y5; \
	VSHUFPS    $0x44, Y15, Y13, Y6; \
	VSHUFPS    $0xEE, Y15, Y13, Y7; \
	VPERM2F128 $0x20, Y4, Y0, Y8;  \
	VPERM2F128 $0x20, Y5, Y1, Y9;  \
	VPERM2F128 $0x20, Y6, Y2, Y10; \
	VPERM2F128 $0x20, Y7, Y3, Y11; \
	VPERM2F128 $0x31, Y4, Y0, Y12; \
	VPERM2F128 $0x31, Y5, Y1, Y13; \
	VPERM2F128 $0x31, Y6, Y2, Y14; \
	VPERM2F128 $0x31, Y7, Y3, Y15

// FIT adds element i+k of every lane's block (x at xoff(BX)(AX*8), w at woff(R13)(AX*1))
// to the lane sums A (Σ w·l·x) and S (Σ w·l·l), with Y14 = iscale, Y11 = 1.5·2²³,
// Y12 = lo, Y13 = hi: exactly fitLevelsGo's operations for one element.
#define FIT(xoff, woff, A, S) \
	VMOVUPS      xoff(BX)(AX*8), Y8;  \
	VMULPS       Y14, Y8, Y9;         \
	VADDPS       Y11, Y9, Y9;         \
	VSUBPS       Y11, Y9, Y9;         \
	VMAXPS       Y12, Y9, Y9;         \
	VMINPS       Y13, Y9, Y9;         \
	VBROADCASTSS woff(R13)(AX*1), Y10; \
	VMULPS       Y9, Y10, Y10;        \
	VMULPS       Y8, Y10, Y8;         \
	VADDPS       Y8, A, A;            \
	VMULPS       Y9, Y10, Y10;        \
	VADDPS       Y10, S, S

// FITU is FIT for w = 1: w·l is then l exactly, so the product is skipped.
#define FITU(xoff, A, S) \
	VMOVUPS xoff(BX)(AX*8), Y8; \
	VMULPS  Y14, Y8, Y9;        \
	VADDPS  Y11, Y9, Y9;        \
	VSUBPS  Y11, Y9, Y9;        \
	VMAXPS  Y12, Y9, Y9;        \
	VMINPS  Y13, Y9, Y9;        \
	VMULPS  Y9, Y8, Y8;         \
	VADDPS  Y8, A, A;           \
	VMULPS  Y9, Y9, Y10;        \
	VADDPS  Y10, S, S

// PACKROW packs the eight int4 levels (int32, −8…7) of R into four bytes at (AX),
// element 2m in the low nibble of byte m, then moves AX to the next row.
#define PACKROW(R) \
	VPAND      nibmask<>(SB), R, Y0; \
	VPSRLQ     $28, Y0, Y1;          \
	VPOR       Y1, Y0, Y0;           \
	VPSHUFB    packctl<>(SB), Y0, Y0; \
	VEXTRACTI128 $1, Y0, X1;         \
	VPUNPCKLWD X1, X0, X0;           \
	VMOVD      X0, (AX);             \
	ADDQ       dstride-8(SP), AX

// func int4Strip(a *int4Args)
//
// Quantizes column blocks of eight rows of fp16 weights to symmetric int4, one block per
// vector lane, so that every lane performs symmetricBlock's float32 operations on its block
// in symmetricBlock's order (fitLevels' four partial sums per lane, the sequential error
// sums of quantizeRow), which makes the results bit-identical to the portable code. Per
// column block: convert and transpose x into xT (lane = row), find the signed absolute
// maximum, try the candidate scales, assign the levels, transpose them back and pack.
TEXT ·int4Strip(SB), NOSPLIT, $16-8
	MOVQ a+0(FP), DI
	MOVQ A_SRC(DI), SI
	MOVQ A_STRIDE(DI), R8
	LEAQ (R8)(R8*2), R9
	MOVQ A_DATA(DI), R10
	MOVQ A_DSTRIDE(DI), AX
	MOVQ AX, dstride-8(SP)
	MOVQ A_NB(DI), CX
	MOVQ A_NCAND(DI), AX
	MOVQ AX, ncand-16(SP)
	MOVQ A_SCRATCH(DI), BX
	MOVQ A_BLOCK(DI), DX
	SHLQ $2, DX           // DX = 4·B: bytes of w per block; xT and qT take 8·DX each
	MOVQ A_W(DI), R13
	LEAQ (BX)(DX*8), R11
	LEAQ (R11)(DX*8), R11 // misc slots after xT and qT
	MOVQ $0, A_BAD(DI)

block:
	// 1. Load eight rows of eight fp16 values at a time, note non-finite ones (exponent all
	// ones, gguf-arch.md §2.3), widen and transpose into xT: xT[i] holds element i of
	// every row's block.
	MOVQ BX, R12

tile:
	LEAQ      (SI)(R8*4), AX
	VMOVDQU   (SI), X0
	VMOVDQU   (SI)(R8*1), X1
	VMOVDQU   (SI)(R8*2), X2
	VMOVDQU   (SI)(R9*1), X3
	VMOVDQU   (AX), X4
	VMOVDQU   (AX)(R8*1), X5
	VMOVDQU   (AX)(R8*2), X6
	VMOVDQU   (AX)(R9*1), X7
	VMOVDQU   expmask<>(SB), X9
	VPAND     X0, X9, X8
	VPCMPEQW  X9, X8, X8
	VPAND     X1, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X2, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X3, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X4, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X5, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X6, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPAND     X7, X9, X10
	VPCMPEQW  X9, X10, X10
	VPOR      X10, X8, X8
	VPMOVMSKB X8, AX
	ORQ       AX, A_BAD(DI)
	VCVTPH2PS X0, Y0
	VCVTPH2PS X1, Y1
	VCVTPH2PS X2, Y2
	VCVTPH2PS X3, Y3
	VCVTPH2PS X4, Y4
	VCVTPH2PS X5, Y5
	VCVTPH2PS X6, Y6
	VCVTPH2PS X7, Y7
	TRANSPOSE8
	VMOVUPS   Y8, (R12)
	VMOVUPS   Y9, 32(R12)
	VMOVUPS   Y10, 64(R12)
	VMOVUPS   Y11, 96(R12)
	VMOVUPS   Y12, 128(R12)
	VMOVUPS   Y13, 160(R12)
	VMOVUPS   Y14, 192(R12)
	VMOVUPS   Y15, 224(R12)
	ADDQ      $16, SI
	ADDQ      $256, R12
	LEAQ      (BX)(DX*8), AX
	CMPQ      R12, AX
	JB        tile

	// 2. signedAbsMax per lane: running min and max from 0 (as minMax4), then the
	// extreme of larger magnitude; on a tie of opposite signs the first element wins.
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ   BX, R12

minmax:
	VMOVUPS (R12), Y2
	VMINPS  Y2, Y0, Y0
	VMAXPS  Y2, Y1, Y1
	ADDQ    $32, R12
	CMPQ    R12, AX
	JB      minmax

	VXORPS    signmask<>(SB), Y0, Y2 // −mn
	VCMPPS    $0x0E, Y2, Y1, Y3      // mx > −mn
	VCMPPS    $0x0E, Y1, Y2, Y4      // −mn > mx
	VBLENDVPS Y4, Y0, Y1, Y5         // vmax: mn where −mn > mx, else mx
	VORPS     Y3, Y4, Y6
	VXORPS    Y7, Y7, Y7
	VCMPPS    $0x04, Y7, Y1, Y7      // mx ≠ 0
	VANDNPS   Y7, Y6, Y6             // tie of opposite signs, not zero
	VMOVMSKPS Y6, R12
	TESTQ     R12, R12
	JZ        scale0
	MOVQ      AX, R12

tie:
	// Backwards, so the first element of the largest magnitude is the last one kept.
	SUBQ      $32, R12
	VMOVUPS   (R12), Y2
	VANDPS    absmask<>(SB), Y2, Y3
	VCMPPS    $0x00, Y1, Y3, Y3
	VANDPS    Y6, Y3, Y3
	VBLENDVPS Y3, Y2, Y5, Y5
	CMPQ      R12, BX
	JA        tie

scale0:
	// 3. d = vmax/−8 rounded to fp16; a block whose d is 0 (all zeros, or a range that
	// underflows fp16) gets scale 0 and levels 0.
	VDIVPS    minus8<>(SB), Y5, Y0
	VCVTPS2PH $0, Y0, X0
	VCVTPH2PS X0, Y0
	VXORPS    Y1, Y1, Y1
	VCMPPS    $0x00, Y1, Y0, Y1
	VMOVUPS   Y1, M_ZERO(R11)
	VMOVUPS   Y0, M_BESTD(R11)
	VMOVUPS   minus1<>(SB), Y15      // best score
	VMOVUPS   magic8<>(SB), Y11
	VMOVUPS   minus8<>(SB), Y12
	VMOVUPS   plus7<>(SB), Y13
	MOVQ      A_CAND(DI), R12
	MOVQ      ncand-16(SP), AX
	TESTQ     AX, AX
	JZ        final
	VMOVUPS   Y5, M_VMAX(R11)      // keep vmax while the candidates run

cand:
	// 4. One candidate scale: iscale = −(nmax + k/search)/vmax, then fitLevels' sums
	// and make_qx_quants' choice, kept in Y15 (score) and M_BESTD (scale).
	VBROADCASTSS (R12), Y14
	VDIVPS       M_VMAX(R11), Y14, Y14
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7
	XORQ         AX, AX
	CMPQ         A_UNIFORM(DI), $0
	JNE          fitu

fit:
	FIT(0, 0, Y0, Y4)
	FIT(32, 4, Y1, Y5)
	FIT(64, 8, Y2, Y6)
	FIT(96, 12, Y3, Y7)
	ADDQ $16, AX
	CMPQ AX, DX
	JB   fit
	JMP  fitted

fitu:
	FITU(0, Y0, Y4)
	FITU(32, Y1, Y5)
	FITU(64, Y2, Y6)
	FITU(96, Y3, Y7)
	ADDQ $16, AX
	CMPQ AX, DX
	JB   fitu

fitted:
	VADDPS    Y1, Y0, Y0
	VADDPS    Y3, Y2, Y2
	VADDPS    Y2, Y0, Y0             // Σ w·l·x = (a0+a1) + (a2+a3)
	VADDPS    Y5, Y4, Y4
	VADDPS    Y7, Y6, Y6
	VADDPS    Y6, Y4, Y4             // Σ w·l²
	VXORPS    Y1, Y1, Y1
	VCMPPS    $0x0E, Y1, Y4, Y2      // suml2 > 0
	VMULPS    Y0, Y0, Y3             // sumlx²
	VMULPS    Y4, Y15, Y5            // best·suml2
	VCMPPS    $0x0E, Y5, Y3, Y5
	VANDPS    Y5, Y2, Y2
	VDIVPS    Y4, Y3, Y3
	VDIVPS    Y4, Y0, Y0
	VBLENDVPS Y2, Y3, Y15, Y15
	VMOVUPS   M_BESTD(R11), Y6
	VBLENDVPS Y2, Y0, Y6, Y6
	VMOVUPS   Y6, M_BESTD(R11)
	ADDQ      $4, R12
	DECQ      ncand-16(SP)
	JNZ       cand
	MOVQ      A_NCAND(DI), AX
	MOVQ      AX, ncand-16(SP)

final:
	// 5. Round the scale to fp16 (0 for zero blocks), assign levels as assign4 does
	// (z = 0, so its +z is dropped: it only turns −0 into +0 before truncation), and sum
	// the squared error and input in element order, as quantizeRow does.
	VMOVUPS   M_BESTD(R11), Y0
	VMOVUPS   M_ZERO(R11), Y1
	VANDNPS   Y0, Y1, Y0
	VCVTPS2PH $0, Y0, X2
	MOVQ      A_SCALE(DI), R12
	VMOVDQU   X2, (R12)
	ADDQ      $16, A_SCALE(DI)
	VCVTPH2PS X2, Y0                 // d
	VXORPS    Y3, Y3, Y3
	VCMPPS    $0x00, Y3, Y0, Y15     // d = 0: levels 0
	VMOVUPS   one8<>(SB), Y1
	VDIVPS    Y0, Y1, Y1             // id = 1/d
	VXORPS    Y4, Y4, Y4
	VXORPS    Y5, Y5, Y5
	LEAQ      (BX)(DX*8), R12
	XORQ      AX, AX

assign:
	VMOVUPS    (BX)(AX*8), Y6
	VMULPS     Y1, Y6, Y7
	VMAXPS     minus9<>(SB), Y7, Y7
	VMINPS     plus8<>(SB), Y7, Y7
	VADDPS     Y11, Y7, Y7
	VSUBPS     Y11, Y7, Y7
	VMAXPS     Y12, Y7, Y7
	VMINPS     Y13, Y7, Y7
	VCVTTPS2DQ Y7, Y7
	VPANDN     Y7, Y15, Y7
	VMOVDQU    Y7, (R12)(AX*8)
	VCVTDQ2PS  Y7, Y8
	VMULPS     Y0, Y8, Y8
	VSUBPS     Y8, Y6, Y8
	VMULPS     Y8, Y8, Y8
	VADDPS     Y8, Y4, Y4
	VMULPS     Y6, Y6, Y9
	VADDPS     Y9, Y5, Y5
	ADDQ       $4, AX
	CMPQ       AX, DX
	JB         assign

	MOVQ    A_ERR(DI), AX
	VMOVUPS Y4, (AX)
	ADDQ    $32, A_ERR(DI)
	MOVQ    A_SIG(DI), AX
	VMOVUPS Y5, (AX)
	ADDQ    $32, A_SIG(DI)

	// 6. Transpose the levels back eight elements at a time and pack each row's
	// nibbles (MIL sub-byte packing, coreml-mil.md §4.4).
	// R12 = qT.

pack:
	VMOVDQU (R12), Y0
	VMOVDQU 32(R12), Y1
	VMOVDQU 64(R12), Y2
	VMOVDQU 96(R12), Y3
	VMOVDQU 128(R12), Y4
	VMOVDQU 160(R12), Y5
	VMOVDQU 192(R12), Y6
	VMOVDQU 224(R12), Y7
	TRANSPOSE8
	MOVQ    R10, AX
	PACKROW(Y8)
	PACKROW(Y9)
	PACKROW(Y10)
	PACKROW(Y11)
	PACKROW(Y12)
	PACKROW(Y13)
	PACKROW(Y14)
	PACKROW(Y15)
	ADDQ    $4, R10
	ADDQ    $256, R12
	CMPQ    R12, R11
	JB      pack

	ADDQ DX, R13
	DECQ CX
	JNZ  block
	VZEROUPPER
	RET
