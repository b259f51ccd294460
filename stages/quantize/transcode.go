package quantize

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// A transcoding reads the blocks of one ggml type as constexpr_blockwise_shift_scale
// (coremltools mil/ops/defs/iOS18/compression.py: output = scale·(data − offset), one
// scale and offset per block of `block` elements along the input dimension; data int4,
// uint4, int8 or uint8; offset of the data's dtype or fp16).
//
// Every ggml block format decodes as y = fl(s·q) − m per sub-block (ggml-quants.c,
// dequantize_row_*): q an integer quant, s the sub-block's scale (d, or d·sc for the
// K-quants, a float32 product of an fp16 and a small integer) and m its min (0 for the
// symmetric types). The transcoding keeps q as the data and stores s and m/s as fp16,
// so no quant is rounded a second time: the only difference from ggml's values is the
// fp16 rounding of s (K-quants, IQ4_XS) and of the offset m/s (asymmetric types).
type transcoding struct {
	dtype  string // data: int4, uint4, int8 or uint8
	offset string // "" (symmetric) or "fp16"
	block  int    // elements per scale: the ggml sub-block
	// bound is the largest |Δ| from ggml's value fl(s·q) − m for one element: 2⁻¹¹ is half
	// an fp16 ulp relative to the value rounded (s, or the offset's product s·(m/s)).
	bound string
	// unpack reads one ggml block: its quants, in element order, into q, and the scale s
	// and min m of each sub-block as ggml computes them in float32.
	unpack func(b []byte, q []int32, s, m []float32)
}

// Bounds of the transcodings, as the manifest and docs/quantization.md state them.
const (
	boundExact    = "exact"
	boundScale    = "|Δ| ≤ 2⁻¹¹·|s·q|: fp16 rounding of the sub-block scale s = d·sc"
	boundOffset   = "|Δ| ≤ 2⁻¹¹·(|d|·max|q − k| + |m − d·k|) over each block: fp16 rounding of the offset m/d − k (k: the block's integer shift)"
	boundScaleMin = "|Δ| ≤ 2⁻¹¹·(|s|·max|q − k| + |m − s·k|) over each sub-block: fp16 rounding of the scale s = d·sc and of the offset m/s − k (m = dmin·mn; k: the sub-block's integer shift)"
)

// transcodings lists every ggml type the gguf scheme reads without a second rounding.
// Types not listed (the IQ1–IQ3 grids, TQ*, MXFP4, Q8_1, Q8_K) have no such form: their
// codebooks are vectors of 4–8 values or their quants are not integers times a scale.
var transcodings = map[ggml.Type]transcoding{
	ggml.Q4_0:   {"int4", "", 32, boundExact, unpackQ4_0},
	ggml.Q4_1:   {"int4", "fp16", 32, boundOffset, unpackQ4_1},
	ggml.Q5_0:   {"int8", "", 32, boundExact, unpackQ5_0},
	ggml.Q5_1:   {"int8", "fp16", 32, boundOffset, unpackQ5_1},
	ggml.Q8_0:   {"int8", "", 32, boundExact, unpackQ8_0},
	ggml.Q2_K:   {"int4", "fp16", 16, boundScaleMin, unpackQ2_K},
	ggml.Q3_K:   {"int4", "", 16, boundScale, unpackQ3_K},
	ggml.Q4_K:   {"int4", "fp16", 32, boundScaleMin, unpackQ4_K},
	ggml.Q5_K:   {"int8", "fp16", 32, boundScaleMin, unpackQ5_K},
	ggml.Q6_K:   {"int8", "", 16, boundScale, unpackQ6_K},
	ggml.IQ4_NL: {"int8", "", 32, boundExact, unpackIQ4_NL},
	ggml.IQ4_XS: {"int8", "", 32, boundScale, unpackIQ4_XS},
}

// Transcodable reports whether scheme gguf transcodes ggml type t.
func Transcodable(t ggml.Type) bool { _, ok := transcodings[t]; return ok }

