//go:build (!amd64 && !arm64) || purego

package reference

// Without assembly kernels every kernel is its portable form.

var useSIMD = false // no assembly here; tests flip it only where there is

func dot(a, b []float32) float32 { return dotGeneric(a, b[:len(a)]) }

func dotHalf(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	return dotHalfGeneric(w, x[:len(w)], lut)
}

func halfsToFloats(dst []float32, src []uint16) { halfsToFloatsGeneric(dst, src[:len(dst)]) }

func dot2x4(w0, w1, x []float32, stride int, out *[8]float32) {
	dot2x4Generic(w0, w1[:len(w0)], x, stride, out)
}

func hasInt4Kernel() bool { return false }

func dotInt4(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	return dotInt4Generic(q, scale, xd, corr, sub, flip)
}

func rowInt4(dst []float32, q []byte, scale []uint16, sub int, signed bool) {
	rowInt4Generic(dst, q, scale, sub, signed)
}

func axpy(dst []float32, a float32, x []float32) { axpyGeneric(dst, a, x) }

func dot3x4(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	dot3x4Generic(w0, w1[:len(w0)], w2[:len(w0)], x, stride, out)
}

func dotLUT4(idx []byte, pal *[16]float32, x []float32) float32 { return dotLUT4Generic(idx, pal, x) }

func rowLUT4(dst []float32, idx []byte, pal *[16]float32) { rowLUT4Generic(dst, idx, pal) }
