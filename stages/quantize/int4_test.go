package quantize

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// portableF16 is the reference for quantizeF16: decode every row through f16Table, then
// quantizeRow and pack4, exactly the path a non-amd64 build takes.
func portableF16(c *blockCodec, src []byte, in int, w []float32, data []byte, scale []uint16, rowErr, rowSig []float64) {
	nb := in / c.block
	x := make([]float32, in)
	q := make([]int32, in)
	for r := range rowErr {
		for i := range x {
			x[i] = f16Table[binary.LittleEndian.Uint16(src[2*(r*in+i):])]
		}
		rowErr[r], rowSig[r] = c.quantizeRow(x, w, q, scale[r*nb:(r+1)*nb], nil)
		pack4(data[r*in/2:(r+1)*in/2], q)
	}
}

// TestInt4StripMatchesPortable checks the strip kernel (AVX2, amd64) against the portable
// Go path on random weights: packed levels, fp16 scales and the per-row error sums must be
// bit-identical, not merely close, for block sizes 8…128, searches 0…3, row counts that
// leave tails of 1…7 rows, uniform and non-uniform importance, and blocks built to hit the rare
// branches: all zeros, a range that underflows fp16 (scale 0 with nonzero input), ties
// of opposite sign in both orders, exact ties of rounding, and outliers near fp16's max.
func TestInt4StripMatchesPortable(t *testing.T) {
	if !haveInt4Strip {
		t.Skip("no strip kernel on this CPU or architecture")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct {
		block, nb, rows, search int
		uniform                 bool // importance all 1 (no calibration): the kernel's other loop
	}{
		{32, 3, 8, 2, false}, {32, 5, 19, 2, false}, {32, 1, 1, 2, false}, {32, 4, 23, 0, false},
		{32, 2, 16, 1, false}, {32, 2, 9, 3, false}, {8, 6, 17, 2, false}, {16, 4, 13, 2, false},
		{24, 3, 10, 2, false}, {64, 2, 21, 2, false}, {128, 2, 15, 2, false}, {40, 2, 8, 4, false},
		{32, 3, 8, 2, true}, {32, 5, 27, 2, true}, {64, 2, 13, 1, true}, {128, 1, 9, 2, true}, {32, 4, 16, 0, true},
		{1024, 1, 11, 2, false}, {2560, 1, 9, 2, true}, // per-channel: one block per row
	} {
		in := tc.block * tc.nb
		src := make([]byte, 2*tc.rows*in)
		for i := 0; i < tc.rows*in; i++ {
			v := float32(rng.NormFloat64() * 0.02)
			binary.LittleEndian.PutUint16(src[2*i:], toF16(v))
		}
		put := func(r, b, i int, v float32) {
			binary.LittleEndian.PutUint16(src[2*(r*in+b*tc.block+i):], toF16(v))
		}
		// Special blocks, spread over rows and columns so that they share strips with
		// ordinary ones (one lane each).
		for r := 0; r < tc.rows; r++ {
			b := r % tc.nb
			switch r % 7 {
			case 0: // all zeros, with a negative zero
				for i := 0; i < tc.block; i++ {
					put(r, b, i, 0)
				}
				binary.LittleEndian.PutUint16(src[2*(r*in+b*tc.block+1):], 0x8000)
			case 1: // fp16 subnormals: vmax/−8 underflows to a zero scale
				for i := 0; i < tc.block; i++ {
					binary.LittleEndian.PutUint16(src[2*(r*in+b*tc.block+i):], uint16(rng.IntN(3))|uint16(rng.IntN(2))<<15)
				}
			case 2: // opposite-sign tie, negative first
				put(r, b, 3, -0.5)
				put(r, b, tc.block-1, 0.5)
			case 3: // opposite-sign tie, positive first
				put(r, b, 2, 0.25)
				put(r, b, 5, -0.25)
			case 4: // levels on exact halves: ties of rounding
				for i := 0; i < tc.block; i++ {
					put(r, b, i, float32(rng.IntN(33)-16)/2)
				}
			case 5: // an outlier near fp16's largest finite value
				put(r, b, tc.block/2, -65504)
			}
		}
		w := make([]float32, in)
		for i := range w {
			w[i] = 1
			if !tc.uniform {
				w[i] = float32(0.001 + rng.ExpFloat64())
			}
		}
		c := &blockCodec{dtype: "int4", symmetric: true, block: tc.block, search: tc.search}
		nb := in / tc.block
		gotData, wantData := make([]byte, tc.rows*in/2), make([]byte, tc.rows*in/2)
		gotScale, wantScale := make([]uint16, tc.rows*nb), make([]uint16, tc.rows*nb)
		gotErr, wantErr := make([]float64, tc.rows), make([]float64, tc.rows)
		gotSig, wantSig := make([]float64, tc.rows), make([]float64, tc.rows)
		var rs int4Rows
		if !c.quantizeF16(&rs, src, in, w, gotData, gotScale, gotErr, gotSig) {
			t.Fatalf("%+v: finite input reported as non-finite", tc)
		}
		portableF16(c, src, in, w, wantData, wantScale, wantErr, wantSig)
		for i := range wantScale {
			if gotScale[i] != wantScale[i] {
				t.Fatalf("%+v: row %d block %d: scale %#04x, portable %#04x", tc, i/nb, i%nb, gotScale[i], wantScale[i])
			}
		}
		for i := range wantData {
			if gotData[i] != wantData[i] {
				t.Fatalf("%+v: row %d byte %d: %#02x, portable %#02x", tc, i/(in/2), i%(in/2), gotData[i], wantData[i])
			}
		}
		for r := range wantErr {
			if math.Float64bits(gotErr[r]) != math.Float64bits(wantErr[r]) || math.Float64bits(gotSig[r]) != math.Float64bits(wantSig[r]) {
				t.Fatalf("%+v: row %d: sums (%v, %v), portable (%v, %v)", tc, r, gotErr[r], gotSig[r], wantErr[r], wantSig[r])
			}
		}
	}
}

// TestInt4StripNonFinite checks that an Inf or NaN anywhere in a strip or a tail row makes
// quantizeF16 report it (the stage then takes the loader's path, which names the element),
// rather than quantizing it.
func TestInt4StripNonFinite(t *testing.T) {
	if !haveInt4Strip {
		t.Skip("no strip kernel on this CPU or architecture")
	}
	const in, rows = 64, 10
	c := &blockCodec{dtype: "int4", symmetric: true, block: 32, search: 2}
	w := make([]float32, in)
	for i := range w {
		w[i] = 1
	}
	for _, tc := range []struct {
		elem int
		bits uint16
	}{{0, 0x7c00}, {7*in + 63, 0xfc00}, {3*in + 17, 0x7e01}, {9*in + 5, 0x7c00}} {
		src := make([]byte, 2*rows*in)
		binary.LittleEndian.PutUint16(src[2*tc.elem:], tc.bits)
		var rs int4Rows
		ok := c.quantizeF16(&rs, src, in, w, make([]byte, rows*in/2), make([]uint16, rows*2), make([]float64, rows), make([]float64, rows))
		if ok {
			t.Errorf("element %d = %#04x: quantizeF16 reported finite input", tc.elem, tc.bits)
		}
	}
}

// TestInt4ArgsLayout pins the field offsets int4_amd64.s reads (A_SRC … A_BLOCK).
func TestInt4ArgsLayout(t *testing.T) {
	var a int4Args
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"src", unsafe.Offsetof(a.src), 0}, {"stride", unsafe.Offsetof(a.stride), 8},
		{"nb", unsafe.Offsetof(a.nb), 16}, {"w", unsafe.Offsetof(a.w), 24},
		{"cand", unsafe.Offsetof(a.cand), 32}, {"ncand", unsafe.Offsetof(a.ncand), 40},
		{"scratch", unsafe.Offsetof(a.scratch), 48}, {"data", unsafe.Offsetof(a.data), 56},
		{"dstride", unsafe.Offsetof(a.dstride), 64}, {"scale", unsafe.Offsetof(a.scale), 72},
		{"errs", unsafe.Offsetof(a.errs), 80}, {"sigs", unsafe.Offsetof(a.sigs), 88},
		{"bad", unsafe.Offsetof(a.bad), 96}, {"block", unsafe.Offsetof(a.block), 104},
		{"uniform", unsafe.Offsetof(a.uniform), 112},
	} {
		if f.got != f.want {
			t.Errorf("int4Args.%s at offset %d, the assembly reads %d", f.name, f.got, f.want)
		}
	}
}

