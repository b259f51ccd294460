package reference

// deinterleave32 writes x with each run of 32 elements reordered as its 16 even-indexed
// elements, then its 16 odd ones (len(x) a multiple of 32): the order in which a block's
// low nibbles (elements 2k) and high nibbles (2k+1) of 16 bytes come out of one 512-bit
// widening, the layout dotInt4Wide reads.
func deinterleave32(dst, x []float32) {
	dst = dst[:len(x)]
	for c := 0; c+32 <= len(x); c += 32 {
		s, d := x[c:c+32], dst[c:c+32]
		for j := range 16 {
			d[j] = s[2*j]
			d[16+j] = s[2*j+1]
		}
	}
}

// dotInt4Generic32 is dotInt4Generic on x deinterleaved by deinterleave32: the portable
// reference of dotInt4AVX512.
func dotInt4Generic32(q []byte, scale []uint16, xd, corr []float32, sub int, flip byte) float32 {
	lut := halfLUT()
	var sum float32
	for b, s := range scale {
		var acc float32
		for c := range sub { // 32-element runs: 16 bytes
			bytes := q[(b*sub+c)*16:][:16]
			x := xd[(b*sub+c)*32:][:32]
			for j, v := range bytes {
				v ^= flip
				acc += float32(v&15)*x[j] + float32(v>>4)*x[16+j]
			}
		}
		sum += lut[s] * (acc - 8*corr[b])
	}
	return sum
}
