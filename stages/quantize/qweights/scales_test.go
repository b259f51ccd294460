package qweights

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// TestScaleKernels: with the scale kernels, q4KDirect and q6KDirect write the bits of their
// Go loops and refuse the same runs, over runs of many blocks whose fields (d, dmin) are
// often random bit patterns (zero, subnormal, huge, Inf, NaN) and whose sub-block scales
// and mins are often zero; the kernels stop at such blocks and the Go loop takes them.
func TestScaleKernels(t *testing.T) {
	if !scaleKernels {
		t.Skip("no scale kernels on this CPU or build (they are arm64 NEON, or amd64 AVX2 and F16C)")
	}
	for _, typ := range []ggml.Type{ggml.Q4_K, ggml.Q6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			tr, fast := transcodings[typ], direct[typ]
			be, bb := typ.BlockElems(), typ.BlockBytes()
			rng := rand.New(rand.NewPCG(13, uint64(typ)))
			run := func(raw []byte, kernels bool) (ok bool, data []byte, scale, off []uint16) {
				defer func(was bool) { nibbleKernels = was }(nibbleKernels)
				nibbleKernels = kernels
				n := len(raw) / bb * be
				data, scale, off = make([]byte, tr.dataBytes(n)), make([]uint16, n/tr.Block), make([]uint16, n/tr.Block)
				return fast(raw, data, scale, off), data, scale, off
			}
			var accepted, refused, kernelBlocks int
			for trial := range 400 {
				n := 1 + rng.IntN(40)
				raw := randomBlocks(typ, n, rng.Uint64())
				for b := 0; b < len(raw); b += bb {
					if trial%2 == 0 || rng.IntN(n) == 0 { // odd trials: about one rough block a run
						roughen(raw[b:b+bb], tr, rng, trial%4 == 0)
					}
				}
				kernelBlocks += kernelRun(typ, raw)
				wok, wdata, wscale, woff := run(raw, false)
				gok, gdata, gscale, goff := run(raw, true)
				if gok != wok {
					t.Fatalf("%d blocks: ok %v with the kernels, %v without", n, gok, wok)
				}
				if !gok {
					refused++
					continue
				}
				accepted++
				if !slices.Equal(gdata, wdata) || !slices.Equal(gscale, wscale) || !slices.Equal(goff, woff) {
					t.Fatalf("%d blocks % x:\nscale %x\nwant  %x\noffset %x\nwant   %x", n, raw, gscale, wscale, goff, woff)
				}
			}
			if accepted < 100 || refused < 20 || kernelBlocks < 1000 {
				t.Errorf("%d runs accepted, %d refused, %d blocks through the kernel: too few of one", accepted, refused, kernelBlocks)
			}
		})
	}
}

// kernelRun returns the number of blocks of raw the scale kernel takes before it stops.
func kernelRun(typ ggml.Type, raw []byte) int {
	n := len(raw) / typ.BlockBytes()
	scale, off := make([]uint16, 16*n), make([]uint16, 16*n)
	if typ == ggml.Q4_K {
		return scalesQ4_K(&raw[0], &scale[0], &off[0], n)
	}
	return scalesQ6_K(&raw[0], &scale[0], n)
}