// TestToF16Rounding pins toF16 to IEEE binary16 round-to-nearest-even where rounding is
// delicate (overflow to Inf, ties, subnormals), which is what the kernel's VCVTPS2PH with
// rounding mode 0 does; the strip tests above compare the two through every scale.
func TestToF16Rounding(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{65504, 0x7bff}, {65519.996, 0x7bff}, {65520, 0x7c00}, // largest finite; halfway rounds to Inf (even)
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, // ties to even
		{0x1p-24, 0x0001}, {0x1p-25, 0x0000}, {0x1.8p-25, 0x0001}, // smallest subnormal, its half (even: 0), above half
		{-0x1p-25, 0x8000},
	} {
		if got := toF16(tc.f); got != tc.want {
			t.Errorf("toF16(%v) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

// TestInt4StripEndToEnd runs the stage on F16 models with and without the strip kernel and
// requires byte-identical weights.safetensors and manifest.json (scales, packed levels and
// each tensor's rel_rmse): block sizes 32, 64 and 128, per-channel, searches 0 and 2.
func TestInt4StripEndToEnd(t *testing.T) {
	if !haveInt4Strip {
		t.Skip("no strip kernel on this CPU or architecture")
	}
	t.Cleanup(func() { haveInt4Strip = true })
	for _, tc := range []struct {
		model string
		p     stage.Params
	}{
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "block"}},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "block", "search": int64(0)}},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "block", "block_size": int64(64)}},
		{"tiny-llama256-f16.gguf", stage.Params{"scheme": "channel"}},
		{"tiny-phi2-f16.gguf", stage.Params{"scheme": "block", "block_size": int64(128)}},
		{"tiny-qwen2-f16.gguf", stage.Params{"scheme": "block"}},
	} {
		sameOutputWithSwitch(t, tc.model, tc.p, &haveInt4Strip, "the strip kernel")
	}
}

