package qweights

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// A Transcoding reads the blocks of one ggml type as constexpr_blockwise_shift_scale
// (coremltools mil/ops/defs/iOS18/compression.py: output = scale·(data − offset), one
// scale and offset per block of Block elements along the input dimension; data int4,
// uint4, int8 or uint8; offset of the data's dtype or fp16). The op has no 2-, 3-, 5- or
// 6-bit dtype, so wider quants take int8 (docs/quantization.md gives each type's cost).
//
// Every ggml block format decodes as y = fl(s·q) − m per sub-block (ggml-quants.c,
// dequantize_row_*): q an integer quant, s the sub-block's scale (d, or d·sc for the
// K-quants and IQ4_XS, a float32 product of an fp16 and a small integer) and m its min (0
// for the symmetric types). The transcoding keeps q as the data (shifted by an integer for
// the asymmetric types) and stores s and the offset as fp16, so no quant is rounded a
// second time: the only difference from ggml's values is the fp16 rounding of s and of
// the offset. Bound states it.
type Transcoding struct {
	// Encoding is Blockwise (the quants are the data) or LUTBlockwise (n-bit indices into
	// Codes, a table of the quants' values, are the data of the lut op that feeds the
	// blockwise op).
	Encoding string
	DType    string // Blockwise: data int4 or int8; LUTBlockwise: indices uint2…uint6
	Offset   string // "" (symmetric) or "fp16"
	Block    int    // elements per scale: the ggml sub-block
	// Codes (LUTBlockwise) is the int8 table the indices select: 2^bits values, those of
	// the type's quants (a range of integers, or IQ4's codebook).
	Codes []int32
	// Bound is the largest |Δ| from ggml's value fl(s·q) − m for one element: 2⁻¹¹ is half
	// an fp16 ulp relative to the value rounded (the scale, or the offset's product).
	Bound string
	// unpack reads one ggml block: its quants, in element order, into q, and the scale s
	// and min m of each sub-block as ggml computes them in float32.
	unpack func(b []byte, q []int32, s, m []float32)
	qmax   int32 // asymmetric types: quants lie in [0, qmax]
	halves []int // byte offsets of the block's fp16 fields (d, dmin or m)
	// factor, for the K-quants and IQ4_XS, reads a block's sub-block scales as the integer
	// codes ggml stores (into codes, one int8 per sub-block) and returns the fp16 bits of
	// the factor they multiply, the block's d: the factored scales (TensorInfo.ScaleGroup);
	// ok is false for a block with a sub-block that is a constant (see Factorable).
	factor func(b []byte, codes []byte) (d uint16, ok bool)
}

// Bounds of the transcodings, as the manifest states them (TensorInfo.Bound).
const (
	BoundExact    = "exact"
	BoundScale    = "|Δ| ≤ 2⁻¹¹·|s·q|: fp16 rounding of the sub-block scale s = d·sc"
	BoundOffset   = "|Δ| ≤ 2⁻¹¹·(|d|·max|q − k| + |m − d·k|), max over the type's quants 0…qmax: fp16 rounding of the offset m/d − k (k: the block's integer shift)"
	BoundScaleMin = "|Δ| ≤ 2⁻¹¹·(|s|·max|q − k| + |m − s·k|), max over the type's quants 0…qmax: fp16 rounding of the scale s = d·sc and of the offset m/s − k (m = dmin·mn; k: the sub-block's integer shift)"
)

