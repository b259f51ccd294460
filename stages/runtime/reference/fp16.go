package reference

import (
	"math"
	"sync"

	"github.com/x448/float16"
)

// halfTable maps every fp16 bit pattern to its float32 value: a 256 KiB table is about 4×
// faster than converting bit by bit (x448/float16 converts bit by bit) and widening is exact.
var (
	halfTableOnce sync.Once
	halfTable     *[1 << 16]float32
)

func halfLUT() *[1 << 16]float32 {
	halfTableOnce.Do(func() {
		var t [1 << 16]float32
		for i := range t {
			t[i] = float16.Frombits(uint16(i)).Float32()
		}
		halfTable = &t
	})
	return halfTable
}

func halfToFloat(h uint16) float32 { return halfLUT()[h] }

// floatToHalf rounds f to the nearest fp16 (ties to even), overflowing to ±Inf and keeping
// NaN a quiet NaN, as IEEE-754 binary16 conversion does.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// fp16 subnormal: value = m·2^-24, m = (1.man)·2^(exp-126) in units of the f32 mantissa.
		full := man | 0x800000
		shift := uint32(126 - exp)
		if shift > 24 {
			return sign
		}
		m := full >> shift
		rem := full & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rem > halfway || (rem == halfway && m&1 == 1) {
			m++ // may carry into the smallest normal, which is the right bit pattern
		}
		return sign | uint16(m)
	}
	h := sign | uint16(e)<<10 | uint16(man>>13)
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to Inf
	}
	return h
}

// roundFP16 returns f rounded to the nearest fp16 value (ties to even), as a float32: the
// value lut[floatToHalf(f)] would give, computed without leaving float32.
//
//   - fp16 normals (2^-14 ≤ |f| < 2^16): round the float32 mantissa to its top 10 bits by
//     adding 0xFFF plus the lowest kept bit (ties to even) and clearing the 13 dropped bits;
//     a carry into the exponent is the correct result, and a result ≥ 2^16 (65520 and up)
//     is past fp16's largest finite 65504, so it becomes ±Inf.
//   - fp16 subnormals (|f| < 2^-14) are multiples of 2^-24: (|f| + 0.5) − 0.5 rounds |f| to
//     one, ties to even, because 0.5 + |f| ∈ [0.5, 1) has a float32 ulp of exactly 2^-24.
//   - other finite values overflow to ±Inf; ±Inf and NaN pass through.
func roundFP16(f float32) float32 {
	b := math.Float32bits(f)
	a := b & 0x7fffffff
	switch {
	case a-0x38800000 < 0x47800000-0x38800000: // 2^-14 ≤ |f| < 2^16
		r := (a + 0xfff + (a>>13)&1) &^ 0x1fff
		if r >= 0x47800000 {
			r = 0x7f800000
		}
		return math.Float32frombits(b&0x80000000 | r)
	case a < 0x38800000:
		r := (math.Float32frombits(a) + 0.5) - 0.5
		return math.Float32frombits(b&0x80000000 | math.Float32bits(r))
	case a < 0x7f800000: // finite, ≥ 2^16
		return math.Float32frombits(b&0x80000000 | 0x7f800000)
	}
	return f // ±Inf, NaN
}

// roundSliceFP16 rounds every element of v to fp16 in place.
func roundSliceFP16(v []float32) {
	for i, f := range v {
		v[i] = roundFP16(f)
	}
}
