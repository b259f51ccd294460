package qweights

import "fmt"

// The lut+blockwise encoding (LUTBlockwise) stores n-bit indices into a table of int8
// codes — constexpr_lut_to_dense (iOS18) — whose output is the data of a
// constexpr_blockwise_shift_scale: value = scale·(codes[index] − offset) per block.
// coremltools' op definitions (mil/ops/defs/iOS18/compression.py) let the blockwise op's
// data be a constexpr op's output of any of its SrcT, and the lut's dtypes (int8, uint8,
// fp16, fp32) are among them. It gives the blockwise op the 2-, 3- and 6-bit data it
// lacks, and IQ4's non-linear codebook in 4 bits.

// indexBits is the width of a lut index dtype, 0 if it is not one (the iOS18 IndicesT:
// uint1, uint2, uint3, uint4, uint6, uint8).
func indexBits(dtype string) int {
	switch dtype {
	case "uint1":
		return 1
	case "uint2":
		return 2
	case "uint3":
		return 3
	case "uint4":
		return 4
	case "uint6":
		return 6
	case "uint8":
		return 8
	}
	return 0
}

// codeRange is the table of n consecutive integer codes from lo.
func codeRange(lo, n int32) []int32 {
	c := make([]int32, n)
	for i := range c {
		c[i] = lo + int32(i)
	}
	return c
}

// codeIndex maps the int8 codes of a table to their first index (-1: not in it).
func codeIndex(codes []int32) *[256]int16 {
	var ix [256]int16
	for i := range ix {
		ix[i] = -1
	}
	for i := len(codes) - 1; i >= 0; i-- {
		ix[uint8(codes[i])] = int16(i)
	}
	return &ix
}

// codeIndices caches codeIndex per transcoding table (the tables are package values).
var codeIndices = func() map[*int32]*[256]int16 {
	m := map[*int32]*[256]int16{}
	for _, tr := range transcodings {
		if tr.Encoding == LUTBlockwise {
			m[&tr.Codes[0]] = codeIndex(tr.Codes)
		}
	}
	return m
}()

// packCodes writes the indices of codes q (each in the table codes) as bits-wide fields
// LSB-first (MIL's sub-byte packing), element e0 on of dst; e0·bits and the end of q fall
// on byte boundaries or at the end of dst.
func packCodes(dst []byte, e0 int, q []int32, dtype string, codes []int32) {
	bits := indexBits(dtype)
	ix := codeIndices[&codes[0]]
	if ix == nil {
		ix = codeIndex(codes)
	}
	d := dst[e0*bits/8:]
	var acc uint32
	var n, o int
	for _, v := range q {
		acc |= uint32(ix[uint8(v)]) << n
		if n += bits; n >= 8 {
			d[o] = byte(acc)
			o, acc, n = o+1, acc>>8, n-8
		}
	}
	if n > 0 {
		d[o] = byte(acc)
	}
}

// unpackIndex reads bits-wide field i of b (LSB-first).
func unpackIndex(b []byte, i, bits int) int {
	bit := i * bits
	w := uint16(b[bit/8])
	if bit%8+bits > 8 {
		w |= uint16(b[bit/8+1]) << 8
	}
	return int(w >> (bit % 8) & (1<<bits - 1))
}

// lutBlockwiseParts lists the arrays of a LUTBlockwise tensor [out, in]: the packed
// indices, the int8 code table [1, 1, 2^bits, 1] (GroupSize 0) or fp16 palettes
// [out/GroupSize, 1, 2^bits, 1], the fp16 scales and, if any, fp16 offsets
// [out, in/BlockSize].
func (ti *TensorInfo) lutBlockwiseParts(out, in int) ([]Part, error) {
	bits := indexBits(ti.DType)
	if bits == 0 {
		return nil, fmt.Errorf("lut+blockwise index dtype %q is not uint1, uint2, uint3, uint4, uint6 or uint8", ti.DType)
	}
	if ti.BlockSize <= 0 || in%ti.BlockSize != 0 {
		return nil, fmt.Errorf("block size %d does not divide in = %d", ti.BlockSize, in)
	}
	nb := in / ti.BlockSize
	lut := Part{"lut", "I8", []int{1, 1, 1 << bits, 1}}
	if ti.GroupSize > 0 { // fp16 palettes, one per GroupSize rows
		if out%ti.GroupSize != 0 {
			return nil, fmt.Errorf("group size %d does not divide out = %d", ti.GroupSize, out)
		}
		lut = Part{"lut", "F16", []int{out / ti.GroupSize, 1, 1 << bits, 1}}
	}
	ps := []Part{
		{"data", "U8", []int{(out*in*bits + 7) / 8}},
		lut,
		{"scale", "F16", []int{out, nb}},
	}
	if g := ti.ScaleGroup; g > 0 {
		if nb%g != 0 {
			return nil, fmt.Errorf("scale group %d does not divide the %d scales of a row", g, nb)
		}
		ps = append(ps[:2], Part{"scale", "I8", []int{out, nb}}, Part{"scale_factor", "F16", []int{out, nb / g}})
	}
	switch ti.Offset {
	case "":
	case "fp16":
		ps = append(ps, Part{"offset", "F16", []int{out, nb}})
	default:
		return nil, fmt.Errorf("lut+blockwise offset dtype %q must be empty or fp16", ti.Offset)
	}
	return ps, nil
}

// LUT returns the int8 code table of lut+blockwise tensor name stored as its source's
// ggml blocks (the transcoding's fixed table); nil for any other tensor.
func (s *Set) LUT(name string) []byte {
	ti, ok := s.derived[name]
	if !ok || ti.Encoding != LUTBlockwise {
		return nil
	}
	t, _ := s.source.Tensor(name)
	return codeBytes(transcodings[t.Type].Codes)
}

func codeBytes(codes []int32) []byte {
	b := make([]byte, len(codes))
	for i, c := range codes {
		b[i] = byte(int8(c))
	}
	return b
}

// sliceBits returns the bits-wide elements [e0, e1) of b: a sub-slice when e0 starts a
// byte, else a repacked copy.
func sliceBits(b []byte, e0, e1, bits int) []byte {
	end := (e1*bits + 7) / 8
	if e0*bits%8 == 0 {
		return b[e0*bits/8 : end : end]
	}
	out := make([]byte, ((e1-e0)*bits+7)/8)
	for i := e0; i < e1; i++ {
		v, at := unpackIndex(b, i, bits), (i-e0)*bits
		out[at/8] |= byte(v << (at % 8))
		if at%8+bits > 8 {
			out[at/8+1] |= byte(v >> (8 - at%8))
		}
	}
	return out
}