// TestInt4StripInfError checks the stage's handling of a non-finite F16 weight on the
// kernel's path: the chunk falls back to decodeRows, whose loader error names the tensor
// and the row (row 9 of a 64×64 matrix, inside the second strip of eight rows).
func TestInt4StripInfError(t *testing.T) {
	wantRow9Error(t, ggml.F16, f16Matrix64(0x7c00), "block") // +Inf
}

// sameOutputWithSwitch quantizes model with p twice, with *sw off and on, and fails unless
// the weights and the manifest are byte-identical (a fast path must not change the output).
func sameOutputWithSwitch(t *testing.T, model string, p stage.Params, sw *bool, what string) {
	t.Helper()
	saved := *sw
	defer func() { *sw = saved }()
	f := openModel(t, model)
	cfg, err := ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	var out [2][2][]byte // [off, on][weights, manifest]
	for k, on := range []bool{false, true} {
		*sw = on
		dir := t.TempDir()
		if _, err := Quantize(context.Background(), f, cfg, dir, nil); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{WeightsFile, ManifestFile} {
			if out[k][i], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !bytes.Equal(out[0][0], out[1][0]) {
		t.Errorf("%s %v: weights differ with %s", model, p, what)
	}
	if !bytes.Equal(out[0][1], out[1][1]) {
		t.Errorf("%s %v: manifests differ with %s", model, p, what)
	}
}

// wantRow9Error writes a GGUF holding one 64×64 tensor blk.0.attn_q.weight of type typ
// (data in that type's layout, row 9 corrupt), quantizes it with scheme and checks that
// the error is the loader's, naming the tensor and row 9.
func wantRow9Error(t *testing.T, typ ggml.Type, data []byte, scheme string) {
	t.Helper()
	f := writeModel(t, "blk.0.attn_q.weight", typ, []int64{64, 64}, data)
	cfg, err := ParseConfig(stage.Params{"scheme": scheme})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Quantize(context.Background(), f, cfg, t.TempDir(), nil)
	var fe *gguf.FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "blk.0.attn_q.weight") || !strings.Contains(err.Error(), "row 9") {
		t.Fatalf("%s: corrupt row 9: err = %v, want the loader's FormatError naming the tensor and row 9", scheme, err)
	}
}

// f16Matrix64 is a 64×64 F16 tensor's bytes with value bits v placed at row 9, element 40.
func f16Matrix64(v uint16) []byte {
	const in, out = 64, 64
	data := make([]byte, 2*in*out)
	for i := 0; i < in*out; i++ {
		binary.LittleEndian.PutUint16(data[2*i:], toF16(float32(i%13)-6))
	}
	binary.LittleEndian.PutUint16(data[2*(9*in+40):], v)
	return data
}
