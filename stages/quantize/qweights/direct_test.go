package qweights

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// TestDirectMatchesRows: each direct path writes the bits of Rows followed by pack, and
// refuses exactly the blocks Rows refuses. The fp16 fields (d, dmin) are random bit
// patterns, so zeros, subnormals, values whose scales overflow fp16, Inf and NaN occur;
// each block is checked alone so that one refusal does not hide the others. Both the Go
// loops and, where there are some, the kernels (nibbleKernels) are checked.
func TestDirectMatchesRows(t *testing.T) {
	for _, kernels := range []bool{false, true} {
		if kernels && !haveNibbleKernels {
			continue
		}
		was := nibbleKernels
		nibbleKernels = kernels
		for typ, fast := range direct {
			directMatchesRows(t, typ, fast, kernels)
		}
		nibbleKernels = was
	}
}

func directMatchesRows(t *testing.T, typ ggml.Type, fast directRows, kernels bool) {
	t.Run(fmt.Sprintf("%v/kernels=%v", typ, kernels), func(t *testing.T) {
		tr := transcodings[typ]
		be, bb := typ.BlockElems(), typ.BlockBytes()
		rng := rand.New(rand.NewPCG(7, uint64(typ)))
		raw := randomBlocks(typ, 4000, uint64(typ))
		refused := 0
		for b := 0; b < len(raw); b += bb {
			blk := raw[b : b+bb]
			roughen(blk, tr, rng, true)
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

// roughen gives a random block the fields that take the transcodings' rare branches: one
// time in four an fp16 field (d, dmin) is a random bit pattern (so zeros, subnormals,
// scales beyond fp16, and with nonFinite Inf and NaN occur), one in four a special value;
// and one block in eight has a third of its other bytes zero (sub-block scales and mins
// of zero, with and without each other).
func roughen(blk []byte, tr Transcoding, rng *rand.Rand, nonFinite bool) {
	special := []uint16{0, 0x8000, 0x0001, 0x3c00, 0xbc00, 0x7bff, 0x5800, 0x7c00, 0x7e00}
	if !nonFinite {
		special = special[:len(special)-2]
	}
	for _, at := range tr.halves {
		switch rng.IntN(4) {
		case 0:
			h := uint16(rng.Uint32())
			if !nonFinite && h&0x7c00 == 0x7c00 {
				h &^= 0x4000
			}
			binary.LittleEndian.PutUint16(blk[at:], h)
		case 1:
			binary.LittleEndian.PutUint16(blk[at:], special[rng.IntN(len(special))])
		}
	}
	if rng.IntN(8) == 0 {
		for i := range blk {
			if !slices.Contains(tr.halves, i) && !slices.Contains(tr.halves, i-1) && rng.IntN(3) == 0 {
				blk[i] = 0
			}
		}
	}
}

// TestNibbleKernels: with the vector repacks (nibbleKernels), each direct path writes the
// bits of its Go loop, over runs of 0, 1, 2, 3 and many blocks with rough fields, and
// refuses the run whose last block has a non-finite d or dmin. Without the kernels (other
// architectures, -tags purego) both sides are the Go loop.
func TestNibbleKernels(t *testing.T) {
	for _, typ := range []ggml.Type{ggml.Q4_0, ggml.Q4_K, ggml.Q6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			tr, fast := transcodings[typ], direct[typ]
			be, bb := typ.BlockElems(), typ.BlockBytes()
			rng := rand.New(rand.NewPCG(11, uint64(typ)))
			run := func(raw []byte, kernels bool) (ok bool, data []byte, scale, off []uint16) {
				defer func(was bool) { nibbleKernels = was }(nibbleKernels)
				nibbleKernels = kernels && haveNibbleKernels
				n := len(raw) / bb * be
				data, scale, off = make([]byte, tr.dataBytes(n)), make([]uint16, n/tr.Block), make([]uint16, n/tr.Block)
				return fast(raw, data, scale, off), data, scale, off
			}
			accepted := 0
			for _, n := range []int{0, 1, 2, 3, 5, 16, 17, 255, 1000} {
				for trial := range 20 {
					raw := randomBlocks(typ, n, rng.Uint64())
					for b := 0; b < len(raw); b += bb {
						blk := raw[b : b+bb]
						roughen(blk, tr, rng, false)
						if ok, _, _, _ := run(blk, false); !ok { // a scale beyond fp16
							for _, at := range tr.halves {
								binary.LittleEndian.PutUint16(blk[at:], 0x2000)
							}
						}
					}
					refuse := n > 0 && trial%4 == 3 // the last block non-finite
					if refuse {
						at := tr.halves[rng.IntN(len(tr.halves))]
						binary.LittleEndian.PutUint16(raw[len(raw)-bb+at:], 0x7c00|uint16(rng.Uint32())&0x83ff)
					}
					wok, wdata, wscale, woff := run(raw, false)
					gok, gdata, gscale, goff := run(raw, true)
					if gok != wok || refuse && gok {
						t.Fatalf("%d blocks: ok %v with the kernels, %v without (last block refused: %v)", n, gok, wok, refuse)
					}
					if !gok {
						continue
					}
					accepted++
					if !slices.Equal(gdata, wdata) || !slices.Equal(gscale, wscale) || !slices.Equal(goff, woff) {
						for b := range n { // name the first block that differs
							blk := raw[b*bb : (b+1)*bb]
							d0, d1 := tr.dataBytes(b*be), tr.dataBytes((b+1)*be)
							s0, s1 := b*be/tr.Block, (b+1)*be/tr.Block
							if !slices.Equal(gdata[d0:d1], wdata[d0:d1]) || !slices.Equal(gscale[s0:s1], wscale[s0:s1]) || !slices.Equal(goff[s0:s1], woff[s0:s1]) {
								t.Fatalf("%d blocks, block %d % x:\ndata %x\nwant %x\nscale %x want %x\noffset %x want %x", n, b, blk,
									gdata[d0:d1], wdata[d0:d1], gscale[s0:s1], wscale[s0:s1], goff[s0:s1], woff[s0:s1])
							}
						}
					}
				}
			}
			if accepted < 100 {
				t.Errorf("only %d runs accepted: the rough fields refuse too many", accepted)
			}
		})
	}
}

// TestQ4KEveryMin: Q4_K's direct path is Rows for every finite non-negative dmin under a
// few d (1, 0.5, the least subnormal, the greatest finite), with sub-block 0's scale 1 and
// min 2, so that its offset 2·dmin/d − 8 meets fp16's every rounding and its edge: with
// d = 1 and dmin = 32768 the offset 65528 rounds up to Inf (a carry out of the fraction)
// and Rows refuses the block. The other sub-blocks have scales 63 and 15 and min 0, so
// that they do not overflow first.
func TestQ4KEveryMin(t *testing.T) {
	tr := transcodings[ggml.Q4_K]
	base := randomBlocks(ggml.Q4_K, 1, 31)
	copy(base[4:16], []byte{1, 63, 63, 63, 2, 0, 0, 0, 15, 15, 15, 15}) // kScaleMin's layout
	q := make([]int32, 256)
	want, got := make([]byte, 128), make([]byte, 128)
	var wscale, woff, gscale, goff [8]uint16
	refused := 0
	for _, kernels := range []bool{false, true} {
		if kernels && !haveNibbleKernels {
			continue
		}
		was := nibbleKernels
		nibbleKernels = kernels
		for _, d := range []uint16{0x3c00, 0x3800, 0x0001, 0x7bff} {
			for dmin := range uint16(0x7c00) {
				binary.LittleEndian.PutUint16(base[0:], d)
				binary.LittleEndian.PutUint16(base[2:], dmin)
				err := tr.Rows(ggml.Q4_K, base, 256, q, wscale[:], woff[:])
				tr.pack(want, 0, q)
				ok := q4KDirect(base, got, gscale[:], goff[:])
				if ok != (err == nil) {
					t.Fatalf("kernels %v, d %#04x, dmin %#04x: direct ok %v, Rows error %v", kernels, d, dmin, ok, err)
				}
				if !ok {
					refused++
					continue
				}
				if !slices.Equal(got, want) || gscale != wscale || goff != woff {
					t.Fatalf("kernels %v, d %#04x, dmin %#04x:\nscale %x want %x\noffset %x want %x", kernels, d, dmin, gscale, wscale, goff, woff)
				}
			}
		}
		nibbleKernels = was
	}
	if refused == 0 {
		t.Error("no block refused: the offsets never reached Inf")
	}
}
