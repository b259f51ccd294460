//go:build amd64 && !purego

package quantize

import (
	"golang.org/x/sys/cpu"

	"github.com/lilims/lilims/internal/simd"
)

// haveInt4Strip reports that int4Strip can run: it needs AVX2 (which x/sys/cpu reports only
// when the OS saves the YMM registers) and F16C for the fp16 conversions. It is a variable
// so that tests can compare the kernel with the portable path on the same machine;
// LILIMS_KERNELS=portable turns it off.
var haveInt4Strip = cpu.X86.HasAVX2 && cpu.X86.HasF16C && simd.Allowed() >= simd.Base

// int4Strip quantizes a strip of eight rows (see int4Args) to symmetric int4, bit for bit
// as decoding them to float32 and calling quantizeRow with an int4 symmetric blockCodec
// would, then packs the levels as pack4 does.
//
//go:noescape
func int4Strip(a *int4Args)