// transcodings lists every ggml type the gguf scheme reads without a second rounding.
// Types not listed (the IQ1–IQ3 grids, TQ*, MXFP4, Q8_1, Q8_K) have no such form: their
// codebooks are vectors of 4–8 values or their quants are not integers times a scale.
var transcodings = map[ggml.Type]Transcoding{
	ggml.Q4_0:   {Blockwise, "int4", "", 32, nil, BoundExact, unpackQ4_0, 0, []int{0}, nil},
	ggml.Q4_1:   {Blockwise, "int4", "fp16", 32, nil, BoundOffset, unpackQ4_1, 15, []int{0, 2}, nil},
	ggml.Q5_0:   {LUTBlockwise, "uint6", "", 32, codeRange(-16, 64), BoundExact, unpackQ5_0, 0, []int{0}, nil},
	ggml.Q5_1:   {LUTBlockwise, "uint6", "fp16", 32, codeRange(-16, 64), BoundOffset, unpackQ5_1, 31, []int{0, 2}, nil},
	ggml.Q8_0:   {Blockwise, "int8", "", 32, nil, BoundExact, unpackQ8_0, 0, []int{0}, nil},
	ggml.Q2_K:   {LUTBlockwise, "uint2", "fp16", 16, codeRange(-2, 4), BoundScaleMin, unpackQ2_K, 3, []int{80, 82}, factorQ2_K},
	ggml.Q3_K:   {LUTBlockwise, "uint3", "", 16, codeRange(-4, 8), BoundScale, unpackQ3_K, 0, []int{108}, factorQ3_K},
	ggml.Q4_K:   {Blockwise, "int4", "fp16", 32, nil, BoundScaleMin, unpackQ4_K, 15, []int{0, 2}, factorQ4_K},
	ggml.Q5_K:   {LUTBlockwise, "uint6", "fp16", 32, codeRange(-16, 64), BoundScaleMin, unpackQ5_K, 31, []int{0, 2}, factorQ5_K},
	ggml.Q6_K:   {LUTBlockwise, "uint6", "", 16, codeRange(-32, 64), BoundScale, unpackQ6_K, 0, []int{208}, factorQ6_K},
	ggml.IQ4_NL: {LUTBlockwise, "uint4", "", 32, iq4nlValues[:], BoundExact, unpackIQ4_NL, 0, []int{0}, nil},
	ggml.IQ4_XS: {LUTBlockwise, "uint4", "", 32, iq4nlValues[:], BoundScale, unpackIQ4_XS, 0, []int{0}, factorIQ4_XS},
}

// TranscodingOf returns how ggml type t reads as blockwise arrays; false: it has no such form.
func TranscodingOf(t ggml.Type) (Transcoding, bool) {
	tr, ok := transcodings[t]
	return tr, ok
}

// Unpack reads one ggml block of the transcoding's type: its quants, in element order,
// into q, and the scale s and min m of each sub-block as ggml computes them in float32
// (ggml's value of element e is fl(s·q) − m).
func (tr Transcoding) Unpack(b []byte, q []int32, s, m []float32) { tr.unpack(b, q, s, m) }

// BlockError is a ggml block that cannot be transcoded: a non-finite scale, or a scale or
// offset beyond fp16's range. Row and Block count from the rows given to Rows.
type BlockError struct {
	Row, Block int
	NonFinite  bool
	Msg        string
}

func (e *BlockError) Error() string { return fmt.Sprintf("row %d block %d: %s", e.Row, e.Block, e.Msg) }

