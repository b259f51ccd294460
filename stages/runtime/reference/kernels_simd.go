//go:build (amd64 || arm64) && !purego

package reference

// The Go side of the 8-lane float kernels, shared by kernels_amd64.s (AVX2/FMA/F16C) and
// kernels_arm64.s (NEON), which implement each …Vec routine with the same signature and
// sum order. The wrappers check lengths, hand over whole multiples of 8 and finish the
// tails in Go; useSIMD (per architecture) turns the assembly off.

//go:noescape
func dotVec(a, b *float32, n int) float32

//go:noescape
func dotHalfVec(w *uint16, x *float32, n int) float32

//go:noescape
func halfToFloatVec(dst *float32, src *uint16, n int)

//go:noescape
func dot2x4Vec(w0, w1, x *float32, stride, n int, out *[8]float32)

//go:noescape
func dot3x4Vec(w0, w1, w2, x *float32, stride, n int, out *[12]float32)

//go:noescape
func axpyVec(dst *float32, a float32, x *float32, n int)

//go:noescape
func dotLUT4Vec(idx *byte, pal *[16]float32, x *float32, n int) float32

//go:noescape
func rowLUT4Vec(dst *float32, idx *byte, pal *[16]float32, n int)

// dot returns a·b (len(b) ≥ len(a)).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	if !useSIMD || len(a) < 8 {
		return dotGeneric(a, b)
	}
	n := len(a) &^ 7
	return dotVec(&a[0], &b[0], n) + dotGeneric(a[n:], b[n:])
}

// dotHalf returns Σ fp16(w[i])·x[i] (len(x) ≥ len(w)).
func dotHalf(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	x = x[:len(w)]
	if !useSIMD || len(w) < 8 {
		return dotHalfGeneric(w, x, lut)
	}
	n := len(w) &^ 7
	return dotHalfVec(&w[0], &x[0], n) + dotHalfGeneric(w[n:], x[n:], lut)
}

// halfsToFloats widens src into dst (len(src) ≥ len(dst)).
func halfsToFloats(dst []float32, src []uint16) {
	src = src[:len(dst)]
	n := 0
	if useSIMD && len(dst) >= 8 {
		n = len(dst) &^ 7
		halfToFloatVec(&dst[0], &src[0], n)
	}
	halfsToFloatsGeneric(dst[n:], src[n:])
}

// dot2x4 sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for r < 2, i < 4.
func dot2x4(w0, w1, x []float32, stride int, out *[8]float32) {
	k := len(w0)
	w1 = w1[:k]
	_ = x[3*stride+k-1]
	if !useSIMD || k < 8 {
		dot2x4Generic(w0, w1, x, stride, out)
		return
	}
	n := k &^ 7
	dot2x4Vec(&w0[0], &w1[0], &x[0], stride, n, out)
	if n < k {
		var t [8]float32
		dot2x4Generic(w0[n:], w1[n:], x[n:], stride, &t)
		for i := range out {
			out[i] += t[i]
		}
	}
}

// dot3x4 sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for r < 3, i < 4.
func dot3x4(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	k := len(w0)
	w1, w2 = w1[:k], w2[:k]
	_ = x[3*stride+k-1]
	if !useSIMD || k < 8 {
		dot3x4Generic(w0, w1, w2, x, stride, out)
		return
	}
	n := k &^ 7
	dot3x4Vec(&w0[0], &w1[0], &w2[0], &x[0], stride, n, out)
	if n < k {
		var t [12]float32
		dot3x4Generic(w0[n:], w1[n:], w2[n:], x[n:], stride, &t)
		for i := range out {
			out[i] += t[i]
		}
	}
}

// axpy adds a·x to dst (len(x) ≥ len(dst)); elements are independent, so the vector kernel
// (a product then a sum, not fused) gives the portable loop's results bit for bit.
func axpy(dst []float32, a float32, x []float32) {
	x = x[:len(dst)]
	n := 0
	if useSIMD && len(dst) >= 8 {
		n = len(dst) &^ 7
		axpyVec(&dst[0], a, &x[0], n)
	}
	axpyGeneric(dst[n:], a, x[n:])
}

// dotLUT4 returns Σ_k pal[n_k]·x[k] over the 4-bit indices of idx (see dotLUT4Generic). The
// kernel takes whole 8-element runs, accumulating like dotVec, and the tail is finished as
// dot finishes it, so the result is dot(expanded row, x) bit for bit.
func dotLUT4(idx []byte, pal *[16]float32, x []float32) float32 {
	x = x[:2*len(idx)]
	if !useSIMD || len(x) < 8 {
		return dotLUT4Generic(idx, pal, x)
	}
	nb := len(idx) &^ 3 // 4 bytes = 8 elements
	return dotLUT4Vec(&idx[0], pal, &x[0], 2*nb) + dotLUT4Generic(idx[nb:], pal, x[2*nb:])
}

// rowLUT4 expands 4-bit palette indices into dst (see rowLUT4Generic).
func rowLUT4(dst []float32, idx []byte, pal *[16]float32) {
	dst = dst[:2*len(idx)]
	nb := 0
	if useSIMD && len(idx) >= 4 {
		nb = len(idx) &^ 3
		rowLUT4Vec(&dst[0], &idx[0], pal, 2*nb)
	}
	rowLUT4Generic(dst[2*nb:], idx[nb:], pal)
}
