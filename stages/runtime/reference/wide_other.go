//go:build !amd64 || purego

package reference

// Without the 512-bit kernels the linear layers use the portable or 256-bit ones.

const useAVX512 = false

func wideKernels() bool { return false }

func dotInt4Wide(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	return dotInt4Generic32(q, scale, xd, corr, sub, flip)
}

func linearDot(a, b []float32) float32 { return dot(a, b) }

func linearDotHalf(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	return dotHalf(w, x, lut)
}

func linearDot3x4(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	dot3x4(w0, w1, w2, x, stride, out)
}

func linearDot6x4(w *[6][]float32, x []float32, stride int, out *[24]float32) {
	dot3x4(w[0], w[1], w[2], x, stride, (*[12]float32)(out[:12]))
	dot3x4(w[3], w[4], w[5], x, stride, (*[12]float32)(out[12:]))
}
