package main

import (
	"math"

	"github.com/x448/float16"
)

// nf4Offset is where NF4's quantiles start: QLoRA (Dettmers et al. 2023, §3 and appendix)
// takes the standard normal's quantiles between δ = ½(1/32 + 1/30) and 1 − δ, so that
// the extreme codes are finite, and normalises them to [−1, 1].
const nf4Offset = 1 - 0.5*(1.0/32+1.0/30)

// codebook is NF4, the 4-bit NormalFloat data type: 16 values in [−1, 1], ascending, each
// covering an equal share of a standard normal distribution's probability mass, with an
// exact zero. QLoRA builds it asymmetrically to have that zero: 8 positive quantiles of
// N(0, 1) at probabilities evenly spaced from nf4Offset down to ½ (excluded), 7 negative
// ones from the 8 evenly spaced points between nf4Offset and ½, mirrored, and 0; then
// divides them all by the largest, Φ⁻¹(nf4Offset).
var codebook = func() [16]float64 {
	var c [16]float64
	top := normalQuantile(nf4Offset)
	for k := 0; k < 7; k++ { // c[0..6]: −1 … −0.091
		c[k] = -normalQuantile(nf4Offset-float64(k)*(nf4Offset-0.5)/7) / top
	}
	c[7] = 0
	for k := 0; k < 8; k++ { // c[15..8]: 1 … 0.0796
		c[15-k] = normalQuantile(nf4Offset-float64(k)*(nf4Offset-0.5)/8) / top
	}
	return c
}()

// normalQuantile is Φ⁻¹(p) of the standard normal distribution: √2·erf⁻¹(2p − 1).
func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }

// row quantizes one row of weights to NF4 with the row's absolute maximum as the scale:
// palette[k] = fp16(codebook[k]·absmax), and idx[i] is the palette entry nearest to x[i]
// (nearest among the fp16 values the constexpr op will decode, so the rounding of the
// palette is part of the choice). It returns Σ(x − x̂)² and Σx² for the error, and false when
// absmax does not fit fp16.
func row(x []float32, idx []uint8, palette *[16]uint16, decoded *[16]float32) (errSum, sigSum float64, ok bool) {
	var absmax float32
	for _, v := range x {
		absmax = max(absmax, float32(math.Abs(float64(v))))
	}
	if absmax > 65504 || math.IsNaN(float64(absmax)) {
		return 0, 0, false
	}
	for k, c := range codebook {
		h := float16.Fromfloat32(float32(c) * absmax)
		palette[k], decoded[k] = h.Bits(), h.Float32()
	}
	for i, v := range x {
		// The palette ascends (codebook ascends, absmax ≥ 0, fp16 rounding is monotone):
		// count the midpoints below v.
		k := 0
		for k < 15 && v > (decoded[k]+decoded[k+1])/2 {
			k++
		}
		idx[i] = uint8(k)
		d := float64(v - decoded[k])
		errSum += d * d
		sigSum += float64(v) * float64(v)
	}
	return errSum, sigSum, true
}

// pack4 packs 4-bit values LSB-first, element 2k in the low nibble of byte k, as MIL's
// uint4 blobs store them (MILBlob's sub-byte packing). len(dst) must be ⌈len(v)/2⌉.
func pack4(dst []byte, v []uint8) {
	clear(dst)
	for i, x := range v {
		dst[i/2] |= (x & 0xF) << (4 * (i % 2))
	}
}