// Rows transcodes raw, whole rows of in elements of type t (the transcoding's), into the
// data levels q (row-major, len rows·in), the fp16 scales (one per Block elements) and,
// for an asymmetric type, the fp16 offsets off (same length as scale; nil otherwise). No
// quant is rounded again: q holds ggml's quants, shifted by an integer per sub-block for
// the asymmetric types (see scaleOffset).
func (tr Transcoding) Rows(t ggml.Type, raw []byte, in int, q []int32, scale, off []uint16) error {
	be, bb := t.BlockElems(), t.BlockBytes()
	nsub := be / tr.Block
	nblk := len(q) / be
	var s, m [16]float32
	for b := range nblk {
		qb := q[b*be : (b+1)*be]
		tr.unpack(raw[b*bb:(b+1)*bb], qb, s[:nsub], m[:nsub])
		fail := func(nonFinite bool, format string, a ...any) error {
			return &BlockError{Row: b * be / in, Block: b % (in / be), NonFinite: nonFinite, Msg: fmt.Sprintf(format, a...)}
		}
		for k := range nsub {
			i := b*nsub + k
			if !finite(s[k]) || !finite(m[k]) {
				return fail(true, "non-finite scale (d or dmin is NaN or Inf)")
			}
			scale[i] = toF16(s[k])
			if !finite(f16ToF32(scale[i])) {
				return fail(false, "scale %g overflows fp16", s[k])
			}
			if off == nil {
				continue
			}
			qs := qb[k*tr.Block : (k+1)*tr.Block]
			switch {
			case f16ToF32(scale[i]) != 0:
				// s·q − m = s·(q − sh) − (m − s·sh): an integer shift of the quants near
				// m/s leaves a small offset, which fp16 holds to a fine step (2⁻¹¹ of it).
				// The shift and the offset are chosen for the type's range of quants
				// [0, qmax], which every sub-block's quants lie in.
				// One code table serves a lut+blockwise tensor: its codes are the quants
				// shifted by the middle of their range (−Codes[0]) in every sub-block.
				var sh int32
				if tr.Encoding == LUTBlockwise {
					sh = -tr.Codes[0]
				} else {
					sh = shiftFor(tr.DType, 0, tr.qmax, float64(m[k])/float64(s[k]))
				}
				for e := range qs {
					qs[e] -= sh
				}
				scale[i], off[i] = scaleOffset(s[k], float64(m[k])-float64(s[k])*float64(sh), -sh, tr.qmax-sh)
			case m[k] == 0:
				off[i] = 0
				if tr.Encoding == LUTBlockwise {
					clear(qs) // zero scale: any code will do, and the table holds 0
				}
			default:
				// A constant sub-block −m (scale 0): m·(0 − 1) with zero quants.
				scale[i], off[i] = toF16(m[k]), toF16(1)
				clear(qs)
			}
			if !finite(f16ToF32(off[i])) || !finite(f16ToF32(scale[i])) {
				return fail(false, "offset m/s = %g/%g overflows fp16", m[k], s[k])
			}
		}
	}
	return nil
}

func toF16(f float32) uint16 { return f16Nearest(float64(f)) }

// f16Nearest rounds x to the nearest fp16, ties to even (IEEE 754 roundTiesToEven, as
// float16.Fromfloat32 rounds a float32), straight from float64: rounding through float32
// first could round twice. Beyond fp16's range it gives ±Inf; NaN stays NaN.
func f16Nearest(x float64) uint16 {
	if h, ok := f16Normal(x); ok {
		return h
	}
	return f16Outside(x)
}

// f16Normal is f16Nearest for x within fp16's normal range, and false outside it: small
// enough to inline into the transcodings' loops, which call f16Outside themselves.
func f16Normal(x float64) (uint16, bool) {
	b := math.Float64bits(x)
	// Rebias the exponent (1023 → 15) and round away the 42 fraction bits fp16 has not:
	// adding half an fp16 ulp less one, plus the kept lowest bit, rounds to nearest even,
	// and a carry out of the fraction raises the exponent (to Inf past 65504).
	a := b&^(1<<63) - (1023-15)<<52
	if a-1<<52 >= 30<<52 { // fp16 exponent not in 1…30
		return 0, false
	}
	a += 1<<41 - 1 + a>>42&1
	return uint16(b>>48)&0x8000 | uint16(a>>42), true
}

// f16Outside is f16Nearest for |x| below fp16's normal range (a multiple of 2⁻²⁴, 1024·2⁻²⁴
// being the least normal) or from 2¹⁶ on (Inf), and for NaN.
//
//go:noinline
func f16Outside(x float64) uint16 {
	sign := uint16(math.Float64bits(x)>>48) & 0x8000
	switch a := math.Abs(x); {
	case a < 0x1p-14:
		return sign | uint16(math.RoundToEven(a*0x1p24))
	case math.IsNaN(x):
		return sign | 0x7e00
	}
	return sign | 0x7c00
}

// f16ToF32 widens an fp16 through a table of every bit pattern (exact).
func f16ToF32(h uint16) float32 { return f16Table[h] }

var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return &t
}()

// finiteF16 widens a finite fp16 (exponent not all ones) without the table, whose 256 KB
// random accesses miss the caches in the per-sub-block loops: the fp16 bits shifted into
// a float32's are the value times 2⁻¹¹² (subnormals included), and the product by 2¹¹² is
// exact.
func finiteF16(h uint16) float32 {
	v := math.Float32frombits(uint32(h&0x7fff)<<13) * 0x1p112
	if h&0x8000 != 0 {
		return -v
	}
	return v
}

