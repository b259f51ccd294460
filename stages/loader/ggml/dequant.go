package ggml

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// ErrUnsupportedType is returned (wrapped) by DequantizeRow for a type it cannot decode.
var ErrUnsupportedType = errors.New("ggml: type cannot be dequantized")

// f16ToF32 widens every binary16 bit pattern to float32 exactly (subnormals, ±Inf and
// NaN included). A 256 KiB table beats bit twiddling on the hot path, where every
// block scale and every F16 weight goes through it.
var f16ToF32 = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return &t
}()

// f16 reads a little-endian binary16 at b[0:2] as float32.
func f16(b []byte) float32 {
	return f16ToF32[binary.LittleEndian.Uint16(b)]
}

// CanDequantize reports whether DequantizeRow decodes type t.
func CanDequantize(t Type) bool {
	switch t {
	case F32, F16, BF16,
		Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
		Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS:
		return true
	}
	return false
}

// DequantizeRow decodes len(dst) elements of type t from src into dst. len(dst) must be
// a multiple of t.BlockElems() and src must hold exactly t.RowBytes(len(dst)) bytes.
//
// Formulas and the order of float operations follow ggml's scalar dequantize_row_*
// (ggml/src/ggml-quants.c, dequantize_row_*): per-sub-block products such as d·scale are rounded to float32
// before they multiply the quant, so results are bit-identical to ggml's reference path.
// DequantizeRow does not allocate.
func DequantizeRow(t Type, src []byte, dst []float32) error {
	if !CanDequantize(t) {
		return fmt.Errorf("dequantize %v: %w", t, ErrUnsupportedType)
	}
	n := int64(len(dst))
	want, err := t.RowBytes(n)
	if err != nil {
		return fmt.Errorf("dequantize %v: %w", t, err)
	}
	if int64(len(src)) != want {
		return fmt.Errorf("dequantize %v: row of %d elements needs %d bytes, have %d", t, n, want, len(src))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = f16(src[2*i:])
		}
	case BF16:
		// bf16 is the high half of a binary32 (ggml's GGML_BF16_TO_FP32).
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case Q4_0:
		dequantQ4_0(src, dst)
	case Q4_1:
		dequantQ4_1(src, dst)
	case Q5_0:
		dequantQ5_0(src, dst)
	case Q5_1:
		dequantQ5_1(src, dst)
	case Q8_0:
		dequantQ8_0(src, dst, 34)
	case Q8_1:
		// Q8_1 is Q8_0 with an extra f16 s = d·Σq after d; s only serves dot products.
		dequantQ8_0(src, dst, 36)
	case Q2_K:
		dequantQ2_K(src, dst)
	case Q3_K:
		dequantQ3_K(src, dst)
	case Q4_K:
		dequantQ4_K(src, dst)
	case Q5_K:
		dequantQ5_K(src, dst)
	case Q6_K:
		dequantQ6_K(src, dst)
	case Q8_K:
		dequantQ8_K(src, dst)
	case IQ4_NL:
		dequantIQ4_NL(src, dst)
	case IQ4_XS:
		dequantIQ4_XS(src, dst)
	}
	return nil
}

// The block decoders below are called with len(src) = nb·blockBytes and
// len(dst) = nb·blockElems, as checked by DequantizeRow. Converting sub-slices to array
// pointers lets the compiler drop bounds checks inside each block.

// Q4_0 block (18 bytes): d f16; qs[16]. Low nibbles hold elements 0–15, high nibbles 16–31.
func dequantQ4_0(src []byte, dst []float32) {
	for len(dst) >= 32 {
		b := (*[18]byte)(src)
		y := (*[32]float32)(dst)
		d := f16(b[0:])
		qs := (*[16]byte)(b[2:])
		for j, q := range qs {
			y[j] = float32(int32(q&0xF)-8) * d
			y[j+16] = float32(int32(q>>4)-8) * d
		}
		src, dst = src[18:], dst[32:]
	}
}

