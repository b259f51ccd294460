//go:build (amd64 || arm64) && !purego

package qweights

// scalesQ4_K writes the eight fp16 scales and offsets of each of n (≥ 1) Q4_K blocks at raw
// as q4KBlock does, and returns the number of blocks done: it stops before a block that
// q4KBlock refuses or that takes one of its rare branches (a scale that rounds to zero),
// whose outputs it may have written.
//
//go:noescape
func scalesQ4_K(raw *byte, scale, off *uint16, n int) (done int)

// scalesQ6_K writes the sixteen fp16 scales of each of n (≥ 1) Q6_K blocks at raw as
// q6KBlock does, and returns the number of blocks done: it stops before a block that
// q6KBlock refuses (a non-finite d, a scale beyond fp16).
//
//go:noescape
func scalesQ6_K(raw *byte, scale *uint16, n int) (done int)

// f16x8 is the kernels' rounding of float32 to fp16 (VCVTPS2PH), for the tests.
//
//go:noescape
func f16x8(x *[8]float32, h *[8]uint16)

// f16x4d is scalesQ4_K's rounding of float64 to fp16 (to odd at float32's precision,
// then VCVTPS2PH), for the tests.
//
//go:noescape
func f16x4d(x *[4]float64, h *[4]uint16)