func f16le(b []byte) float32 { return f16ToF32(binary.LittleEndian.Uint16(b)) }

func unpackQ4_0(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), 0
	for i, v := range b[2:18] {
		q[i], q[i+16] = int32(v&0xF)-8, int32(v>>4)-8
	}
}

func unpackQ4_1(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), -f16le(b[2:]) // y = q·d + m
	for i, v := range b[4:20] {
		q[i], q[i+16] = int32(v&0xF), int32(v>>4)
	}
}

// Q5_0 and Q5_1: bit j of the u32 qh is the 5th bit of element j.
func unpackQ5_0(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), 0
	qh := binary.LittleEndian.Uint32(b[2:])
	for i, v := range b[6:22] {
		q[i] = int32(v&0xF|byte(qh>>i&1)<<4) - 16
		q[i+16] = int32(v>>4|byte(qh>>(i+16)&1)<<4) - 16
	}
}

func unpackQ5_1(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), -f16le(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	for i, v := range b[8:24] {
		q[i] = int32(v&0xF | byte(qh>>i&1)<<4)
		q[i+16] = int32(v>>4 | byte(qh>>(i+16)&1)<<4)
	}
}

func unpackQ8_0(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), 0
	for i, v := range b[2:34] {
		q[i] = int32(int8(v))
	}
}

// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min, one byte per 16
// elements); qs[64]; d; dmin. Element 128h+32j+l takes the 2 bits at shift 2j of
// qs[32h+l].
func unpackQ2_K(b []byte, q []int32, s, m []float32) {
	d, dmin := f16le(b[80:]), f16le(b[82:])
	for i, sc := range b[:16] {
		s[i], m[i] = d*float32(sc&0xF), dmin*float32(sc>>4)
	}
	for h := range 2 {
		for j := range 4 {
			for l, v := range b[16+32*h : 48+32*h] {
				q[128*h+32*j+l] = int32(v >> (2 * j) & 3)
			}
		}
	}
}

// Q3_K (110 bytes): hmask[32]; qs[64]; scales[12] (16 six-bit scales biased by 32); d.
// Element 128h+32j+l is its 2 bits at shift 2j of qs[32h+l], minus 4 when bit 4h+j of
// hmask[l] is clear.
func unpackQ3_K(b []byte, q []int32, s, m []float32) {
	sc, d := b[96:108], f16le(b[108:])
	for i := range 16 {
		low4 := sc[i%8] >> (4 * (i / 8)) & 0xF
		high2 := sc[8+i%4] >> (2 * (i / 4)) & 3
		s[i], m[i] = d*float32(int32(low4|high2<<4)-32), 0
	}
	for h := range 2 {
		for j := range 4 {
			for l, v := range b[32+32*h : 64+32*h] {
				q[128*h+32*j+l] = int32(v>>(2*j)&3) - 4 + 4*int32(b[l]>>(4*h+j)&1)
			}
		}
	}
}

// kScaleMin unpacks the 6-bit scale and min of sub-block k of a Q4_K or Q5_K block's 12
// packed bytes (ggml-quants.c, get_scale_min_k4).
func kScaleMin(k int, s []byte) (sc, mn byte) {
	if k < 4 {
		return s[k] & 63, s[k+4] & 63
	}
	return s[k+4]&0xF | (s[k-4]>>6)<<4, s[k+4]>>4 | (s[k]>>6)<<4
}

// Q4_K (144 bytes): d; dmin; scales[12]; qs[128]. Elements 64c+l and 64c+32+l are the low
// and high nibbles of qs[32c+l]; y = d·sc·q − dmin·mn per sub-block of 32.
func unpackQ4_K(b []byte, q []int32, s, m []float32) {
	d, dmin := f16le(b), f16le(b[2:])
	for k := range 8 {
		sc, mn := kScaleMin(k, b[4:16])
		s[k], m[k] = d*float32(sc), dmin*float32(mn)
	}
	for c := range 4 {
		for l, v := range b[16+32*c : 48+32*c] {
			q[64*c+l], q[64*c+32+l] = int32(v&0xF), int32(v>>4)
		}
	}
}

