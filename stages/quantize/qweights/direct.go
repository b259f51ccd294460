package qweights

import (
	"encoding/binary"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// A directRows transcodes whole blocks of one ggml type straight into the packed data
// array (dst) and the fp16 scales and offsets, with the same bits as Rows followed by
// pack but without the int32 levels between them: the common types are mostly copying,
// and the levels cost more than the copy. ok is false, with the arrays unfinished, for a
// block Rows would refuse (a non-finite field, a scale or offset beyond fp16), so that
// the caller runs Rows on the same blocks for its error.
type directRows func(raw, dst []byte, scale, off []uint16) (ok bool)

// direct lists the types with a directRows.
var direct = map[ggml.Type]directRows{
	ggml.Q4_0: q4_0Direct,
	ggml.Q4_K: q4KDirect,
	ggml.Q6_K: q6KDirect,
}

const (
	lowNibbles = 0x0f0f0f0f0f0f0f0f
	nibble8    = 0x0808080808080808
)

// nibblePairs packs eight 4-bit values, one per byte of v (0…15), into four bytes, value
// 2k in the low nibble of byte k (MIL's sub-byte packing).
func nibblePairs(v uint64) uint32 {
	v = (v | v>>4) & 0x00ff00ff00ff00ff // pairs into the low byte of each 16 bits
	v = (v | v>>8) & 0x0000ffff0000ffff
	return uint32(v | v>>16)
}

// q4_0Direct is Rows and pack for Q4_0 as a byte shuffle. A Q4_0 block (ggml-common.h,
// block_q4_0) is an fp16 d and 16 bytes whose low nibbles are elements 0…15 and high
// nibbles 16…31, each q standing for d·(q − 8); our int4 is the signed level q − 8 in two's
// complement, which is q XOR 8 in the nibble. The scale is d itself.
func q4_0Direct(raw, dst []byte, scale, _ []uint16) bool {
	n := len(raw) / 18
	if nibbleKernels && n > 0 {
		_, _ = dst[16*n-1], scale[n-1]
		return repackQ4_0(&raw[0], &dst[0], &scale[0], n) == n
	}
	return q4_0Go(raw, dst, scale)
}

// q4_0Go is q4_0Direct in Go: the portable path, and the one the kernels are tested against.
func q4_0Go(raw, dst []byte, scale []uint16) bool {
	for b := range len(raw) / 18 {
		blk := raw[18*b : 18*b+18]
		d := binary.LittleEndian.Uint16(blk)
		if d&0x7c00 == 0x7c00 {
			return false
		}
		scale[b] = d
		out := dst[16*b : 16*b+16]
		for h := range 2 {
			v := binary.LittleEndian.Uint64(blk[2+8*h:]) // elements 8h…8h+7 and 16+8h…
			binary.LittleEndian.PutUint32(out[4*h:], nibblePairs(v&lowNibbles^nibble8))
			binary.LittleEndian.PutUint32(out[8+4*h:], nibblePairs(v>>4&lowNibbles^nibble8))
		}
	}
	return true
}

// q4KDirect is Rows and pack for Q4_K (block layout at unpackQ4_K). Its quants lie in
// [0, 15], so shiftFor gives the int4 data the shift 8 in every sub-block with a non-zero
// scale: q − 8, which is q XOR 8 in a nibble, as for Q4_0. A sub-block whose scale rounds
// to zero keeps its quants (no offset) or, with a non-zero min, is the constant −m with
// zero quants, as Rows makes it. The kernel, where there is one, writes all the data for
// the common case first; q4KBlock then redoes the 32 bytes of a pair of sub-blocks that is
// not. The scale kernel, where there is one, does the scales and offsets of the blocks in
// the common case and leaves the others, from the first it stops at, to q4KBlock.
func q4KDirect(raw, dst []byte, scale, off []uint16) bool {
	n := len(raw) / 144
	kernel := nibbleKernels && n > 0
	if kernel {
		_ = dst[128*n-1]
		repackQ4_K(&raw[0], &dst[0], n)
	}
	for b := 0; b < n; b++ {
		if kernel && scaleKernels {
			_, _ = scale[8*n-1], off[8*n-1]
			if b += scalesQ4_K(&raw[144*b], &scale[8*b], &off[8*b], n-b); b == n {
				break
			}
		}
		if !q4KBlock((*[144]byte)(raw[144*b:]), (*[128]byte)(dst[128*b:]), (*[8]uint16)(scale[8*b:]), (*[8]uint16)(off[8*b:]), kernel) {
			return false
		}
	}
	return true
}

// q4KBlock is q4KDirect for one block; with kernel, out already holds the kernel's data.
func q4KBlock(blk *[144]byte, out *[128]byte, scale, off *[8]uint16, kernel bool) bool {
	xor, keep := shift8, kept
	if !q4KScales(blk, scale, off, &xor, &keep) {
		return false
	}
	q4KData(blk, out, &xor, &keep, kernel)
	return true
}

// shift8 and kept are the XOR and mask of the quants of q4KBlock's common sub-block.
var shift8, kept = [8]uint64{nibble8, nibble8, nibble8, nibble8, nibble8, nibble8, nibble8, nibble8},
	[8]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}