// ggufChoice decides a 2-D weight's encoding under scheme gguf (or auto): a transcodable
// type is transcoded; an F32/F16/BF16 one stays fp16 (no blocks to transcode) unless a
// fallback is set; any other quantized type needs the fallback, which re-quantizes its
// dequantized values. done reports that j is fully decided (transcoded or fp16);
// otherwise choice names the fallback scheme for Config.choose.
func (c *Config) ggufChoice(j *job) (choice string, done bool, err error) {
	t := j.src
	if tr, ok := transcodings[t.Type]; ok && t.Shape[0]%int64(tr.block) == 0 {
		j.trans = true
		j.info.Encoding, j.info.DType, j.info.Offset, j.info.BlockSize = Blockwise, tr.dtype, tr.offset, tr.block
		j.info.SourceType, j.info.Bound = t.Type.String(), tr.bound
		j.info.Note = t.Type.String() + " transcoded"
		return "", true, nil
	}
	fallback := c.Fallback
	switch t.Type {
	case ggml.F32, ggml.F16, ggml.BF16:
		if fallback == "" {
			j.info.Note = t.Type.String() + " source: kept fp16 (no blocks to transcode; set fallback to quantize it)"
			return "", true, nil
		}
	default:
		if fallback == "" && c.Scheme == "auto" {
			// auto never fails a model: what it cannot transcode stays fp16 (ggml's values).
			fallback = "fp16"
		}
		if fallback == "" {
			return "", false, fmt.Errorf("tensor %q: scheme gguf cannot transcode %v without loss beyond fp16 rounding "+
				"(Core ML's constexpr ops have no form for its blocks); set fallback: fp16 (ggml's values, 16 bits), "+
				"int8, block, channel or lut4 (re-quantized)", t.Name, t.Type)
		}
	}
	j.info.Note = t.Type.String() + ": fallback " + fallback
	if fallback == "fp16" {
		return "", true, nil
	}
	return fallback, false, nil
}

func f16le(b []byte) float32 { return f16Table[binary.LittleEndian.Uint16(b)] }

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

// transcode writes one chunk of a transcoded tensor: each ggml block's quants as the data
// and its sub-blocks' scales (and offsets) in fp16. The error is measured against ggml's
// own dequantization of the same rows (ggml.DequantizeRow). A sub-block whose scale or min
// is not finite (a corrupt d or dmin) is refused, naming the tensor, row and block, as is
// one whose fp16 scale or offset would overflow (a fallback then handles the tensor).
func (ws *workspace) transcode(f *gguf.File, c chunk, w *qweights.Writer) (errSum, sigSum float64, err error) {
	j := c.j
	t := j.src
	tr := transcodings[t.Type]
	in, rows := j.info.Shape[1], c.r1-c.r0
	rowBytes, err := t.Type.RowBytes(int64(in))
	if err != nil {
		return 0, 0, err
	}
	raw := f.Data(t)[int64(c.r0)*rowBytes : int64(c.r1)*rowBytes]
	if t.Type == ggml.Q4_0 {
		if ok, err := ws.transcodeQ4_0(w, j, c.r0, raw, rows*in/32); ok || err != nil {
			return 0, 0, err
		}
		// A non-finite scale: the general loop below names its block.
	}
	be, bb := t.Type.BlockElems(), t.Type.BlockBytes()
	nsub := be / tr.block // sub-blocks of a ggml block
	nblk := rows * in / be
	ws.q = grow(ws.q, rows*in)
	ws.scale = grow(ws.scale, nblk*nsub)
	var off []uint16
	if tr.offset != "" {
		off = make([]uint16, nblk*nsub)
	}
	ws.x = grow(ws.x, rows*in)
	if err := ggml.DequantizeRow(t.Type, raw, ws.x); err != nil {
		return 0, 0, err
	}
	var s, m [16]float32
	var maxErr float64
	for b := range nblk {
		q := ws.q[b*be : (b+1)*be]
		tr.unpack(raw[b*bb:(b+1)*bb], q, s[:nsub], m[:nsub])
		where := func() string {
			r := c.r0 + b*be/in
			return fmt.Sprintf("tensor %q (%v) row %d block %d", t.Name, t.Type, r, b%(in/be))
		}
		for k := range nsub {
			i := b*nsub + k
			if !finite(s[k]) || !finite(m[k]) {
				// The loader's error names the element too, when the scale reaches one.
				r := int64(c.r0 + b*be/in)
				err := f.DequantizeRows(t, r, 1, make([]float32, in))
				if err == nil {
					err = fmt.Errorf("corrupt data")
				}
				return 0, 0, fmt.Errorf("%s: non-finite scale (d or dmin is NaN or Inf): %w", where(), err)
			}
			ws.scale[i] = toF16(s[k])
			if !finite(f16Table[ws.scale[i]]) {
				return 0, 0, fmt.Errorf("%s: scale %g overflows fp16; set fallback: fp16 (or int8) to re-encode the tensor", where(), s[k])
			}
			if off == nil {
				continue
			}
			qs := q[k*tr.block : (k+1)*tr.block]
			switch sc := f16Table[ws.scale[i]]; {
			case sc != 0:
				// s·q − m = s·(q − sh) − (m − s·sh): an integer shift of the quants near
				// m/s leaves a small offset, which fp16 holds to a fine step (2⁻¹¹ of it).
				sh := shiftFor(tr.dtype, qs, float64(m[k])/float64(s[k]))
				for e := range qs {
					qs[e] -= sh
				}
				ws.scale[i], off[i] = scaleOffset(s[k], float64(m[k])-float64(s[k])*float64(sh), qs)
			case m[k] == 0:
				off[i] = 0
			default:
				// A constant sub-block −m (scale 0): m·(0 − 1) with zero quants.
				ws.scale[i], off[i] = toF16(m[k]), toF16(1)
				clear(qs)
			}
			if !finite(f16Table[off[i]]) || !finite(f16Table[ws.scale[i]]) {
				return 0, 0, fmt.Errorf("%s: offset m/s = %g/%g overflows fp16; set fallback: fp16 (or int8) to re-encode the tensor", where(), m[k], s[k])
			}
		}
		// Error of our representation against ggml's dequantization.
		ref := ws.x[b*be : (b+1)*be]
		for k := range nsub {
			i := b*nsub + k
			sc := f16Table[ws.scale[i]]
			var o float32
			if off != nil {
				o = f16Table[off[i]]
			}
			var es, ss float32 // float32 within a sub-block, float64 across them
			for e := k * tr.block; e < (k+1)*tr.block; e++ {
				d := ref[e] - float32(sc*(float32(q[e])-o)) // unfused, as in quantizeRow
				es += float32(d * d)
				ss += float32(ref[e] * ref[e])
				maxErr = max(maxErr, math.Abs(float64(d)))
			}
			errSum += float64(es)
			sigSum += float64(ss)
		}
	}
	c.state.noteMaxErr(maxErr)
	return errSum, sigSum, ws.writeBlockwise(w, j, c.r0, rows, off)
}