// Q5_K (176 bytes): Q4_K with qh[32] before qs: the 5th bit of element 64c+l is bit 2c of
// qh[l], of element 64c+32+l bit 2c+1.
func unpackQ5_K(b []byte, q []int32, s, m []float32) {
	d, dmin := f16le(b), f16le(b[2:])
	for k := range 8 {
		sc, mn := kScaleMin(k, b[4:16])
		s[k], m[k] = d*float32(sc), dmin*float32(mn)
	}
	qh := b[16:48]
	for c := range 4 {
		for l, v := range b[48+32*c : 80+32*c] {
			q[64*c+l] = int32(v&0xF | (qh[l]>>(2*c)&1)<<4)
			q[64*c+32+l] = int32(v>>4 | (qh[l]>>(2*c+1)&1)<<4)
		}
	}
}

// Q6_K (210 bytes): ql[128]; qh[64]; scales[16] int8 (one per 16 elements); d. In half h,
// element 128h+32k+l takes 4 bits of ql[64h+l+32(k%2)] (high nibble for k ≥ 2) and bits
// 2k, 2k+1 of qh[32h+l]; y = d·sc·(q − 32).
func unpackQ6_K(b []byte, q []int32, s, m []float32) {
	d := f16le(b[208:])
	for i, sc := range b[192:208] {
		s[i], m[i] = d*float32(int8(sc)), 0
	}
	for h := range 2 {
		ql, qh := b[64*h:64*h+64], b[128+32*h:160+32*h]
		for l := range 32 {
			H := qh[l]
			q[128*h+l] = int32(ql[l]&0xF|(H&3)<<4) - 32
			q[128*h+32+l] = int32(ql[l+32]&0xF|(H>>2&3)<<4) - 32
			q[128*h+64+l] = int32(ql[l]>>4|(H>>4&3)<<4) - 32
			q[128*h+96+l] = int32(ql[l+32]>>4|(H>>6&3)<<4) - 32
		}
	}
}

