package quantize

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// TestTranscodeBound transcodes every quantized fixture and checks each element against
// ggml's own dequantization (the loader's): bit for bit where the manifest says exact,
// else within the stated bound 2⁻¹¹·(|s|·max|q − k| + |m − s·k|) (max over the type's
// quants), s and m the sub-block's scale and min as ggml computes them and k the integer
// shift the data holds (0 for symmetric types). The manifest's max_abs_err, measured on a
// sample of rows, is at most the largest deviation.
func TestTranscodeBound(t *testing.T) {
	for _, model := range []string{
		"tiny-llama256-q2_k.gguf", "tiny-llama256-q3_k_m.gguf", "tiny-llama256-q4_1.gguf",
		"tiny-llama256-q4_k_m.gguf", "tiny-llama256-q5_0.gguf", "tiny-llama256-q5_1.gguf",
		"tiny-llama256-q5_k_m.gguf", "tiny-llama256-q6_k.gguf", "tiny-llama256-iq4_nl.gguf",
		"tiny-phi2-q4_0.gguf", "tiny-phi2-q8_0.gguf",
	} {
		t.Run(model, func(t *testing.T) {
			s, f := quantizeModel(t, model, stage.Params{"scheme": "gguf"})
			for _, gt := range f.Tensors {
				qt, ok := s.Lookup(gt.Name)
				tr, can := qweights.TranscodingOf(gt.Type)
				if !ok {
					if can && len(gt.Shape) == 2 && gt.Elements() >= 1024 {
						t.Errorf("%s (%v) not transcoded", gt.Name, gt.Type)
					}
					continue
				}
				info := qt.Info
				if info.SourceType != gt.Type.String() || info.Bound != tr.Bound || info.DType != tr.DType ||
					info.BlockSize != tr.Block || info.Offset != tr.Offset || info.Stored != qweights.StoredSource {
					t.Fatalf("%s: manifest %+v, want the %v transcoding %+v", gt.Name, info, gt.Type, tr)
				}
				want, err := f.Float32s(gt)
				if err != nil {
					t.Fatal(err)
				}
				got := qt.Dequantize()
				raw := f.Data(gt)
				be, bb := gt.Type.BlockElems(), gt.Type.BlockBytes()
				q := make([]int32, be)
				var sc, mn [16]float32
				var worst, ratio float64
				for b := 0; b < len(want)/be; b++ {
					tr.Unpack(raw[b*bb:(b+1)*bb], q, sc[:], mn[:])
					var qk [16]float64 // per sub-block: max |q − k| over the type's quants
					for e := range be {
						k := q[e] - storedCode(qt, b*be+e)
						if top, ok := qmax[gt.Type]; ok {
							qk[e/tr.Block] = max(math.Abs(float64(k)), math.Abs(float64(top-k)))
						}
					}
					for e := range be {
						i := b*be + e
						d := math.Abs(float64(got[i]) - float64(want[i]))
						worst = max(worst, d)
						if info.Bound == qweights.BoundExact {
							if got[i] != want[i] {
								t.Fatalf("%s[%d] = %g, ggml %g (exact transcoding)", gt.Name, i, got[i], want[i])
							}
							continue
						}
						k := q[e] - storedCode(qt, i)
						sb, mb := float64(sc[e/tr.Block]), float64(mn[e/tr.Block])
						qr := qk[e/tr.Block]
						if tr.Offset == "" {
							qr = math.Abs(float64(q[e])) // symmetric: 2⁻¹¹·|s·q|
						}
						bound := math.Exp2(-11)*(math.Abs(sb)*qr+math.Abs(mb-sb*float64(k))) +
							math.Exp2(-22)*math.Abs(float64(want[i])) + math.Exp2(-30) // float32 products
						if d > bound {
							t.Fatalf("%s[%d]: |Δ| = %g > bound %g (s %g, m %g, q %d, k %d)", gt.Name, i, d, bound, sb, mb, q[e], k)
						}
						ratio = max(ratio, d/bound)
					}
				}
				// The stage measures one chunk of rows in measureEvery, the first always.
				if info.MaxAbsErr > worst || info.Bound != qweights.BoundExact && info.MaxAbsErr == 0 {
					t.Errorf("%s: manifest max_abs_err %g, measured over all rows %g", gt.Name, info.MaxAbsErr, worst)
				}
				if ratio > 0 {
					t.Logf("%s %v: max |Δ| %.3g, %.2f of the bound", gt.Name, gt.Type, worst, ratio)
				}
			}
		})
	}
}