// scaleOffset picks the fp16 scale S and offset O of a sub-block whose ggml values are
// s·q − m for its quants qs: of S = fp16(s) and its two neighbours, and for each of O =
// fp16 of the offset that balances S's rounding over the quants' range and its two
// neighbours, the pair whose largest |S·(q − O) − (s·q − m)| over that range is least.
// The error is linear in q, so it is largest at the range's ends. The plain pair (fp16(s),
// fp16(m/fp16(s))) is among the candidates, so the result stays within its bound.
func scaleOffset(s float32, m float64, qs []int32) (scale, off uint16) {
	lo, hi := slices.Min(qs), slices.Max(qs)
	mid := float64(lo+hi) / 2
	best := math.Inf(1)
	s0 := toF16(s)
	for _, S := range []uint16{s0, s0 - 1, s0 + 1} {
		sc := float64(f16Table[S])
		if S&0x7fff == 0 || S&0x7fff >= 0x7c00 || (S^s0)&0x8000 != 0 || !finite(f16Table[S]) {
			continue // no zero, Inf or sign change from a neighbour
		}
		// S·(q − O) = s·q − m at q = mid: O = (m + (S − s)·mid)/S.
		o0 := toF16(float32((m + (sc-float64(s))*mid) / sc))
		for _, O := range []uint16{o0, o0 - 1, o0 + 1, toF16(float32(m / sc))} {
			o := float64(f16Table[O])
			if !finite(f16Table[O]) || (O^o0)&0x8000 != 0 && O&0x7fff != 0 {
				continue
			}
			e := max(math.Abs(sc*(float64(lo)-o)-(float64(s)*float64(lo)-m)),
				math.Abs(sc*(float64(hi)-o)-(float64(s)*float64(hi)-m)))
			if e < best {
				best, scale, off = e, S, O
			}
		}
	}
	return scale, off
}

// shiftFor returns the integer k nearest o such that every q − k of qs fits the data
// dtype (int4 or int8).
func shiftFor(dtype string, qs []int32, o float64) int32 {
	lo, hi := slices.Min(qs), slices.Max(qs)
	top := int32(7)
	if dtype == "int8" {
		top = 127
	}
	k := int32(max(-1<<20, min(1<<20, math.Round(o))))
	return max(hi-top, min(lo+top+1, k))
}

func finite(v float32) bool { return !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) }

// noteMaxErr records a chunk's largest |Δ| in the tensor's.
func (st *tensorState) noteMaxErr(e float64) {
	st.mu.Lock()
	st.maxErr = max(st.maxErr, e)
	st.mu.Unlock()
}

