package quantize

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"
)

// f16Table widens every binary16 pattern to float32 (exact, IEEE 754 binary16).
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return &t
}()

// toF16 rounds f to binary16, to nearest even.
func toF16(f float32) uint16 { return float16.Fromfloat32(f).Bits() }

// round rounds to the nearest integer, ties to even, by adding and removing 1.5·2²³: the
// float32 addition itself rounds away the fraction (the nearest_int trick ggml uses,
// ggml/src/ggml-quants.c). Valid for |f| < 2²²; callers clamp quantization levels far below that,
// and larger inputs only saturate.
func round(f float32) int32 {
	f = max(min(f, 1<<22), -(1 << 22))
	return int32((f + magic) - magic)
}

func clamp(v, lo, hi int32) int32 { return min(max(v, lo), hi) }

// levels returns the integer range of a blockwise data dtype.
func levels(dtype string) (lo, hi int32) {
	switch dtype {
	case "int4":
		return -8, 7
	case "uint4":
		return 0, 15
	case "int8":
		return -128, 127
	default: // uint8
		return 0, 255
	}
}

// blockCodec quantizes rows into blockwise affine form: out = scale·(q − offset) per block of
// BlockSize consecutive elements of a row (constexpr_blockwise_shift_scale, coremltools mil/ops/defs/iOS18/compression.py).
type blockCodec struct {
	dtype     string // data dtype: int4 | uint4 | int8 | uint8
	symmetric bool   // no offset; data is signed
	block     int
	search    int // scale candidates tried per block beyond round-to-nearest (0: plain RTN)
}

// quantizeRow quantizes x (one row) with per-element importance w (same length) into q
// (integer values), scale (fp16 bits) and zero (integer offsets; untouched when symmetric),
// one scale and zero per block. It returns the sums of squared error and of squared input.
func (c *blockCodec) quantizeRow(x, w []float32, q []int32, scale []uint16, zero []int32) (errSum, sigSum float64) {
	lo, hi := levels(c.dtype)
	for b := 0; b*c.block < len(x); b++ {
		xs := x[b*c.block : (b+1)*c.block]
		ws := w[b*c.block : (b+1)*c.block]
		qs := q[b*c.block : (b+1)*c.block]
		var d float32
		var z int32
		if c.symmetric {
			d = c.symmetricBlock(xs, ws, qs, lo, hi)
		} else {
			d, z = c.affineBlock(xs, ws, qs, hi)
			zero[b] = z
		}
		scale[b] = toF16(d)
		d = f16Table[scale[b]]
		// float32 within a block, float64 across blocks. The float32 conversions round each
		// product, so that no architecture fuses it into the addition (arm64 would; the
		// Go spec allows it), and every machine gets the same sums as amd64 and its kernels.
		var es, ss float32
		for i, v := range xs {
			e := v - float32(d*float32(qs[i]-z))
			es += float32(e * e)
			ss += float32(v * v)
		}
		errSum += float64(es)
		sigSum += float64(ss)
	}
	return errSum, sigSum
}

// assign sets qs to the nearest level of each element for scale d and zero z.
func assign(xs []float32, qs []int32, d float32, z, lo, hi int32) {
	if d == 0 {
		for i := range qs {
			qs[i] = clamp(z, lo, hi)
		}
		return
	}
	qs = qs[:len(xs)]
	id := 1 / d
	flo, fhi, fz := float32(lo), float32(hi), float32(z)
	if abs(fz)+abs(flo)+abs(fhi) > 1<<20 {
		for i, v := range xs {
			qs[i] = clamp(round(v*id)+z, lo, hi)
		}
		return
	}
	// Levels and zero are small integers: round, shift and clamp in float32, convert once.
	// v·id may be huge for a clipped outlier, which the rounding trick does not cover, so
	// clamp before rounding too (one level beyond the range keeps the rounding exact).
	// Round before adding z, as round(v·id)+z, so that ties go the same way.
	i := 0
	if haveFitLevels4 && len(xs) >= 4 {
		i = len(xs) &^ 3
		assign4(&xs[0], &qs[0], i, id, fz, flo, fhi)
	}
	for ; i < len(xs); i++ {
		v := xs[i]
		t := clampf(v*id, flo-fz-1, fhi-fz+1)
		qs[i] = int32(clampf((t+magic)-magic+fz, flo, fhi))
	}
}