// Q4_1 block (20 bytes): d f16; m f16; qs[16]. y = q·d + m.
func dequantQ4_1(src []byte, dst []float32) {
	for len(dst) >= 32 {
		b := (*[20]byte)(src)
		y := (*[32]float32)(dst)
		d, m := f16(b[0:]), f16(b[2:])
		qs := (*[16]byte)(b[4:])
		for j, q := range qs {
			// The explicit float32 conversion keeps Go from fusing into an FMA on arm64,
			// so that the product is rounded as in ggml before m is added.
			y[j] = float32(float32(q&0xF)*d) + m
			y[j+16] = float32(float32(q>>4)*d) + m
		}
		src, dst = src[20:], dst[32:]
	}
}

// Q5_0 block (22 bytes): d f16; qh u32 LE; qs[16]. Bit j of qh is the 5th bit of element j.
func dequantQ5_0(src []byte, dst []float32) {
	for len(dst) >= 32 {
		b := (*[22]byte)(src)
		y := (*[32]float32)(dst)
		d := f16(b[0:])
		qh := binary.LittleEndian.Uint32(b[2:])
		qs := (*[16]byte)(b[6:])
		for j, q := range qs {
			lo := int32(q&0xF) | int32((qh>>uint(j))&1)<<4
			hi := int32(q>>4) | int32((qh>>uint(j+16))&1)<<4
			y[j] = float32(lo-16) * d
			y[j+16] = float32(hi-16) * d
		}
		src, dst = src[22:], dst[32:]
	}
}

// Q5_1 block (24 bytes): d f16; m f16; qh u32 LE; qs[16]. y = q5·d + m.
func dequantQ5_1(src []byte, dst []float32) {
	for len(dst) >= 32 {
		b := (*[24]byte)(src)
		y := (*[32]float32)(dst)
		d, m := f16(b[0:]), f16(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		qs := (*[16]byte)(b[8:])
		for j, q := range qs {
			lo := uint32(q&0xF) | ((qh>>uint(j))&1)<<4
			hi := uint32(q>>4) | ((qh>>uint(j+16))&1)<<4
			y[j] = float32(float32(lo)*d) + m
			y[j+16] = float32(float32(hi)*d) + m
		}
		src, dst = src[24:], dst[32:]
	}
}

// Q8_0 block (34 bytes): d f16; qs[32] int8. Q8_1 (36 bytes) has the same d and quants
// with a 2-byte s in between; size tells which.
func dequantQ8_0(src []byte, dst []float32, size int) {
	off := size - 32
	for len(dst) >= 32 {
		d := f16(src)
		qs := (*[32]byte)(src[off:])
		y := (*[32]float32)(dst)
		for j, q := range qs {
			y[j] = float32(int8(q)) * d
		}
		src, dst = src[size:], dst[32:]
	}
}

// Q8_K block (292 bytes): d f32; qs[256] int8; bsums[16] int16 (unused here).
func dequantQ8_K(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		d := math.Float32frombits(binary.LittleEndian.Uint32(src))
		qs := (*[QK_K]byte)(src[4:])
		y := (*[QK_K]float32)(dst)
		for j, q := range qs {
			y[j] = d * float32(int8(q))
		}
		src, dst = src[292:], dst[QK_K:]
	}
}

// Q2_K block (84 bytes): scales[16]; qs[64]; d f16; dmin f16. Each scales byte belongs to
// 16 elements: low nibble the scale, high nibble the min. Element 128h+32j+l takes its
// 2 bits at shift 2j of qs[32h+l].
func dequantQ2_K(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		b := (*[84]byte)(src)
		y := (*[QK_K]float32)(dst)
		d, dmin := f16(b[80:]), f16(b[82:])
		for h := 0; h < 2; h++ {
			qs := (*[32]byte)(b[16+32*h:])
			for j := 0; j < 4; j++ {
				shift := uint(2 * j)
				for half := 0; half < 2; half++ {
					sc := b[8*h+2*j+half]
					dl := d * float32(sc&0xF)
					ml := dmin * float32(sc>>4)
					out := (*[16]float32)(y[128*h+32*j+16*half:])
					in := (*[16]byte)(qs[16*half:])
					for l, q := range in {
						out[l] = float32(dl*float32((q>>shift)&3)) - ml
					}
				}
			}
		}
		src, dst = src[84:], dst[QK_K:]
	}
}

