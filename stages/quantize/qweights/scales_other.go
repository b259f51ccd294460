//go:build !(amd64 || arm64) || purego

package qweights

// scaleKernels is false: the scale kernels are amd64 and arm64 assembly; elsewhere q4KBlock and
// q6KBlock compute every block's scales.
const scaleKernels = false

func scalesQ4_K(raw *byte, scale, off *uint16, n int) int {
	panic("unreachable: scalesQ4_K is amd64 and arm64 only")
}

func scalesQ6_K(raw *byte, scale *uint16, n int) int {
	panic("unreachable: scalesQ6_K is amd64 and arm64 only")
}

func f16x8(x *[8]float32, h *[8]uint16) {
	panic("unreachable: f16x8 is amd64 and arm64 only")
}

func f16x4d(x *[4]float64, h *[4]uint16) {
	panic("unreachable: f16x4d is amd64 and arm64 only")
}
