//go:build amd64 && !purego

package qweights

import "golang.org/x/sys/cpu"

// scaleKernels reports that the scale kernels of scales_amd64.s can run: they need AVX2
// (which x/sys/cpu reports only when the OS saves the YMM registers) and F16C for the fp16
// roundings. They run with the repacks (nibbleKernels), so LILIMS_KERNELS=portable and the
// tests' switch turn them off too.
var scaleKernels = cpu.X86.HasAVX2 && cpu.X86.HasF16C