// symmetricBlock quantizes one block with no offset. Round-to-nearest maps the element of
// largest magnitude onto the most negative level, as ggml's Q4_0 does (d = max/−8), which
// uses all 16 levels. The search then tries scales around it, refits each candidate's scale
// by weighted least squares (d = Σw·x·q / Σw·q²) and keeps the one with the smallest
// weighted error, the approach of llama.cpp's make_qx_quants.
func (c *blockCodec) symmetricBlock(xs, ws []float32, qs []int32, lo, hi int32) float32 {
	amax, vmax := signedAbsMax(xs)
	if amax == 0 {
		clear(qs)
		return 0
	}
	nmax := float32(-lo) // 8 for int4, 128 for int8
	if hi-lo > 15 {
		// int8: 255 levels leave no use for the asymmetric extreme; ggml's Q8_0 uses ±127.
		d := f16Table[toF16(amax/127)]
		assign(xs, qs, d, 0, -127, 127)
		return d
	}
	d := f16Table[toF16(vmax/-nmax)]
	if d == 0 { // the block's range underflows fp16
		clear(qs)
		return 0
	}
	if c.search == 0 {
		assign(xs, qs, d, 0, lo, hi)
		return d
	}
	bestScore, bestD := float32(-1), d
	flo, fhi := float32(lo), float32(hi)
	for k := -c.search; k <= c.search; k++ {
		iscale := -(nmax + float32(k)/float32(c.search)) / vmax // levels nmax±1
		sumlx, suml2 := fitLevels(xs, ws, iscale, flo, fhi)
		if suml2 > 0 && sumlx*sumlx > bestScore*suml2 {
			bestScore, bestD = sumlx*sumlx/suml2, sumlx/suml2
		}
	}
	d = f16Table[toF16(bestD)]
	assign(xs, qs, d, 0, lo, hi)
	return d
}

// magic is 1.5·2²³: adding and removing it rounds a float32 of magnitude below 2²² to the
// nearest integer, ties to even (see round).
const magic = 12582912

// fitLevels returns Σw·x·l and Σw·l² for the levels l = clamp(round(x·iscale), lo, hi).
// It is the inner loop of the scale search, so it stays in float32 (the levels are small
// integers, exact in float32) and keeps four independent pairs of sums, which lets the
// additions overlap instead of waiting on one another. |x·iscale| ≤ nmax+1 here, far
// inside the range where the rounding trick holds.
//
// The four pairs are the four lanes of the SSE version (fitLevels4, amd64): lane j sums
// the elements i ≡ j (mod 4), the tail goes to lane 0, and the lanes are added pairwise, so
// both give bit-identical sums. fitLevelsGo is the portable reference; its float32
// conversions keep a compiler from fusing a product into the following addition (Go
// fuses x*y+z on arm64 unless the product is converted explicitly), which would round
// differently from the SSE and AVX2 kernels.
func fitLevels(xs, ws []float32, iscale, lo, hi float32) (sumlx, suml2 float32) {
	ws = ws[:len(xs)]
	if haveFitLevels4 && len(xs) >= 4 {
		var acc [8]float32
		n := len(xs) &^ 3
		fitLevels4(&xs[0], &ws[0], n, iscale, lo, hi, &acc)
		a0, b0 := acc[0], acc[4]
		for i := n; i < len(xs); i++ {
			l := clampf((float32(xs[i]*iscale)+magic)-magic, lo, hi)
			wl := ws[i] * l
			a0 += float32(wl * xs[i])
			b0 += float32(wl * l)
		}
		return (a0 + acc[1]) + (acc[2] + acc[3]), (b0 + acc[5]) + (acc[6] + acc[7])
	}
	return fitLevelsGo(xs, ws, iscale, lo, hi)
}

func fitLevelsGo(xs, ws []float32, iscale, lo, hi float32) (sumlx, suml2 float32) {
	ws = ws[:len(xs)]
	var a0, a1, a2, a3, b0, b1, b2, b3 float32
	i := 0
	for ; i+4 <= len(xs); i += 4 {
		x0, x1, x2, x3 := xs[i], xs[i+1], xs[i+2], xs[i+3]
		l0 := clampf((float32(x0*iscale)+magic)-magic, lo, hi)
		l1 := clampf((float32(x1*iscale)+magic)-magic, lo, hi)
		l2 := clampf((float32(x2*iscale)+magic)-magic, lo, hi)
		l3 := clampf((float32(x3*iscale)+magic)-magic, lo, hi)
		w0, w1, w2, w3 := ws[i]*l0, ws[i+1]*l1, ws[i+2]*l2, ws[i+3]*l3
		a0 += float32(w0 * x0)
		a1 += float32(w1 * x1)
		a2 += float32(w2 * x2)
		a3 += float32(w3 * x3)
		b0 += float32(w0 * l0)
		b1 += float32(w1 * l1)
		b2 += float32(w2 * l2)
		b3 += float32(w3 * l3)
	}
	for ; i < len(xs); i++ {
		l := clampf((float32(xs[i]*iscale)+magic)-magic, lo, hi)
		wl := ws[i] * l
		a0 += float32(wl * xs[i])
		b0 += float32(wl * l)
	}
	return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)
}