// q4KData writes a block's data, sub-block k's quants as (q ^ xor[k]) & keep[k]; with
// kernel, only the pairs of sub-blocks whose bytes are not the kernel's (q XOR 8).
func q4KData(blk *[144]byte, out *[128]byte, xor, keep *[8]uint64, kernel bool) {
	// Sub-blocks 2c and 2c+1 are the low and high nibbles of qs[32c…32c+32].
	for c := range 4 {
		if kernel && xor[2*c]&xor[2*c+1] == nibble8 {
			continue
		}
		qs := (*[32]byte)(blk[16+32*c:])
		lo, hi := (*[16]byte)(out[32*c:]), (*[16]byte)(out[32*c+16:])
		for g := range 4 {
			v := binary.LittleEndian.Uint64(qs[8*g:])
			binary.LittleEndian.PutUint32(lo[4*g:], nibblePairs((v&lowNibbles^xor[2*c])&keep[2*c]))
			binary.LittleEndian.PutUint32(hi[4*g:], nibblePairs((v>>4&lowNibbles^xor[2*c+1])&keep[2*c+1]))
		}
	}
}

// q4KScales is q4KBlock's scales and offsets, and the XOR and mask of each sub-block's
// quants (left as shift8 and kept in the common case); false for a block Rows refuses. The
// scales, then the offsets, are each computed in a loop of their own, so that the
// divisions and roundings of different sub-blocks overlap.
func q4KScales(blk *[144]byte, scale, off *[8]uint16, xor, keep *[8]uint64) bool {
	h0, h1 := binary.LittleEndian.Uint16(blk[:]), binary.LittleEndian.Uint16(blk[2:])
	if h0&0x7c00 == 0x7c00 || h1&0x7c00 == 0x7c00 {
		return false
	}
	d, dmin := finiteF16(h0), finiteF16(h1)
	var s, m [8]float32
	var S [8]uint16
	var o [8]float64
	for k := range 8 {
		sc, mn := kScaleMin(k, blk[4:16])
		s[k], m[k] = d*float32(sc), dmin*float32(mn)
		var ok bool // toF16, its common case inlined
		if S[k], ok = f16Normal(float64(s[k])); !ok {
			S[k] = f16Outside(float64(s[k]))
		}
	}
	for k := range 8 {
		if S[k]&0x7fff != 0 && S[k]&0x7c00 != 0x7c00 {
			o[k] = bestOffset(s[k], float64(m[k])-float64(s[k])*8, S[k], -8, 7)
		}
	}
	for k := range 8 {
		switch {
		case S[k]&0x7fff != 0:
			if S[k]&0x7c00 == 0x7c00 {
				return false
			}
			O, ok := f16Normal(o[k]) // scaleOffset(s, m − 8s, −8, 7)
			if !ok {
				O = f16Outside(o[k])
			}
			scale[k], off[k] = S[k], O
		case m[k] == 0:
			scale[k], off[k] = S[k], 0
			xor[k] = 0
		default:
			scale[k], off[k] = toF16(m[k]), toF16(1)
			xor[k], keep[k] = 0, 0 // quants cleared
		}
		if off[k]&0x7c00 == 0x7c00 || scale[k]&0x7c00 == 0x7c00 {
			return false
		}
	}
	return true
}