// transcodeQ4_0 is transcode for Q4_0, as a byte shuffle. A Q4_0 block (ggml-common.h,
// block_q4_0) is an fp16 d and 16 bytes whose low nibbles are elements 0…15 and high
// nibbles elements 16…31, each q standing for d·(q − 8); our int4 is the signed level
// q − 8 in two's complement, which is q XOR 8 in the nibble, packed two elements a byte,
// element 2k in the low nibble. The scale is d itself, so every element dequantizes to
// exactly ggml's value and the error sum is exactly zero: RelRMSE is 0 whatever the
// signal, so neither sum is computed (transcode's loop would find the same zero). ok is
// false, with nothing written, if a block's d is not finite.
func (ws *workspace) transcodeQ4_0(w *qweights.Writer, j *job, r0 int, raw []byte, nblk int) (ok bool, err error) {
	ws.packed = grow(ws.packed, 16*nblk)
	ws.bytes = grow(ws.bytes, 2*nblk)
	for b := 0; b < nblk; b++ {
		blk := raw[18*b : 18*b+18]
		if binary.LittleEndian.Uint16(blk)&0x7c00 == 0x7c00 {
			return false, nil
		}
		ws.bytes[2*b], ws.bytes[2*b+1] = blk[0], blk[1]
		out := ws.packed[16*b : 16*b+16]
		for h := 0; h < 2; h++ {
			v := binary.LittleEndian.Uint64(blk[2+8*h:]) // elements 8h…8h+7 and 16+8h…
			binary.LittleEndian.PutUint32(out[4*h:], q4Pairs(v&0x0f0f0f0f0f0f0f0f))
			binary.LittleEndian.PutUint32(out[8+4*h:], q4Pairs(v>>4&0x0f0f0f0f0f0f0f0f))
		}
	}
	in, nb := j.info.Shape[1], j.info.Shape[1]/32
	if err := w.WriteTensorAt(j.info.Name+".data", int64(r0*in/2), ws.packed); err != nil {
		return true, err
	}
	return true, w.WriteTensorAt(j.info.Name+".scale", int64(2*r0*nb), ws.bytes)
}

// q4Pairs packs eight Q4_0 quants, one per byte of v (0…15), into four bytes of int4
// levels (q − 8, low nibble first): byte k gets quants 2k and 2k+1.
func q4Pairs(v uint64) uint32 {
	v ^= 0x0808080808080808             // q − 8 as a two's-complement nibble
	v = (v | v>>4) & 0x00ff00ff00ff00ff // pairs into the low byte of each 16 bits
	v = (v | v>>8) & 0x0000ffff0000ffff
	return uint32(v | v>>16)
}

// weightsSummary says in one line what happened to the model's weights, by source type:
// "weights: 14 Q4_K → blockwise uint4/32 (within fp16 rounding of scale and offset), …;
// kept fp16: 9 F32, 2 Q6_K (fallback fp16)". The count of a group is of tensors.
//
// Under scheme gguf, float weights kept as they are get a note saying so: they have no
// blocks to transcode, and a fallback would quantize them.
func weightsSummary(scheme string, jobs []*job) string {
	type group struct {
		key string
		n   int
	}
	var done, kept []*group
	add := func(gs *[]*group, key string) {
		for _, g := range *gs {
			if g.key == key {
				g.n++
				return
			}
		}
		*gs = append(*gs, &group{key, 1})
	}
	floats := 0 // 2-D float weights kept fp16
	for _, j := range jobs {
		src := j.src.Type.String()
		ti := &j.info
		if !j.quantized() && len(ti.Shape) == 2 && isWeight(j.src) &&
			(j.src.Type == ggml.F32 || j.src.Type == ggml.F16 || j.src.Type == ggml.BF16) {
			floats++
		}
		switch {
		case j.trans:
			how := "exact"
			switch ti.Bound {
			case boundScale:
				how = "within fp16 rounding of the scales"
			case boundOffset:
				how = "within fp16 rounding of the offsets"
			case boundScaleMin:
				how = "within fp16 rounding of scales and offsets"
			}
			add(&done, fmt.Sprintf("%s → blockwise %s/%d (%s)", src, ti.DType, ti.BlockSize, how))
		case ti.Encoding == Blockwise:
			add(&done, fmt.Sprintf("%s → blockwise %s/%d (re-quantized)", src, ti.DType, ti.BlockSize))
		case ti.Encoding == LUT:
			add(&done, fmt.Sprintf("%s → lut %s (re-quantized)", src, ti.DType))
		case len(ti.Shape) < 2:
			add(&kept, src+" 1-D")
		default:
			add(&kept, src)
		}
	}
	join := func(gs []*group) string {
		var s string
		for i, g := range gs {
			if i > 0 {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", g.n, g.key)
		}
		return s
	}
	out := "weights: " + join(done)
	switch {
	case len(done) == 0:
		out += "all kept fp16: " + join(kept)
	case len(kept) > 0:
		out += "; kept fp16: " + join(kept)
	}
	if floats > 0 && scheme == "gguf" {
		out += fmt.Sprintf(" (scheme %s transcodes ggml blocks: the %d float weights have none and stay fp16; "+
			"fallback: block, channel or lut4, or that scheme, quantizes them)", scheme, floats)
	}
	return out
}
