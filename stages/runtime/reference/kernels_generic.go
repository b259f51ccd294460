package reference

// Portable kernels: the reference the assembly versions (kernels_amd64.s, kernels_arm64.s)
// are tested against, and the path on other architectures.

// dotGeneric returns a·b (len(b) ≥ len(a)) with four interleaved partial sums. The loop
// advances the slices rather than an index so that the compiler proves every access in bounds.
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 && len(b) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i, v := range a {
		s0 += v * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotHalfGeneric returns Σ fp16(w[i])·x[i], widening through lut.
func dotHalfGeneric(w []uint16, x []float32, lut *[1 << 16]float32) float32 {
	x = x[:len(w)]
	var s0, s1, s2, s3 float32
	for len(w) >= 4 && len(x) >= 4 {
		s0 += lut[w[0]] * x[0]
		s1 += lut[w[1]] * x[1]
		s2 += lut[w[2]] * x[2]
		s3 += lut[w[3]] * x[3]
		w, x = w[4:], x[4:]
	}
	for i, h := range w {
		s0 += lut[h] * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func halfsToFloatsGeneric(dst []float32, src []uint16) {
	lut := halfLUT()
	for i, h := range src[:len(dst)] {
		dst[i] = lut[h]
	}
}

// dot2x4Generic sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for rows r < 2, tokens i < 4.
func dot2x4Generic(w0, w1, x []float32, stride int, out *[8]float32) {
	k := len(w0)
	for i := range 4 {
		xi := x[i*stride : i*stride+k]
		out[i] = dotGeneric(w0, xi)
		out[4+i] = dotGeneric(w1, xi)
	}
}

// deinterleave16 writes x with each run of 16 elements reordered as its 8 even-indexed
// elements, then its 8 odd ones (len(x) a multiple of 16): the order in which an int4 row's
// low nibbles (elements 2k) and high nibbles (2k+1) of 8 consecutive bytes come out.
func deinterleave16(dst, x []float32) {
	dst = dst[:len(x)]
	for c := 0; c+16 <= len(x); c += 16 {
		s, d := x[c:c+16], dst[c:c+16]
		for j := range 8 {
			d[j] = s[2*j]
			d[8+j] = s[2*j+1]
		}
	}
}

// dotInt4Generic is the fused dot of one row of 4-bit codes against x: len(scale) blocks of
// sub·32 elements, block b worth fp16(scale[b])·(Σ_k u_k·x_k − 8·corr[b]) where u_k is the
// k-th code of the row XORed with flip (flip 0x88 turns an int4 nibble n into u = n + 8 in
// 0..15; 0 keeps uint4 codes), xd is x deinterleaved (deinterleave16) and corr[b] is Σ x over
// the block for int4 (so that the sum is Σ (u−8)·x = Σ n·x) and 0 for uint4.
func dotInt4Generic(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	lut := halfLUT()
	var sum float32
	for b, s := range scale {
		var acc float32
		for c := range 2 * sub { // 16-element runs: 8 bytes
			bytes := q[(b*2*sub+c)*8:][:8]
			x := xd[(b*2*sub+c)*16:][:16]
			for j, v := range bytes {
				v ^= flip
				acc += float32(v&15)*x[j] + float32(v>>4)*x[8+j]
			}
		}
		sum += lut[s] * (acc - 8*corr[b])
	}
	return sum
}

// rowInt4Generic writes a row of 4-bit codes dequantized: len(scale) blocks of sub·32
// elements, element k of block b being fp16(scale[b])·n_k, n_k the k-th code (element 2k in
// the low nibble of byte k) read as int4 (two's complement) when signed, else as uint4.
func rowInt4Generic(dst []float32, q []byte, scale []uint16, sub int, signed bool) {
	lut := halfLUT()
	tab := &nibbleValues[0]
	if signed {
		tab = &nibbleValues[1]
	}
	var vals [16]float32
	for b, h := range scale {
		s := lut[h]
		for n, v := range tab {
			vals[n] = s * v
		}
		src := q[b*sub*16 : (b+1)*sub*16]
		d := dst[b*sub*32 : (b+1)*sub*32]
		for k, v := range src {
			d[2*k] = vals[v&15]
			d[2*k+1] = vals[v>>4]
		}
	}
}

// axpyGeneric adds a·x to dst (len(x) ≥ len(dst)), each element rounded after the product
// and after the sum (no fused multiply-add), as axpyVec does (kernels_amd64.s, kernels_arm64.s).
func axpyGeneric(dst []float32, a float32, x []float32) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] += float32(a * v) // the conversion forbids fusing into an FMA (Go spec)
	}
}

// dot3x4Generic sets out[4·r+i] = w_r·x[i·stride:][:len(w0)] for rows r < 3, tokens i < 4.
func dot3x4Generic(w0, w1, w2, x []float32, stride int, out *[12]float32) {
	k := len(w0)
	for i := range 4 {
		xi := x[i*stride : i*stride+k]
		out[i] = dotGeneric(w0, xi)
		out[4+i] = dotGeneric(w1, xi)
		out[8+i] = dotGeneric(w2, xi)
	}
}

// dotLUT4Generic returns Σ_k pal[n_k]·x[k] over the 2·len(idx) 4-bit palette indices of idx
// (uint4 packing, blob v2: element 2k in the low nibble of byte k), len(x) ≥ 2·len(idx). It
// accumulates exactly as dotGeneric does over the expanded row (element k into partial sum
// k mod 4, the remainder into the first), so fused and expanded agree bit for bit.
func dotLUT4Generic(idx []byte, pal *[16]float32, x []float32) float32 {
	x = x[:2*len(idx)]
	var s0, s1, s2, s3 float32
	for len(idx) >= 2 && len(x) >= 4 {
		s0 += pal[idx[0]&15] * x[0]
		s1 += pal[idx[0]>>4] * x[1]
		s2 += pal[idx[1]&15] * x[2]
		s3 += pal[idx[1]>>4] * x[3]
		idx, x = idx[2:], x[4:]
	}
	if len(idx) == 1 && len(x) == 2 {
		s0 += pal[idx[0]&15] * x[0]
		s0 += pal[idx[0]>>4] * x[1]
	}
	return (s0 + s1) + (s2 + s3)
}

// rowLUT4Generic expands 4-bit palette indices: dst[2k] = pal[low nibble of idx[k]],
// dst[2k+1] = pal[high nibble] (len(dst) ≥ 2·len(idx)).
func rowLUT4Generic(dst []float32, idx []byte, pal *[16]float32) {
	dst = dst[:2*len(idx)]
	for k, v := range idx {
		dst[2*k] = pal[v&15]
		dst[2*k+1] = pal[v>>4]
	}
}