// clampf clamps f to [lo, hi]; written with branches because float min and max also order
// NaNs and signed zeros, which costs instructions this loop does not need.
func clampf(f, lo, hi float32) float32 {
	if f < lo {
		return lo
	}
	if f > hi {
		return hi
	}
	return f
}

// signedAbsMax returns the largest magnitude in xs and the first element having it, as
// ggml's reference quantizers pick it. The scan keeps a running minimum and maximum, which
// compile without branches; comparing |v| element by element instead mispredicts on random
// weights (minMax4 does it four lanes at a time on amd64). Only when the extremes tie in magnitude with opposite signs does a second pass
// find which comes first.
func signedAbsMax(xs []float32) (amax, vmax float32) {
	var mn, mx float32
	i := 0
	if haveFitLevels4 && len(xs) >= 4 {
		var acc [8]float32
		i = len(xs) &^ 3
		minMax4(&xs[0], i, &acc)
		mn, mx = min(acc[0], acc[1], acc[2], acc[3]), max(acc[4], acc[5], acc[6], acc[7])
	}
	for _, v := range xs[i:] {
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
	}
	switch {
	case mx > -mn:
		return mx, mx
	case -mn > mx:
		return -mn, mn
	case mx == 0:
		return 0, 0
	}
	for _, v := range xs {
		if v == mx || v == mn {
			return mx, v
		}
	}
	return mx, mx
}

// affineBlock quantizes one block to unsigned levels 0..hi with an integer zero point z:
// x ≈ d·(q − z). The range always includes 0 so that z is a level and exact zeros survive.
// The search shrinks the range (clipping outliers) and keeps the candidate with the
// smallest weighted error.
func (c *blockCodec) affineBlock(xs, ws []float32, qs []int32, hi int32) (float32, int32) {
	var mn, mx float32
	for _, v := range xs {
		mn, mx = min(mn, v), max(mx, v)
	}
	if mx == mn {
		clear(qs)
		return 0, 0
	}
	try := func(shrink float32) (d float32, z int32, werr float32) {
		d = f16Table[toF16((mx-mn)*shrink/float32(hi))]
		if d == 0 {
			return 0, 0, float32(math.Inf(1))
		}
		z = clamp(round(-mn*shrink/d), 0, hi)
		id := 1 / d
		for i, v := range xs {
			e := v - float32(d*float32(clamp(round(v*id)+z, 0, hi)-z)) // unfused, as in quantizeRow
			werr += float32(ws[i] * e * e)
		}
		return d, z, werr
	}
	bestD, bestZ, bestErr := try(1)
	for k := 1; k <= c.search; k++ {
		// Shrink the range by up to 30% in c.search steps.
		if d, z, e := try(1 - 0.3*float32(k)/float32(c.search)); e < bestErr {
			bestD, bestZ, bestErr = d, z, e
		}
	}
	assign(xs, qs, bestD, bestZ, 0, hi)
	return bestD, bestZ
}

func abs(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// pack4 packs 4-bit values LSB-first, element 2k in the low nibble of byte k (MIL sub-byte
// packing, MILBlob's StorageFormat.hpp); int4 values are stored two's complement in the nibble.
func pack4(dst []byte, vals []int32) {
	i := 0
	for ; i+8 <= len(vals); i += 8 { // eight at a time, one 32-bit store
		v := (*[8]int32)(vals[i : i+8])
		binary.LittleEndian.PutUint32(dst[i/2:], uint32(v[0]&0xF)|uint32(v[1]&0xF)<<4|uint32(v[2]&0xF)<<8|
			uint32(v[3]&0xF)<<12|uint32(v[4]&0xF)<<16|uint32(v[5]&0xF)<<20|uint32(v[6]&0xF)<<24|uint32(v[7]&0xF)<<28)
	}
	for ; i+1 < len(vals); i += 2 {
		dst[i/2] = byte(vals[i]&0xF) | byte(vals[i+1]&0xF)<<4
	}
	if len(vals)%2 == 1 {
		dst[len(vals)/2] = byte(vals[len(vals)-1] & 0xF)
	}
}

// nibble reads 4-bit element i of a packed stream, sign-extended when signed.
func nibble(b []byte, i int, signed bool) int32 {
	v := int32(b[i/2]>>(4*(i%2))) & 0xF
	if signed && v >= 8 {
		v -= 16
	}
	return v
}
