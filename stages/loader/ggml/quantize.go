package ggml

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// checkQuantizeLens verifies that src is a whole number of t's blocks and dst is exactly
// the row's byte size.
func checkQuantizeLens(t Type, src []float32, dst []byte) error {
	want, err := t.RowBytes(int64(len(src)))
	if err != nil {
		return fmt.Errorf("quantize %v: %w", t, err)
	}
	if int64(len(dst)) != want {
		return fmt.Errorf("quantize %v: row of %d elements needs %d bytes, have %d", t, len(src), want, len(dst))
	}
	return nil
}

// putF16 stores f rounded to binary16 (round to nearest even, as ggml's GGML_FP32_TO_FP16) at b[0:2].
func putF16(b []byte, f float32) {
	binary.LittleEndian.PutUint16(b, float16.Fromfloat32(f).Bits())
}

// QuantizeRowQ4_0 quantizes src (a multiple of 32 elements) into Q4_0 blocks in dst, which
// must hold exactly Q4_0.RowBytes(len(src)) bytes. It follows ggml's quantize_row_q4_0_ref
// (quantize_row_q4_0_ref in ggml/src/ggml-quants.c), which is what llama-quantize writes, so that re-quantizing a
// dequantized Q4_0 row can be checked byte for byte.
func QuantizeRowQ4_0(src []float32, dst []byte) error {
	if err := checkQuantizeLens(Q4_0, src, dst); err != nil {
		return err
	}
	for len(src) >= 32 {
		x := (*[32]float32)(src)
		b := (*[18]byte)(dst)
		// The signed value of largest magnitude; the first one wins ties.
		var amax, vmax float32
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); amax < a {
				amax, vmax = a, v
			}
		}
		d := vmax / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(b[0:], d)
		// Quants use the f32 d, not its f16 rounding. x·id lies in [-8, 8], so +8.5 and
		// truncation round half up into 0..16; 16 is clamped to 15. The extreme element
		// itself lands on 0, i.e. exactly −8·d = max.
		for j := 0; j < 16; j++ {
			lo := min(15, truncInt8(float32(x[j]*id)+8.5))
			hi := min(15, truncInt8(float32(x[j+16]*id)+8.5))
			b[2+j] = byte(lo) | byte(hi)<<4
		}
		src, dst = src[32:], dst[18:]
	}
	return nil
}

// QuantizeRowQ8_0 quantizes src (a multiple of 32 elements) into Q8_0 blocks in dst, which
// must hold exactly Q8_0.RowBytes(len(src)) bytes, following ggml's quantize_row_q8_0_ref
// (quantize_row_q8_0_ref, ggml/src/ggml-quants.c): d = amax/127 and q = roundf(x/d), ties away from zero.
func QuantizeRowQ8_0(src []float32, dst []byte) error {
	if err := checkQuantizeLens(Q8_0, src, dst); err != nil {
		return err
	}
	for len(src) >= 32 {
		x := (*[32]float32)(src)
		b := (*[34]byte)(dst)
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		putF16(b[0:], d)
		for j, v := range x {
			// |x·id| ≤ 127 up to rounding, so the int8 conversion cannot overflow;
			// math.Round on the exact float64 widening is C's roundf.
			b[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
		}
		src, dst = src[32:], dst[34:]
	}
	return nil
}

// truncInt8 is C's (int8_t) conversion of a float in [0, 17): truncation toward zero.
// Values outside the int8 range (possible only for NaN or infinite input) become 0
// instead of depending on the platform's conversion.
func truncInt8(f float32) int32 {
	if !(f > -129 && f < 128) {
		return 0
	}
	return int32(f)
}