// Q3_K block (110 bytes): hmask[32]; qs[64]; scales[12]; d f16.
func dequantQ3_K(src []byte, dst []float32) {
	var scales [16]int32
	for len(dst) >= QK_K {
		b := (*[110]byte)(src)
		y := (*[QK_K]float32)(dst)
		hmask := (*[32]byte)(b[0:])
		s := (*[12]byte)(b[96:])
		d := f16(b[108:])
		// 16 six-bit scales, stored biased by 32: the low 4 bits in bytes 0–7 (scales 0–7
		// in the low nibbles, 8–15 in the high nibbles), the top 2 bits in bytes 8–11
		// (scale i at shift 2·(i/4) of byte 8+i%4).
		for i := range scales {
			var low4 byte
			if i < 8 {
				low4 = s[i] & 0xF
			} else {
				low4 = s[i-8] >> 4
			}
			high2 := (s[8+i%4] >> uint(2*(i/4))) & 3
			scales[i] = int32(low4|high2<<4) - 32
		}
		for h := 0; h < 2; h++ {
			qs := (*[32]byte)(b[32+32*h:])
			for j := 0; j < 4; j++ {
				shift := uint(2 * j)
				hshift := uint(4*h + j)
				for half := 0; half < 2; half++ {
					dl := d * float32(scales[8*h+2*j+half])
					out := (*[16]float32)(y[128*h+32*j+16*half:])
					in := (*[16]byte)(qs[16*half:])
					hm := (*[16]byte)(hmask[16*half:])
					for l, q := range in {
						// A clear hmask bit means the quant is 4 below its 2 low bits
						// (computed without a branch: the bits are random).
						v := int32((q>>shift)&3) - 4 + 4*int32((hm[l]>>hshift)&1)
						out[l] = dl * float32(v)
					}
				}
			}
		}
		src, dst = src[110:], dst[QK_K:]
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block k (0–7) from the 12 packed
// bytes of a Q4_K or Q5_K block (ggml's get_scale_min_k4).
func scaleMinK4(k int, s *[12]byte) (sc, m byte) {
	if k < 4 {
		return s[k] & 63, s[k+4] & 63
	}
	return s[k+4]&0xF | (s[k-4]>>6)<<4, s[k+4]>>4 | (s[k]>>6)<<4
}

// Q4_K block (144 bytes): d f16; dmin f16; scales[12]; qs[128]. Chunk c of 64 elements
// uses bytes qs[32c:32c+32]: low nibbles for its first 32 elements (sub-block 2c), high
// nibbles for the next 32 (sub-block 2c+1).
func dequantQ4_K(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		b := (*[144]byte)(src)
		y := (*[QK_K]float32)(dst)
		d, dmin := f16(b[0:]), f16(b[2:])
		s := (*[12]byte)(b[4:])
		for c := 0; c < 4; c++ {
			qs := (*[32]byte)(b[16+32*c:])
			sc, m := scaleMinK4(2*c, s)
			d1, m1 := d*float32(sc), dmin*float32(m)
			sc, m = scaleMinK4(2*c+1, s)
			d2, m2 := d*float32(sc), dmin*float32(m)
			lo := (*[32]float32)(y[64*c:])
			hi := (*[32]float32)(y[64*c+32:])
			for l, q := range qs {
				lo[l] = float32(d1*float32(q&0xF)) - m1
				hi[l] = float32(d2*float32(q>>4)) - m2
			}
		}
		src, dst = src[144:], dst[QK_K:]
	}
}

// Q5_K block (176 bytes): d f16; dmin f16; scales[12]; qh[32]; qs[128]. As Q4_K, with the
// 5th bit of element 64c+l in bit 2c of qh[l] and of element 64c+32+l in bit 2c+1.
func dequantQ5_K(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		b := (*[176]byte)(src)
		y := (*[QK_K]float32)(dst)
		d, dmin := f16(b[0:]), f16(b[2:])
		s := (*[12]byte)(b[4:])
		qh := (*[32]byte)(b[16:])
		for c := 0; c < 4; c++ {
			qs := (*[32]byte)(b[48+32*c:])
			sc, m := scaleMinK4(2*c, s)
			d1, m1 := d*float32(sc), dmin*float32(m)
			sc, m = scaleMinK4(2*c+1, s)
			d2, m2 := d*float32(sc), dmin*float32(m)
			lo := (*[32]float32)(y[64*c:])
			hi := (*[32]float32)(y[64*c+32:])
			s1, s2 := uint(2*c), uint(2*c+1)
			for l, q := range qs {
				q1 := q&0xF | ((qh[l]>>s1)&1)<<4
				q2 := q>>4 | ((qh[l]>>s2)&1)<<4
				lo[l] = float32(d1*float32(q1)) - m1
				hi[l] = float32(d2*float32(q2)) - m2
			}
		}
		src, dst = src[176:], dst[QK_K:]
	}
}

