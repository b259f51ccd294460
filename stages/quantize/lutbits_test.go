package quantize

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/mil/blob"
)

// TestPackIndices: every palette width packs LSB-first as MIL blobs do, read back by the
// blob package's unpacker (the one the reference runtime uses), and 4 bits exactly as pack4.
func TestPackIndices(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, bits := range LUTWidths {
		for n := range 37 {
			vals := make([]int32, n)
			for i := range vals {
				vals[i] = int32(rng.IntN(1 << bits))
			}
			dst := make([]byte, (n*bits+7)/8)
			packIndices(dst, vals, bits)
			for i, v := range blob.UnpackBits(bits, dst, n) {
				if int32(v) != vals[i] {
					t.Fatalf("%d bits, n %d: element %d unpacks to %d, want %d", bits, n, i, v, vals[i])
				}
			}
			if bits == 4 {
				want := make([]byte, len(dst))
				pack4(want, vals)
				if !slices.Equal(dst, want) {
					t.Fatalf("n %d: 4-bit packing % x, pack4 % x", n, dst, want)
				}
			}
		}
	}
}

// TestLUTWidths: every width makes palettes of 2^bits values, k-means error falls as the
// width grows, and chunking keeps each chunk's packed indices on a byte (the stored arrays
// are what Parts says, and Dequantize matches the manifest's error: TestSchemes).
func TestLUTWidths(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	x := make([]float32, 4096)
	w := make([]float32, len(x))
	for i := range x {
		x[i], w[i] = float32(rng.NormFloat64()), 1
	}
	last := 1.0
	for _, bits := range LUTWidths {
		c := lutCodec{bits: bits, group: 1, iters: 200}
		var s lutScratch
		idx := make([]int32, len(x))
		lut := make([]uint16, c.entries())
		e, sig := c.quantizeGroup(&s, x, w, idx, lut)
		rel := e / sig
		t.Logf("%d bits: relative squared error %.5f", bits, rel)
		if rel >= last {
			t.Errorf("%d bits: relative error %.5f, not below the narrower width's %.5f", bits, rel, last)
		}
		last = rel
		for i, k := range idx {
			if k < 0 || int(k) >= c.entries() {
				t.Fatalf("%d bits: index %d of element %d", bits, k, i)
			}
		}
		if !slices.IsSortedFunc(lut, func(a, b uint16) int { return cmpF16(a, b) }) {
			t.Errorf("%d bits: palette not ascending", bits)
		}
		j := &job{lut: &c, info: TensorInfo{Shape: []int{1000, 3}}}
		if r := chunkRows(j); r*3*bits%8 != 0 {
			t.Errorf("%d bits: chunks of %d rows of 3 do not start on a byte", bits, r)
		}
	}
}

func cmpF16(a, b uint16) int {
	x, y := f16Table[a], f16Table[b]
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TestLUTOverrides: overrides name a palette width ("lutN") or the stage's ("lut"), and the
// manifest records each tensor's index width as its dtype.
func TestLUTOverrides(t *testing.T) {
	s, _ := quantizeModel(t, "stories260K.gguf", stage.Params{"scheme": "channel", "lut_bits": int64(6),
		"overrides": []string{"blk.*.ffn_down.weight=lut3", "blk.*.attn_q.weight=lut", "token_embd.weight=lut8"}})
	seen := map[string]int{}
	for _, ti := range s.Manifest().Tensors {
		want := ""
		switch {
		case ti.Name == "token_embd.weight":
			want = "uint8"
		case strings.HasSuffix(ti.Name, "ffn_down.weight"):
			want = "uint3"
		case strings.HasSuffix(ti.Name, "attn_q.weight"):
			want = "uint6"
		default:
			continue
		}
		seen[want]++
		if ti.Encoding != LUT || ti.DType != want {
			t.Errorf("%s: %s %s, want lut %s", ti.Name, ti.Encoding, ti.DType, want)
		}
	}
	if fmt.Sprint(seen) != "map[uint3:5 uint6:5 uint8:1]" { // stories260K: 5 blocks

		t.Errorf("palettized tensors by width: %v", seen)
	}
}
