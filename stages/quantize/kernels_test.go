package quantize

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// TestFitLevelsMatchesPortable checks the vector search kernel (SSE on amd64) against the
// portable Go loop on random blocks of every length up to 133, tails not a multiple of the
// vector width included. They add the same products in the same order, so the sums must
// be bit-identical, not merely close: the search's choice of scale then cannot depend on
// the machine.
func TestFitLevelsMatchesPortable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for n := 1; n <= 133; n++ {
		xs := make([]float32, n)
		ws := make([]float32, n)
		var vmax float32
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
			ws[i] = float32(rng.ExpFloat64())
			if abs(xs[i]) > abs(vmax) {
				vmax = xs[i]
			}
		}
		for _, k := range []float32{-1, -0.5, 0, 0.5, 1} {
			iscale := -(8 + k) / vmax
			gx, gl := fitLevels(xs, ws, iscale, -8, 7)
			wx, wl := fitLevelsGo(xs, ws, iscale, -8, 7)
			if math.Float32bits(gx) != math.Float32bits(wx) || math.Float32bits(gl) != math.Float32bits(wl) {
				t.Fatalf("n=%d k=%v: fitLevels = (%v, %v), portable (%v, %v)", n, k, gx, gl, wx, wl)
			}
			// The sums themselves, against float64 with levels from math.RoundToEven.
			var ex, el float64
			for i, x := range xs {
				l := math.Max(-8, math.Min(7, math.RoundToEven(float64(x*iscale))))
				ex += float64(ws[i]) * l * float64(x)
				el += float64(ws[i]) * l * l
			}
			if math.Abs(float64(gx)-ex) > 1e-4*math.Abs(el)+1e-4 || math.Abs(float64(gl)-el) > 1e-5*el+1e-4 {
				t.Fatalf("n=%d k=%v: fitLevels = (%v, %v), float64 (%v, %v)", n, k, gx, gl, ex, el)
			}
		}
	}
}

// TestAssignMatchesRound checks the float32 assignment of levels against the integer
// definition clamp(round(x/d)+z, lo, hi), ties to even before z is added, for every
// dtype's range, zero points and elements far outside the range (clipped outliers).
func TestAssignMatchesRound(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	xs := make([]float32, 257)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64() * 4)
	}
	xs[0], xs[1], xs[2], xs[3] = 0.5, 1.5, -2.5, 1e30 // ties and an outlier
	got := make([]int32, len(xs))
	for _, tc := range []struct {
		lo, hi, z int32
		d         float32
	}{{-8, 7, 0, 1}, {-8, 7, 0, 0.37}, {0, 15, 7, 1}, {0, 15, 3, 0.61}, {-127, 127, 0, 0.05}, {0, 255, 128, 0.031}} {
		assign(xs, got, tc.d, tc.z, tc.lo, tc.hi)
		id := 1 / tc.d
		for i, x := range xs {
			want := clamp(round(x*id)+tc.z, tc.lo, tc.hi)
			if got[i] != want {
				t.Fatalf("%+v: x=%v: level %d, want %d", tc, x, got[i], want)
			}
		}
	}
}

// TestDecodeRowsF16 checks the F16 fast path against the loader's DequantizeRows on all
// 63488 finite binary16 patterns (bit-identical: both widen exactly), and that a row holding
// an Inf or a NaN gets the loader's error naming the tensor, not a silent value.
func TestDecodeRowsF16(t *testing.T) {
	const in = 1024
	var finite []uint16
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 != 0x7c00 {
			finite = append(finite, uint16(h))
		}
	}
	rows := len(finite) / in // 62 rows: 63488 = 62·1024
	data := make([]byte, 2*rows*in)
	for i := range rows * in {
		binary.LittleEndian.PutUint16(data[2*i:], finite[i])
	}
	bad := append([]byte{}, data...)
	binary.LittleEndian.PutUint16(bad[2*(5*in+17):], 0x7c00) // +Inf in row 5, element 17
	b := gguf.NewBuilder()
	b.Set("general.architecture", "llama")
	for name, d := range map[string][]byte{"good.weight": data, "bad.weight": bad} {
		if err := b.AddTensorBytes(name, ggml.F16, []int64{in, int64(rows)}, d); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "f16.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	good, _ := f.Tensor("good.weight")
	got := make([]float32, 7*in)
	want := make([]float32, 7*in)
	for r0 := 0; r0 < rows; r0 += 7 {
		n := min(7, rows-r0)
		if err := decodeRows(f, good, r0, n, got[:n*in]); err != nil {
			t.Fatal(err)
		}
		if err := f.DequantizeRows(good, int64(r0), int64(n), want[:n*in]); err != nil {
			t.Fatal(err)
		}
		for i := range n * in {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("row %d element %d: %v, loader %v", r0+i/in, i%in, got[i], want[i])
			}
		}
	}

	badT, _ := f.Tensor("bad.weight")
	err = decodeRows(f, badT, 3, 4, got[:4*in])
	var fe *gguf.FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "bad.weight") || !strings.Contains(err.Error(), "row 5") {
		t.Fatalf("Inf in row 5: err = %v, want the loader's FormatError naming bad.weight row 5", err)
	}
	if err := decodeRows(f, badT, 0, 5, got[:5*in]); err != nil {
		t.Fatalf("rows [0, 5) are finite: %v", err)
	}
}

// TestSignedAbsMax checks the branch-free scan against the definition ggml's quantizers use
// (first element of largest magnitude wins), on random blocks of every length up to 70 and
// on ties of opposite sign in both orders, where the first must win.
func TestSignedAbsMax(t *testing.T) {
	ref := func(xs []float32) (amax, vmax float32) {
		for _, v := range xs {
			if a := abs(v); a > amax {
				amax, vmax = a, v
			}
		}
		return amax, vmax
	}
	rng := rand.New(rand.NewPCG(11, 12))
	cases := [][]float32{{}, {0, 0, 0, 0, 0}, {1, -2, 2, 0, 0, 0}, {1, 2, -2, 0, 0, 0}, {0, 0, 0, 0, 3, -3}, {0, 0, 0, 0, -3, 3}}
	for n := 1; n <= 70; n++ {
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64())
		}
		cases = append(cases, xs)
	}
	for _, xs := range cases {
		ga, gv := signedAbsMax(xs)
		wa, wv := ref(xs)
		if ga != wa || gv != wv {
			t.Errorf("%v: (%v, %v), want (%v, %v)", xs, ga, gv, wa, wv)
		}
	}
}

// TestTranscodeNonFiniteScale checks that a Q4_0 block whose fp16 scale is Inf (which
// the transcoder reads without the loader's dequantization) is still refused with the
// loader's error naming the tensor and row, rather than copied into the package.
func TestTranscodeNonFiniteScale(t *testing.T) {
	const in, out = 64, 64
	data := make([]byte, in*out/32*18)
	for blk := 0; blk < len(data); blk += 18 {
		binary.LittleEndian.PutUint16(data[blk:], toF16(0.01))
		for i := 2; i < 18; i++ {
			data[blk+i] = byte(blk + i)
		}
	}
	binary.LittleEndian.PutUint16(data[(9*in/32+1)*18:], 0x7c00) // row 9, second block: d = +Inf
	wantRow9Error(t, ggml.Q4_0, data, "gguf")
}
