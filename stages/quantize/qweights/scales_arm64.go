//go:build arm64 && !purego

package qweights

// scaleKernels reports that the scale kernels of scales_arm64.s can run: they are NEON,
// part of every arm64 CPU. They run with the repacks (nibbleKernels), so
// LILIMS_KERNELS=portable and the tests' switch turn them off too.
const scaleKernels = true