// qmax is the largest quant of the asymmetric types (ggml-common.h).
var qmax = map[ggml.Type]int32{ggml.Q4_1: 15, ggml.Q5_1: 31, ggml.Q2_K: 3, ggml.Q4_K: 15, ggml.Q5_K: 31}

// storedCode is the data value of element i that the blockwise op sees: the stored level,
// or for lut+blockwise the code its index selects.
func storedCode(qt *Tensor, i int) int32 {
	if qt.Info.Encoding != LUTBlockwise {
		return stored(qt.Info.DType, qt.Data, i)
	}
	bits := map[string]int{"uint2": 2, "uint3": 3, "uint4": 4, "uint6": 6}[qt.Info.DType]
	bit := i * bits
	w := uint16(qt.Data[bit/8])
	if bit/8+1 < len(qt.Data) {
		w |= uint16(qt.Data[bit/8+1]) << 8
	}
	return int32(int8(qt.LUT[w>>(bit%8)&(1<<bits-1)]))
}

// stored reads element i of a data array of dtype.
func stored(dtype string, data []byte, i int) int32 {
	switch dtype {
	case "int8":
		return int32(int8(data[i]))
	case "uint8":
		return int32(data[i])
	}
	return nibble(data, i, dtype == "int4")
}

// TestTranscodeBadInput: a corrupt block scale (NaN or Inf d or dmin) is refused naming
// the tensor, row and block, for every transcoded type; a scale product or offset that
// overflows fp16 and a type with no transcoding name the tensor, the type and the
// fallback that would handle it.
func TestTranscodeBadInput(t *testing.T) {
	const in, out = 512, 8
	nan, inf := uint16(0x7e00), uint16(0x7c00)
	// block fills a valid block of typ (small scales, varied quants) and lets set corrupt it.
	tests := []struct {
		name string
		typ  ggml.Type
		at   int    // byte of block 5 (row 1, super-block or block 1 for K types) to overwrite
		val  uint16 // fp16 written there
		want []string
	}{
		{"Q4_0 d NaN", ggml.Q4_0, 0, nan, []string{"non-finite scale", "row"}},
		{"Q4_1 m Inf", ggml.Q4_1, 2, inf, []string{"non-finite scale"}},
		{"Q5_0 d Inf", ggml.Q5_0, 0, inf, []string{"non-finite scale"}},
		{"Q5_1 d NaN", ggml.Q5_1, 0, nan, []string{"non-finite scale"}},
		{"Q8_0 d Inf", ggml.Q8_0, 0, inf, []string{"non-finite scale"}},
		{"Q2_K dmin NaN", ggml.Q2_K, 82, nan, []string{"non-finite scale"}},
		{"Q3_K d Inf", ggml.Q3_K, 108, inf, []string{"non-finite scale"}},
		{"Q4_K d NaN", ggml.Q4_K, 0, nan, []string{"non-finite scale"}},
		{"Q4_K dmin Inf", ggml.Q4_K, 2, inf, []string{"non-finite scale"}},
		{"Q5_K d Inf", ggml.Q5_K, 0, inf, []string{"non-finite scale"}},
		{"Q6_K d NaN", ggml.Q6_K, 208, nan, []string{"non-finite scale"}},
		{"IQ4_NL d Inf", ggml.IQ4_NL, 0, inf, []string{"non-finite scale"}},
		{"IQ4_XS d NaN", ggml.IQ4_XS, 0, nan, []string{"non-finite scale"}},
		// d = 60000 times a sub-block scale of up to 63 is no fp16.
		{"Q4_K scale overflow", ggml.Q4_K, 0, 0x7b53, []string{"overflows fp16", "fallback: fp16"}},
		{"IQ2_XXS", ggml.IQ2_XXS, -1, 0, []string{"cannot read IQ2_XXS", "Q4_K_M"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be, bb := tc.typ.BlockElems(), tc.typ.BlockBytes()
			nblk := in * out / be
			data := make([]byte, nblk*bb)
			for i := range data {
				data[i] = byte(i*29 + 7)
			}
			if tc.at >= 0 {
				// Every fp16 field small and finite first: the block's d, dmin or m.
				for b := range nblk {
					for _, off := range fp16Fields(tc.typ) {
						binary.LittleEndian.PutUint16(data[b*bb+off:], toF16(0.01))
					}
				}
				blk := in/be + 1 // row 1, its second block
				binary.LittleEndian.PutUint16(data[blk*bb+tc.at:], tc.val)
			}
			f := writeModel(t, "blk.0.attn_q.weight", tc.typ, []int64{in, out}, data)
			cfg, err := ParseConfig(stage.Params{"scheme": "gguf"})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, err = Quantize(context.Background(), f, cfg, dir, nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range append(tc.want, `"blk.0.attn_q.weight"`) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.at >= 0 && !strings.Contains(err.Error(), "row 1 block 1") {
				t.Errorf("error %q does not name row 1 block 1", err)
			}
			if _, serr := os.Stat(filepath.Join(dir, ManifestFile)); serr == nil {
				t.Error("a manifest was written for a refused model")
			}
		})
	}
}

// fp16Fields are the byte offsets of a block's fp16 scales (ggml-common.h).
func fp16Fields(t ggml.Type) []int {
	switch t {
	case ggml.Q4_1, ggml.Q5_1, ggml.Q4_K, ggml.Q5_K:
		return []int{0, 2}
	case ggml.Q2_K:
		return []int{80, 82}
	case ggml.Q3_K:
		return []int{108}
	case ggml.Q6_K:
		return []int{208}
	}
	return []int{0}
}

// writeModel writes a llama GGUF of tensors of one type and shape (each name holding data)
// and opens it (closed when the test ends).
func writeModel(t *testing.T, name string, typ ggml.Type, shape []int64, data []byte, more ...string) *gguf.File {
	t.Helper()
	b := gguf.NewBuilder()
	b.Set("general.architecture", "llama")
	for _, n := range append([]string{name}, more...) {
		if err := b.AddTensorBytes(n, typ, shape, data); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestTranscodedSource: transcoded tensors are not copied into the artifact; they are read
// from the GGUF's blocks, which the reader checks: the model may move (a consumer names it),
// but another file in its place is refused, naming it.
func TestTranscodedSource(t *testing.T) {
	const model = "tiny-phi2-q4_0.gguf"
	f := openModel(t, model)
	cfg, _ := ParseConfig(stage.Params{"scheme": "gguf"})
	dir := t.TempDir()
	if _, err := Quantize(context.Background(), f, cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1024 {
		t.Errorf("weights file of %d bytes: transcoded arrays were copied", st.Size())
	}
	raw, err := os.ReadFile(filepath.Join(models, model))
	if err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(t.TempDir(), "moved.gguf")
	if err := os.WriteFile(moved, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := qweights.OpenSource(dir, moved)
	if err != nil {
		t.Fatal(err)
	}
	qt, ok := s.Lookup("blk.0.attn_qkv.weight")
	gt, _ := f.Tensor("blk.0.attn_qkv.weight")
	want, _ := f.Float32s(gt)
	if !ok || !slices.Equal(qt.Dequantize(), want) {
		t.Error("the moved model's tensor does not read back ggml's values")
	}
	part, err := s.Rows("blk.0.attn_qkv.weight", 8, 24)
	in := qt.Info.Shape[1]
	if err != nil || !slices.Equal(part.Dequantize(), want[8*in:24*in]) {
		t.Errorf("rows [8, 24): %v", err)
	}
	s.Close()
	other := filepath.Join(models, "tiny-phi2-q8_0.gguf")
	if _, err := qweights.OpenSource(dir, other); err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("another model in its place: %v", err)
	}
	if _, err := qweights.OpenSource(dir, filepath.Join(t.TempDir(), "gone.gguf")); err == nil || !strings.Contains(err.Error(), "gone.gguf") {
		t.Errorf("a missing model: %v", err)
	}
}

// TestTranscodeUnfactorable: a Q4_K tensor with a constant sub-block (scale code 0, min
// code 1: ggml's values −dmin there) cannot hold factored scales, whose scale would be 0:
// the stage keeps fp16 scales for that tensor (and notes it), factored ones for the others,
// and both read back as ggml's values within the transcoding's bound.
func TestTranscodeUnfactorable(t *testing.T) {
	const in, out = 512, 8
	bb := ggml.Q4_K.BlockBytes()
	nblk := in * out / ggml.Q4_K.BlockElems()
	block := func(constant bool) []byte {
		data := make([]byte, nblk*bb)
		for i := range data {
			data[i] = byte(i*29 + 7)
		}
		for b := range nblk {
			binary.LittleEndian.PutUint16(data[b*bb:], toF16(0.01))
			binary.LittleEndian.PutUint16(data[b*bb+2:], toF16(0.02))
			for i := range 12 { // every sub-block's scale and min codes non-zero (33, 1, 2)
				data[b*bb+4+i] = 0x21
			}
		}
		if constant { // block 3, sub-block 0: scales[0] = 0, mins: scales[4] = 1
			data[3*bb+4], data[3*bb+8] = 0, 1
		}
		return data
	}
	var factored string // the quantize directory of the tensor without a constant sub-block
	for _, constant := range []bool{false, true} {
		f := writeModel(t, "blk.0.attn_q.weight", ggml.Q4_K, []int64{in, out}, block(constant))
		cfg, err := ParseConfig(stage.Params{"scheme": "gguf"})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		m, err := Quantize(context.Background(), f, cfg, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		ti := m.Tensors[0]
		if wantG := map[bool]int{false: 8, true: 0}[constant]; ti.ScaleGroup != wantG || ti.BitsPerWeight != map[bool]float64{false: 4.8125, true: 5}[constant] {
			t.Errorf("constant sub-block %v: scale group %d, %g bits/weight (note %q)", constant, ti.ScaleGroup, ti.BitsPerWeight, ti.Note)
		}
		s, err := qweights.OpenSource(dir, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		qt, ok := s.Lookup(ti.Name)
		if !ok {
			t.Fatal("no tensor")
		}
		got, want := qt.Dequantize(), make([]float32, in*out)
		gt, _ := f.Tensor(ti.Name)
		if err := f.DequantizeRows(gt, 0, out, want); err != nil {
			t.Fatal(err)
		}
		// Within the transcoding's bound here (2⁻¹¹·(|s|·8 + |m − 8s|) < 6e-3); a constant
		// sub-block read with a zero scale would be off by dmin = 0.02.
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 6e-3 {
				t.Fatalf("constant sub-block %v: element %d = %g, ggml %g", constant, i, got[i], want[i])
			}
		}
		if !constant { // RowsInto's factored scales are ScaleCodes', or left to it
			rows, err := s.RowsInto(ti.Name, 0, out, nil)
			if err != nil {
				t.Fatal(err)
			}
			codes, factors, err := s.ScaleCodes(ti.Name, 0, out, nil)
			if err != nil || !bytes.Equal(codes, rows.Scale) || !bytes.Equal(factors, rows.ScaleFactor) {
				t.Errorf("ScaleCodes (%v) and RowsInto give different factored scales", err)
			}
			none := func(a qweights.Array, n int) []byte {
				if a == qweights.ScaleArray || a == qweights.ScaleFactorArray {
					return nil
				}
				return make([]byte, n)
			}
			if rows, err := s.RowsInto(ti.Name, 0, out, none); err != nil {
				t.Error(err)
			} else if rows.Scale != nil || rows.ScaleFactor != nil {
				t.Errorf("RowsInto without scale arrays made scales of %d and %d bytes", len(rows.Scale), len(rows.ScaleFactor))
			}
		}
		s.Close()
		if !constant {
			factored = dir
		} else { // the factored manifest over the constant sub-block's data: refused
			s, err := qweights.OpenSource(factored, f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.ScaleCodes(ti.Name, 0, out, nil); err == nil || !strings.Contains(err.Error(), "cannot hold") {
				t.Errorf("factored scales over a constant sub-block: %v, want a refusal", err)
			}
			if _, err := s.RowsInto(ti.Name, 0, out, nil); err == nil || !strings.Contains(err.Error(), "cannot hold") {
				t.Errorf("rows of factored scales over a constant sub-block: %v, want a refusal", err)
			}
			s.Close()
		}
	}
}

// TestUnreadableTypes: a model with weights of a type lilims can neither transcode nor
// decode (IQ2_XXS) is refused under every scheme before any work, in one error per type
// that names the first tensor, how many more there are and the types it reads.
func TestUnreadableTypes(t *testing.T) {
	const in, out = 256, 4
	data := make([]byte, in*out/ggml.IQ2_XXS.BlockElems()*ggml.IQ2_XXS.BlockBytes())
	f := writeModel(t, "blk.0.attn_q.weight", ggml.IQ2_XXS, []int64{in, out}, data, "blk.0.attn_k.weight", "blk.0.attn_v.weight")
	for _, scheme := range []string{"auto", "gguf", "block", "none"} {
		cfg, err := ParseConfig(stage.Params{"scheme": scheme})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		_, err = Quantize(context.Background(), f, cfg, dir, nil)
		if err == nil {
			t.Fatalf("scheme %s: accepted", scheme)
		}
		for _, w := range []string{`tensor "blk.0.attn_q.weight" and 2 more`, "cannot read IQ2_XXS", "Q4_K_M", "IQ4_XS"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("scheme %s: error %q does not say %q", scheme, err, w)
			}
		}
		if strings.Count(err.Error(), "IQ2_XXS") != 1 {
			t.Errorf("scheme %s: error %q is not one line for the type", scheme, err)
		}
		if _, serr := os.Stat(filepath.Join(dir, ManifestFile)); serr == nil {
			t.Errorf("scheme %s: a manifest was written for a refused model", scheme)
		}
	}
}