// Q6_K block (210 bytes): ql[128]; qh[64]; scales[16] int8; d f16. Each half of 128
// elements takes 64 ql bytes (low 4 bits), 32 qh bytes (2 high bits each for four
// elements 32 apart) and 8 scales, one per 16 elements.
func dequantQ6_K(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		b := (*[210]byte)(src)
		y := (*[QK_K]float32)(dst)
		d := f16(b[208:])
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(b[64*h:])
			qh := (*[32]byte)(b[128+32*h:])
			sc := (*[8]byte)(b[192+8*h:])
			out := (*[128]float32)(y[128*h:])
			for l := 0; l < 32; l++ {
				g := l / 16
				H := qh[l]
				q1 := int32(ql[l]&0xF|(H&3)<<4) - 32
				q2 := int32(ql[l+32]&0xF|((H>>2)&3)<<4) - 32
				q3 := int32(ql[l]>>4|((H>>4)&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|((H>>6)&3)<<4) - 32
				// ggml evaluates d·scale·q left to right: (d·scale) first.
				out[l] = float32(d*float32(int8(sc[g]))) * float32(q1)
				out[l+32] = float32(d*float32(int8(sc[g+2]))) * float32(q2)
				out[l+64] = float32(d*float32(int8(sc[g+4]))) * float32(q3)
				out[l+96] = float32(d*float32(int8(sc[g+6]))) * float32(q4)
			}
		}
		src, dst = src[210:], dst[QK_K:]
	}
}

// kvaluesIQ4NL is the fixed non-linear codebook of IQ4_NL and IQ4_XS (ggml-common.h).
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4_NL block (18 bytes): d f16; qs[16], each nibble an index into the codebook: low
// nibbles elements 0–15, high nibbles 16–31. y = d·kvalues[q].
func dequantIQ4_NL(src []byte, dst []float32) {
	for len(dst) >= 32 {
		b := (*[18]byte)(src)
		y := (*[32]float32)(dst)
		d := f16(b[0:])
		for j, q := range (*[16]byte)(b[2:]) {
			y[j] = d * float32(kvaluesIQ4NL[q&0xF])
			y[j+16] = d * float32(kvaluesIQ4NL[q>>4])
		}
		src, dst = src[18:], dst[32:]
	}
}

// IQ4_XS block (136 bytes): d f16; scales_h u16; scales_l[4]; qs[128]. Sub-block k of 32
// has the 6-bit scale ls (low 4 bits: nibble k%2 of scales_l[k/2]; high 2: bits 2k of
// scales_h) and is an IQ4_NL block of scale d·(ls − 32).
func dequantIQ4_XS(src []byte, dst []float32) {
	for len(dst) >= QK_K {
		b := (*[136]byte)(src)
		y := (*[QK_K]float32)(dst)
		d := f16(b[0:])
		sh := binary.LittleEndian.Uint16(b[2:])
		for k := 0; k < 8; k++ {
			ls := int32(b[4+k/2]>>(4*(k%2))&0xF) | int32(sh>>(2*k)&3)<<4
			dl := d * float32(ls-32)
			for j, q := range (*[16]byte)(b[8+16*k:]) {
				y[32*k+j] = dl * float32(kvaluesIQ4NL[q&0xF])
				y[32*k+16+j] = dl * float32(kvaluesIQ4NL[q>>4])
			}
		}
		src, dst = src[136:], dst[QK_K:]
	}
}