// q6KDirect is Rows and pack for Q6_K (block layout at unpackQ6_K). Its code table is
// −32…31, so a quant's lut index is its stored 6-bit value: the indices are ql's nibble
// and qh's two bits put together, eight at a time, and packed six bits each (pack6). The
// scale of sub-block i is d·sc[i]. The data does not depend on the scales: the kernel,
// where there is one, writes all of it first; the scale kernel then does the scales of
// every block up to one that q6KBlock refuses.
func q6KDirect(raw, dst []byte, scale, _ []uint16) bool {
	n := len(raw) / 210
	kernel := nibbleKernels && n > 0
	if kernel {
		_ = dst[192*n-1]
		repackQ6_K(&raw[0], &dst[0], n)
	}
	for b := 0; b < n; b++ {
		if kernel && scaleKernels {
			_ = scale[16*n-1]
			if b += scalesQ6_K(&raw[210*b], &scale[16*b], n-b); b == n {
				break
			}
		}
		if !q6KBlock((*[210]byte)(raw[210*b:]), (*[192]byte)(dst[192*b:]), (*[16]uint16)(scale[16*b:]), kernel) {
			return false
		}
	}
	return true
}

// q6KBlock is q6KDirect for one block; with kernel, out already holds the kernel's data.
func q6KBlock(blk *[210]byte, out *[192]byte, scale *[16]uint16, kernel bool) bool {
	const twoBits = 0x0303030303030303
	h := binary.LittleEndian.Uint16(blk[208:])
	if h&0x7c00 == 0x7c00 {
		return false
	}
	d := finiteF16(h)
	for i, sc := range blk[192:208] {
		x := float64(d * float32(int8(sc)))
		S, ok := f16Normal(x) // toF16, its common case inlined
		if !ok {
			S = f16Outside(x)
		}
		if S&0x7c00 == 0x7c00 {
			return false
		}
		scale[i] = S
	}
	if kernel {
		return true
	}
	for half := range 2 {
		ql, qh := (*[64]byte)(blk[64*half:]), (*[32]byte)(blk[128+32*half:])
		o := (*[96]byte)(out[96*half:])
		// Elements 128·half + 32j + l, l in 0…31: ql[l + 32(j%2)]'s low (j < 2) or high
		// nibble, and bits 2j, 2j+1 of qh[l]; eight of them (l = 8g…8g+7) fill six bytes.
		for g := range 4 {
			l0 := binary.LittleEndian.Uint64(ql[8*g:])
			l1 := binary.LittleEndian.Uint64(ql[32+8*g:])
			h := binary.LittleEndian.Uint64(qh[8*g:])
			for j, l := range [4]uint64{l0 & lowNibbles, l1 & lowNibbles, l0 >> 4 & lowNibbles, l1 >> 4 & lowNibbles} {
				p := pack6(l | h>>(2*j)&twoBits<<4)
				at := 24*j + 6*g // (32j + 8g)·6/8
				binary.LittleEndian.PutUint32(o[at:], uint32(p))
				binary.LittleEndian.PutUint16(o[at+4:], uint16(p>>32))
			}
		}
	}
	return true
}

// pack6 packs eight 6-bit values, one per byte of v, into the low 48 bits, value k at bit
// 6k (MIL's sub-byte packing, LSB first): pairs, then quads, then all eight.
func pack6(v uint64) uint64 {
	v = v&0x003f003f003f003f | v>>2&0x0fc00fc00fc00fc0
	v = v&0x00000fff00000fff | v>>4&0x00fff00000fff000
	return v&0x0000000000ffffff | v>>8&0x0000ffffff000000
}