// TestF16x8: the kernels' float32 → fp16 rounding is f16Nearest for every sign, exponent
// and kept fraction of a float32, each with the dropped bits that decide the rounding
// (none, the least, just below, at and just above half, all) and two random ones; the
// number of dropped bits grows where fp16 is subnormal. LILIMS_EXHAUSTIVE=1 checks all
// 2³² bit patterns instead (about 30 s).
func TestF16x8(t *testing.T) {
	if !scaleKernels {
		t.Skip("no scale kernels on this CPU or build (they are arm64 NEON, or amd64 AVX2 and F16C)")
	}
	var x [8]float32
	var h [8]uint16
	i, checked := 0, 0
	check := func(bits uint32) {
		x[i] = math.Float32frombits(bits)
		if i++; i < 8 {
			return
		}
		i = 0
		f16x8(&x, &h)
		for k, v := range x {
			if want := f16Nearest(float64(v)); h[k] != want && !(v != v && h[k]&0x7e00 == 0x7e00) {
				t.Fatalf("%#08x (%g): %#04x, f16Nearest %#04x", math.Float32bits(v), v, h[k], want)
			}
		}
		checked += 8
	}
	if os.Getenv("LILIMS_EXHAUSTIVE") != "" {
		for b := range uint64(1 << 32) {
			check(uint32(b))
		}
		t.Logf("%d float32 checked", checked)
		return
	}
	rng := rand.New(rand.NewPCG(17, 19))
	for e := range uint32(256) {
		drop := uint32(13) // fraction bits fp16 has not: 13, more for its subnormals
		if e < 113 {
			drop = min(24, 13+113-e)
		}
		half := uint32(1) << (drop - 1)
		for kept := uint32(0); kept < 1<<(23-min(drop, 23)); kept++ {
			for _, low := range []uint32{0, 1, half - 1, half, half + 1, 2*half - 1, rng.Uint32(), rng.Uint32()} {
				f := (kept<<drop | low&(2*half-1)) & (1<<23 - 1)
				check(e<<23 | f)
				check(1<<31 | e<<23 | f)
			}
		}
	}
	if checked < 1<<20 {
		t.Errorf("only %d float32 checked", checked)
	}
}

// TestF16x4d: scalesQ4_K's float64 → fp16 rounding (to odd at float32's precision, then to
// fp16) is f16Nearest at and around every fp16 tie (each midpoint between two finite
// fp16, and a few float64 ulps and float32 half-ulps either side), at every fp16, and for
// random float64 of every magnitude an offset may have. NaN is left out: an offset is
// never NaN.
func TestF16x4d(t *testing.T) {
	if !scaleKernels {
		t.Skip("no scale kernels on this CPU or build (they are arm64 NEON, or amd64 AVX2 and F16C)")
	}
	var x [4]float64
	var h [4]uint16
	i, checked := 0, 0
	check := func(v float64) {
		if x[i] = v; v != v {
			return
		}
		if i++; i < 4 {
			return
		}
		i = 0
		f16x4d(&x, &h)
		for k, v := range x {
			if want := f16Nearest(v); h[k] != want {
				t.Fatalf("%#016x (%g): %#04x, f16Nearest %#04x", math.Float64bits(v), v, h[k], want)
			}
		}
		checked += 4
	}
	around := func(v float64) {
		b := math.Float64bits(v)
		for _, d := range []uint64{0, 1, 2, 1<<28 - 1, 1 << 28, 1<<28 + 1, 1<<29 - 1, 1 << 29, 1<<29 + 1} {
			check(math.Float64frombits(b + d))
			check(math.Float64frombits(b - d))
		}
	}
	for a := range uint16(0x7c00) { // every finite non-negative fp16 and the tie above it
		for _, sign := range []float64{1, -1} {
			lo, hi := float64(f16ToF32(a)), float64(f16ToF32(a+1)) // a+1 = 0x7c00: Inf
			if a == 0x7bff {
				hi = 65536 // the tie that rounds to Inf
			}
			around(sign * lo)
			around(sign * (lo + hi) / 2)
		}
	}
	rng := rand.New(rand.NewPCG(23, 29))
	for range 1 << 18 {
		e := uint64(1023 - 60 + rng.IntN(100)) // 2⁻⁶⁰…2⁴⁰
		check(math.Float64frombits(rng.Uint64()&(1<<63|1<<52-1) | e<<52))
	}
	for _, v := range []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, 0x1p-126, 0x1p-127, 0x1p-149, 0x1p-150, 0x1.fffffep127, 0x1p128, 0x1p-25, 0x1p-24, 0x1.8p-25, 0x1.0000000000001p-25} {
		around(v)
		around(-v)
	}
	if checked < 1<<20 {
		t.Errorf("only %d float64 checked", checked)
	}
}