// iq4nlValues is IQ4_NL's fixed non-linear codebook (ggml-common.h, kvalues_iq4nl): the
// data holds the codebook value itself, an int8.
var iq4nlValues = [16]int32{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// IQ4_NL (18 bytes): d; qs[16], low nibbles elements 0…15, high nibbles 16…31, each an
// index into the codebook; y = d·value.
func unpackIQ4_NL(b []byte, q []int32, s, m []float32) {
	s[0], m[0] = f16le(b), 0
	for i, v := range b[2:18] {
		q[i], q[i+16] = iq4nlValues[v&0xF], iq4nlValues[v>>4]
	}
}

// IQ4_XS (136 bytes): d; scales_h u16; scales_l[4]; qs[128]. Sub-block k of 32 has the
// 6-bit scale ls (low 4 bits in scales_l, high 2 in scales_h) and s = d·(ls − 32); its
// 16 bytes of qs are laid out as an IQ4_NL block's.
func unpackIQ4_XS(b []byte, q []int32, s, m []float32) {
	d, sh := f16le(b), binary.LittleEndian.Uint16(b[2:])
	for k := range 8 {
		ls := int32(b[4+k/2]>>(4*(k%2))&0xF) | int32(sh>>(2*k)&3)<<4
		s[k], m[k] = d*float32(ls-32), 0
		for i, v := range b[8+16*k : 24+16*k] {
			q[32*k+i], q[32*k+16+i] = iq4nlValues[v&0xF], iq4nlValues[v>>4]
		}
	}
}

// ScaleGroup is the number of sub-block scales that share one factor when the type's
// scales are stored factored (its sub-blocks per ggml block), 0 when they are fp16.
func (tr Transcoding) ScaleGroup(t ggml.Type) int {
	if tr.factor == nil {
		return 0
	}
	return t.BlockElems() / tr.Block
}

// factors writes the factored scales of whole blocks raw of type t: each sub-block's
// integer scale code into codes and each block's d into d. The scales Rows computes are
// fp16(d·code), which is what constexpr_blockwise_shift_scale makes of them. ok is false,
// the arrays unfinished, at the first block that is not Factorable.
func (tr Transcoding) factors(t ggml.Type, raw, codes []byte, d []uint16) (ok bool) {
	bb, nsub := t.BlockBytes(), t.BlockElems()/tr.Block
	for b := range len(raw) / bb {
		if d[b], ok = tr.factor(raw[b*bb:(b+1)*bb], codes[b*nsub:(b+1)*nsub]); !ok {
			return false
		}
	}
	return true
}

// Factorable reports whether every sub-block of raw (whole blocks of type t, a type with
// factored scales) has its scale fp16(d·code): not so for a sub-block whose scale rounds to
// zero while its min does not (ggml's values are then the constant −m, which Rows writes
// with the scale m), which a tensor with factored scales cannot hold.
func (tr Transcoding) Factorable(t ggml.Type, raw []byte) bool {
	if tr.Offset == "" || tr.factor == nil {
		return true // no mins
	}
	codes := make([]byte, t.BlockElems()/tr.Block)
	bb := t.BlockBytes()
	for b := 0; b+bb <= len(raw); b += bb {
		if _, ok := tr.factor(raw[b:b+bb], codes); !ok {
			return false
		}
	}
	return true
}

// constantSub reports whether a sub-block with scale code sc and min code mn, in a block
// whose d and dmin have the fp16 bits dBits and dminBits, is the constant −dmin·mn that
// factored scales cannot hold: fp16(d·sc) is 0 exactly when d or sc is (any other |d·sc|
// is at least the least fp16 subnormal, 2⁻²⁴), while the min is not 0.
func constantSub(dBits, dminBits uint16, sc, mn byte) bool {
	return (sc == 0 || dBits&0x7fff == 0) && mn != 0 && dminBits&0x7fff != 0
}

// factorQ2_K: the low nibbles of scales[16] and d at 80 (unpackQ2_K); the high nibbles are
// the mins, dmin at 82.
func factorQ2_K(b, codes []byte) (uint16, bool) {
	d, dmin := binary.LittleEndian.Uint16(b[80:]), binary.LittleEndian.Uint16(b[82:])
	ok := true
	for i, sc := range b[:16] {
		codes[i] = sc & 0xF
		ok = ok && !constantSub(d, dmin, sc&0xF, sc>>4)
	}
	return d, ok
}

// factorQ4_K and factorQ5_K: the 6-bit scales of get_scale_min_k4 and d at 0 (unpackQ4_K),
// dmin at 2.
func factorQ4_K(b, codes []byte) (uint16, bool) {
	d, dmin := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:])
	ok := true
	for k := range 8 {
		var mn byte
		codes[k], mn = kScaleMin(k, b[4:16])
		ok = ok && !constantSub(d, dmin, codes[k], mn)
	}
	return d, ok
}

func factorQ5_K(b, codes []byte) (uint16, bool) { return factorQ4_K(b, codes) }

// factorQ6_K: the int8 scales[16] at 192 and d at 208 (unpackQ6_K).
func factorQ6_K(b, codes []byte) (uint16, bool) {
	copy(codes, b[192:208])
	return binary.LittleEndian.Uint16(b[208:]), true
}

// factorQ3_K: the 16 six-bit scales biased by 32 and d at 108 (unpackQ3_K).
func factorQ3_K(b, codes []byte) (uint16, bool) {
	sc := b[96:108]
	for i := range 16 {
		low4 := sc[i%8] >> (4 * (i / 8)) & 0xF
		high2 := sc[8+i%4] >> (2 * (i / 4)) & 3
		codes[i] = byte(int8(low4|high2<<4) - 32)
	}
	return binary.LittleEndian.Uint16(b[108:]), true
}

// factorIQ4_XS: the eight six-bit scales ls − 32 and d at 0 (unpackIQ4_XS).
func factorIQ4_XS(b, codes []byte) (uint16, bool) {
	sh := binary.LittleEndian.Uint16(b[2:])
	for k := range 8 {
		ls := int32(b[4+k/2]>>(4*(k%2))&0xF) | int32(sh>>(2*k)&3)<<4
		codes[k] = byte(int8(ls - 32))
	}
	return binary.LittleEndian.Uint16(b), true
}

