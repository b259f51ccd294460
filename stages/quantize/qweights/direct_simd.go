//go:build (amd64 || arm64) && !purego

package qweights

import "github.com/lilims/lilims/internal/simd"

// haveNibbleKernels reports that the vector repacks exist: SSE2 on amd64
// (direct_amd64.s), NEON on arm64 (direct_arm64.s), each part of every CPU of its
// architecture. nibbleKernels selects them unless LILIMS_KERNELS says otherwise; tests
// flip it to compare both paths.
const haveNibbleKernels = true

var nibbleKernels = simd.Allowed() >= simd.Base

// repackQ4_0 is q4_0Go over n (≥ 1) Q4_0 blocks at raw: it writes their data (16 bytes a
// block) to dst and their d to scale, and returns the number of blocks done, less than n
// when block done has a non-finite d (its outputs are then unwritten).
//
//go:noescape
func repackQ4_0(raw, dst *byte, scale *uint16, n int) (done int)

// repackQ4_K writes the data of n (≥ 1) Q4_K blocks at raw to dst (128 bytes a block) as
// q4KDirect's Go loop does for a block whose every sub-block has a non-zero scale: each
// quant q as the int4 q − 8.
//
//go:noescape
func repackQ4_K(raw, dst *byte, n int)

// repackQ6_K writes the data of n (≥ 1) Q6_K blocks at raw to dst (192 bytes a block) as
// q6KDirect's Go loop does.
//
//go:noescape
func repackQ6_K(raw, dst *byte, n int)
