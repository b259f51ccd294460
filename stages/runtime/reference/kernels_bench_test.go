package reference

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkLUT4Dot: one 2560-wide row of 4-bit palette indices (a Phi-2 projection row
// palettized by constexpr_lut_to_dense) against x, through the vector kernel and the
// portable loop; bytes are the packed indices and a per-row 16-entry fp32 palette, to set
// beside BenchmarkInt4Dot's codes and scales.
func BenchmarkLUT4Dot(b *testing.B) {
	const cols = 2560
	r := rand.New(rand.NewPCG(1, 2))
	idx := make([]byte, cols/2)
	for i := range idx {
		idx[i] = byte(r.Uint32())
	}
	var pal [16]float32
	for i := range pal {
		pal[i] = float32(r.NormFloat64() * 0.05)
	}
	x := randFloats(r, cols)
	for _, k := range []struct {
		name string
		fast bool
	}{{"simd", true}, {"portable", false}} {
		if k.fast && !useSIMD {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			saved := useSIMD
			useSIMD = k.fast
			defer func() { useSIMD = saved }()
			b.SetBytes(int64(len(idx) + 4*len(pal)))
			var s float32
			for b.Loop() {
				s += dotLUT4(idx, &pal, x)
			}
			_ = s
		})
	}
}

// BenchmarkLUT4Row: the same row expanded to float32 (prefill's path: row, then dot3x4).
func BenchmarkLUT4Row(b *testing.B) {
	const cols = 2560
	r := rand.New(rand.NewPCG(3, 4))
	idx := make([]byte, cols/2)
	for i := range idx {
		idx[i] = byte(r.Uint32())
	}
	var pal [16]float32
	for i := range pal {
		pal[i] = float32(i)
	}
	dst := make([]float32, cols)
	for _, k := range []struct {
		name string
		fast bool
	}{{"simd", true}, {"portable", false}} {
		if k.fast && !useSIMD {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			saved := useSIMD
			useSIMD = k.fast
			defer func() { useSIMD = saved }()
			b.SetBytes(int64(len(idx) + 4*len(pal)))
			for b.Loop() {
				rowLUT4(dst, idx, &pal)
			}
		})
	}
}