// scaleOffset picks the fp16 scale S and offset O of a sub-block whose ggml values are
// s·q − m for its quants, which lie in [lo, hi]: S = fp16(s), and O the fp16 nearest
// O* = (m + (S − s)·mid)/S, mid the middle of the range. The error S·(q − O) − (s·q − m) is
// (S − s)·(q − mid) + S·(O* − O), so its largest magnitude over the range, at the range's
// ends, is |S − s|·(hi − lo)/2 + |S|·|O* − O|: least for the fp16 O nearest O*, and no more
// than with the plain O = fp16(m/S), whose error the bound states.
func scaleOffset(s float32, m float64, lo, hi int32) (scale, off uint16) {
	scale = toF16(s)
	return scale, f16Nearest(bestOffset(s, m, scale, lo, hi))
}

// bestOffset is scaleOffset's O* for the finite, non-zero fp16 scale S.
func bestOffset(s float32, m float64, S uint16, lo, hi int32) float64 {
	sc := float64(finiteF16(S))
	return (m + (sc-float64(s))*float64(lo+hi)/2) / sc
}

// shiftFor returns the integer k nearest o such that every q − k of quants in [lo, hi]
// fits the data dtype (int4 or int8).
func shiftFor(dtype string, lo, hi int32, o float64) int32 {
	top := int32(7)
	if dtype == "int8" {
		top = 127
	}
	k := int32(max(-1<<20, min(1<<20, math.Round(o))))
	return max(hi-top, min(lo+top+1, k))
}

func finite(v float32) bool { return !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) }

// FiniteScales reports whether every block of raw (whole blocks of type t, the
// transcoding's) has finite fp16 fields (d, dmin or m): a cheap test for corrupt blocks,
// which Rows then names.
func (tr Transcoding) FiniteScales(t ggml.Type, raw []byte) bool {
	bb := t.BlockBytes()
	whole := raw[:len(raw)/bb*bb]
	// Without a branch per field: an all-ones exponent (Inf or NaN) plus 0x0400 carries
	// into bit 15, which no other exponent reaches.
	var bad uint16
	for _, at := range tr.halves {
		for b := at; b < len(whole); b += bb {
			bad |= binary.LittleEndian.Uint16(whole[b:])&0x7c00 + 0x0400
		}
	}
	return bad&0x8000 == 0
}

// dataBytes is the size of n data levels.
func (tr Transcoding) dataBytes(n int) int {
	if tr.Encoding == LUTBlockwise {
		return (n*indexBits(tr.DType) + 7) / 8
	}
	if tr.DType == "int8" {
		return n
	}
	return (n + 1) / 2
}

// pack writes data levels q, elements e0 (even) on of the data array dst: 4-bit values
// two a byte, element 2k in the low nibble (MIL's sub-byte packing); 8-bit values one a
// byte.
func (tr Transcoding) pack(dst []byte, e0 int, q []int32) {
	if tr.Encoding == LUTBlockwise {
		packCodes(dst, e0, q, tr.DType, tr.Codes)
		return
	}
	if tr.DType == "int8" {
		for i, v := range q {
			dst[e0+i] = byte(v)
		}
		return
	}
	d := dst[e0/2:]
	for i := 0; i+1 < len(q); i += 2 {
		d[i/2] = byte(q[i]&0xF) | byte(q[i+1]&0xF)<<4
	}
	if len(q)%2 == 1 {
		d[len(q)/2] = byte(q[len(q)-1] & 0xF)
	}
}

// f16View views b, whose length is even, as the fp16 bit patterns it will hold as
// little-endian bytes once littleEndian has run on them: the same memory, so that the
// transcodings write a blob's bytes in place.
func f16View(b []byte) []uint16 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// littleEndian puts h, written through f16View, in little-endian byte order: nothing to do
// on a little-endian host (every platform lilims is built for), a swap on a big-endian one.
func littleEndian(h []uint16) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return
	}
	for i, v := range h {
		h[i] = v>>8 | v<<8
	}
}
