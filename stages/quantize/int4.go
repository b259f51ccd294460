package quantize

import "encoding/binary"

// int4Args is the argument block of int4Strip, read by offset in int4_amd64.s (keep the
// field order). The kernel quantizes nb column blocks of block elements in each of eight
// rows of fp16 weights, one block per vector lane, and advances scale, errs and sigs as it
// goes.
type int4Args struct {
	src     *byte    // fp16 element 0 of row 0
	stride  int      // bytes from one source row to the next (2·in)
	nb      int      // column blocks per row
	w       *float32 // importance of the row's elements (in of them)
	cand    *float32 // −(nmax + k/search) for k = −search…search
	ncand   int      // 0: round to nearest only
	scratch *float32 // 16·block + 24 floats: x and levels transposed, and lane slots
	data    *byte    // packed levels of row 0, element 0
	dstride int      // bytes from one packed row to the next (in/2)
	scale   *uint16  // out: [nb][8] fp16 scales, lane = row
	errs    *float32 // out: [nb][8] Σ error² per block
	sigs    *float32 // out: [nb][8] Σ x² per block
	bad     int      // out: nonzero when a source element is Inf or NaN
	block   int      // elements per block, a multiple of 8
	uniform int      // nonzero: every w is 1, so w·l is l and the kernel skips the product
}

// int4Rows holds quantizeF16's buffers, reused from chunk to chunk: the candidate
// numerators, the kernel's scratch and outputs, and a row for the portable path.
type int4Rows struct {
	cand       []float32
	scratch, x []float32
	qi         []int32
	scaleT     []uint16
	errT, sigT []float32
}

// canStrip reports whether c's blocks can go through int4Strip: symmetric int4 with a
// search (or none) over blocks of a multiple of 8 elements, on a CPU that has the kernel.
func (c *blockCodec) canStrip() bool {
	return haveInt4Strip && c.symmetric && c.dtype == "int4" && c.block%8 == 0 && c.block > 0
}

// quantizeF16 quantizes rows of fp16 weights src (row-major, in elements a row, in a
// multiple of c.block) with importance w (one row's worth), as decoding them and calling
// c.quantizeRow row by row, then pack4 would: it writes the packed levels to data (in/2
// bytes a row), the fp16 scales to scale (in/c.block a row) and each row's sums of squared
// error and input to rowErr and rowSig. Strips of eight rows go through int4Strip, the
// other rows through quantizeRow. ok is false if the kernel met a non-finite weight; the
// caller then decodes the rows itself for the loader's error.
func (c *blockCodec) quantizeF16(rs *int4Rows, src []byte, in int, w []float32, data []byte, scale []uint16, rowErr, rowSig []float64) (ok bool) {
	rows := len(rowErr)
	nb := in / c.block
	if c.search > 0 && len(rs.cand) != 2*c.search+1 {
		rs.cand = rs.cand[:0]
		nmax := float32(8)
		for k := -c.search; k <= c.search; k++ {
			// As symmetricBlock computes the numerator of iscale.
			rs.cand = append(rs.cand, -(nmax + float32(k)/float32(c.search)))
		}
	}
	rs.scratch = grow(rs.scratch, 16*c.block+24)
	rs.scaleT = grow(rs.scaleT, 8*nb)
	rs.errT = grow(rs.errT, 8*nb)
	rs.sigT = grow(rs.sigT, 8*nb)
	a := int4Args{
		stride: 2 * in, nb: nb, w: &w[0], scratch: &rs.scratch[0], dstride: in / 2, block: c.block,
	}
	if c.search > 0 {
		a.cand, a.ncand = &rs.cand[0], len(rs.cand)
	}
	a.uniform = 1
	for _, v := range w[:in] {
		if v != 1 {
			a.uniform = 0
			break
		}
	}
	r := 0
	for ; r+8 <= rows; r += 8 {
		a.src, a.data = &src[2*r*in], &data[r*in/2]
		a.scale, a.errs, a.sigs = &rs.scaleT[0], &rs.errT[0], &rs.sigT[0]
		int4Strip(&a)
		if a.bad != 0 {
			return false
		}
		for k := 0; k < 8; k++ {
			var e, s float64 // float64 across blocks, in block order, as quantizeRow
			for b := 0; b < nb; b++ {
				scale[(r+k)*nb+b] = rs.scaleT[b*8+k]
				e += float64(rs.errT[b*8+k])
				s += float64(rs.sigT[b*8+k])
			}
			rowErr[r+k], rowSig[r+k] = e, s
		}
	}
	if r == rows {
		return true
	}
	rs.x = grow(rs.x, in)
	rs.qi = grow(rs.qi, in)
	var zero []int32 // symmetric: untouched
	for ; r < rows; r++ {
		row := src[2*r*in : 2*(r+1)*in]
		var inf uint16
		for i := range rs.x {
			h := binary.LittleEndian.Uint16(row[2*i:])
			inf |= (h & 0x7c00) + 0x0400 // see decodeRows
			rs.x[i] = f16Table[h]
		}
		if inf&0x8000 != 0 {
			return false
		}
		rowErr[r], rowSig[r] = c.quantizeRow(rs.x, w, rs.qi, scale[r*nb:(r+1)*nb], zero)
		pack4(data[r*in/2:(r+1)*in/2], rs.qi)
	}
	return true
}
