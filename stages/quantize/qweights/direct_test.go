package qweights

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDirectMatchesRows: each direct path writes the bits of Rows followed by pack, and
// refuses exactly the blocks Rows refuses. The fp16 fields (d, dmin) are random bit
// patterns, so zeros, subnormals, values whose scales overflow fp16, Inf and NaN occur;
// each block is checked alone so that one refusal does not hide the others.
func TestDirectMatchesRows(t *testing.T) {
	for typ, fast := range direct {
		t.Run(typ.String(), func(t *testing.T) {
			tr := transcodings[typ]
			be, bb := typ.BlockElems(), typ.BlockBytes()
			rng := rand.New(rand.NewPCG(7, uint64(typ)))
			raw := randomBlocks(typ, 4000, uint64(typ))
			special := []uint16{0, 0x8000, 0x0001, 0x3c00, 0xbc00, 0x7bff, 0x7c00, 0x7e00, 0x5800}
			refused := 0
			for b := 0; b < len(raw); b += bb {
				blk := raw[b : b+bb]
				for _, at := range tr.halves {
					switch rng.IntN(4) {
					case 0:
						binary.LittleEndian.PutUint16(blk[at:], uint16(rng.Uint32()))
					case 1:
						binary.LittleEndian.PutUint16(blk[at:], special[rng.IntN(len(special))])
					}
				}
				if rng.IntN(8) == 0 { // zero sub-block scales and mins
					for i := range blk {
						if !slices.Contains(tr.halves, i) && !slices.Contains(tr.halves, i-1) && rng.IntN(3) == 0 {
							blk[i] = 0
						}
					}
				}
				q := make([]int32, be)
				want := make([]byte, tr.dataBytes(be))
				wscale, gscale := make([]uint16, be/tr.Block), make([]uint16, be/tr.Block)
				var woff, goff []uint16
				if tr.Offset != "" {
					woff, goff = make([]uint16, len(wscale)), make([]uint16, len(wscale))
				}
				err := tr.Rows(typ, blk, be, q, wscale, woff)
				tr.pack(want, 0, q)
				got := make([]byte, len(want))
				ok := fast(blk, got, gscale, goff)
				if ok != (err == nil) {
					t.Fatalf("block % x: direct ok %v, Rows error %v", blk, ok, err)
				}
				if !ok {
					refused++
					continue
				}
				if !slices.Equal(got, want) || !slices.Equal(gscale, wscale) || !slices.Equal(goff, woff) {
					t.Fatalf("block % x:\ndata %x\nwant %x\nscale %x want %x\noffset %x want %x", blk, got, want, gscale, wscale, goff, woff)
				}
			}
			if refused == 0 || refused > 3000 {
				t.Errorf("%d of 4000 blocks refused: the fields do not cover both cases", refused)
			}
		})
	}
}

// TestFiniteF16: the table-free widening is the table's (x448/float16) for every finite
// fp16 bit pattern.
func TestFiniteF16(t *testing.T) {
	for h := range 1 << 16 {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if a, b := finiteF16(uint16(h)), f16ToF32(uint16(h)); math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("%#04x: %v, the table %v", h, a, b)
		}
	}
}
