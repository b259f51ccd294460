package qweights

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/loader/ggml"
)

// A lut+blockwise tensor round-trips through the artifact: packCodes writes MIL's
// sub-byte packing (as blob.UnpackBits reads it), Rows cuts rows that start mid-byte, and
// Dequantize gives scale·(code − offset).
func TestLUTBlockwiseArtifact(t *testing.T) {
	const out, in = 3, 12 // 3-bit indices: row 1 starts at bit 36, mid-byte
	codes := codeRange(-4, 8)
	q := make([]int32, out*in)
	for i := range q {
		q[i] = int32(i*5%8) - 4
	}
	data := make([]byte, (out*in*3+7)/8)
	packCodes(data, 0, q, "uint3", codes)
	for i, v := range blob.UnpackBits(3, data, out*in) {
		if codes[v] != q[i] {
			t.Fatalf("element %d: index %d is code %d, want %d", i, v, codes[v], q[i])
		}
	}
	ti := TensorInfo{Name: "w", Encoding: LUTBlockwise, Shape: []int{out, in}, DType: "uint3", BlockSize: 4, Offset: "fp16"}
	scale := halves([]uint16{toF16(0.5), toF16(1), toF16(2), toF16(4), toF16(0.25), toF16(8), toF16(3), toF16(1.5), toF16(-1)})
	off := halves([]uint16{toF16(0), toF16(1), toF16(-1), toF16(0.5), toF16(2), toF16(0), toF16(3), toF16(-2.5), toF16(0.125)})
	dir := t.TempDir()
	w, err := Create(dir, "test", []TensorInfo{ti})
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range map[string][]byte{"data": data, "lut": codeBytes(codes), "scale": scale, "offset": off} {
		if err := w.WriteTensorAt("w."+key, 0, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(&Manifest{Scheme: "test", Tensors: []TensorInfo{ti}}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Clean(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	full, ok := s.Lookup("w")
	if !ok {
		t.Fatal("w not found")
	}
	all := full.Dequantize()
	for i, v := range all {
		j := i / 4
		want := f16ToF32(uint16(scale[2*j])|uint16(scale[2*j+1])<<8) * (float32(q[i]) - f16ToF32(uint16(off[2*j])|uint16(off[2*j+1])<<8))
		if v != want {
			t.Fatalf("element %d = %g, want %g", i, v, want)
		}
	}
	row, err := full.Rows(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Dequantize(); !slices.Equal(got, all[in:]) {
		t.Errorf("rows [1, 3) = %v, want %v", got, all[in:])
	}
}

// Every transcoding, on random blocks of its type (fp16 fields set to small finite
// values), stays within its stated bound of ggml's own dequantization element by element:
// exact where the bound says so. This covers IQ4_XS, which has no model fixture.
func TestTranscodingsRandomBlocks(t *testing.T) {
	for typ, tr := range transcodings {
		t.Run(typ.String(), func(t *testing.T) {
			// Enough random blocks that sub-blocks with a zero scale, with and without a
			// min, occur in every type (a 4-bit scale field is 0 once in 16).
			r := rand.New(rand.NewPCG(7, uint64(typ)))
			const rows = 64
			in := 2 * typ.BlockElems()
			bb := typ.BlockBytes()
			raw := make([]byte, rows*in/typ.BlockElems()*bb)
			for i := range raw {
				raw[i] = byte(r.Uint32())
			}
			for b := 0; b < len(raw); b += bb {
				for _, at := range tr.halves {
					binary.LittleEndian.PutUint16(raw[b+at:], toF16(float32(r.Float64()*0.02+0.001)))
				}
			}
			n := rows * in
			q := make([]int32, n)
			scale := make([]uint16, n/tr.Block)
			var off []uint16
			if tr.Offset != "" {
				off = make([]uint16, len(scale))
			}
			if err := tr.Rows(typ, raw, in, q, scale, off); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, tr.dataBytes(n))
			tr.pack(data, 0, q)
			ti := TensorInfo{Encoding: tr.Encoding, Shape: []int{rows, in}, DType: tr.DType, BlockSize: tr.Block, Offset: tr.Offset}
			qt := &Tensor{Info: ti, Data: data, Scale: halves(scale)}
			if off != nil {
				qt.Offset = halves(off)
			}
			if tr.Encoding == LUTBlockwise {
				qt.LUT = codeBytes(tr.Codes)
			}
			got := qt.Dequantize()
			want := make([]float32, n)
			if err := ggml.DequantizeRow(typ, raw, want); err != nil {
				t.Fatal(err)
			}
			var u [256]int32
			var s, m [16]float32
			be := typ.BlockElems()
			for b := range n / be {
				tr.unpack(raw[b*bb:(b+1)*bb], u[:be], s[:be/tr.Block], m[:be/tr.Block])
				for e := range be {
					i := b*be + e
					d := math.Abs(float64(got[i]) - float64(want[i]))
					if tr.Bound == BoundExact {
						if d != 0 {
							t.Fatalf("element %d = %g, ggml %g (exact)", i, got[i], want[i])
						}
						continue
					}
					sb, mb := math.Abs(float64(s[e/tr.Block])), math.Abs(float64(m[e/tr.Block]))
					// The bound with the largest shift remainder the type allows (qmax, or
					// |q| for the symmetric types), plus float32 product rounding.
					qr := math.Abs(float64(u[e]))
					if tr.Offset != "" {
						qr = float64(tr.qmax)
					}
					bound := math.Exp2(-11)*(sb*qr+mb+sb*float64(tr.qmax)) + math.Exp2(-22)*math.Abs(float64(want[i])) + 1e-12
					if d > bound {
						t.Fatalf("element %d: |Δ| %g > bound %g", i, d, bound)
					}
				}
			}
		})
	}
}

// TestFactoredScales: for the types whose scales are stored factored (TensorInfo.ScaleGroup),
// fp16(d·code) of each sub-block — what the constexpr op that makes the scales computes —
// is the fp16 scale Rows gives it, on random blocks (zero, subnormal and overflowing d
// included: a block Rows refuses is skipped) that are Factorable; a block with a constant
// sub-block (scale 0, min not) is not; and the manifest's parts store one int8 code per
// sub-block and one fp16 factor per ggml block.
func TestFactoredScales(t *testing.T) {
	factored := 0
	for typ, tr := range transcodings {
		g := tr.ScaleGroup(typ)
		if g == 0 {
			continue
		}
		factored++
		t.Run(typ.String(), func(t *testing.T) {
			if g != typ.BlockElems()/tr.Block {
				t.Fatalf("scale group %d", g)
			}
			be, bb := typ.BlockElems(), typ.BlockBytes()
			raw := randomBlocks(typ, 2000, uint64(typ))
			r := rand.New(rand.NewPCG(3, uint64(typ)))
			special := []uint16{0, 0x8000, 0x0001, 0x03ff, 0x3c00, 0x7bff, 0x5800}
			checked := 0
			for b := 0; b < len(raw); b += bb {
				blk := raw[b : b+bb]
				if r.IntN(3) == 0 {
					binary.LittleEndian.PutUint16(blk[tr.halves[0]:], special[r.IntN(len(special))])
				}
				q := make([]int32, be)
				scale := make([]uint16, be/tr.Block)
				var off []uint16
				if tr.Offset != "" {
					off = make([]uint16, len(scale))
				}
				if err := tr.Rows(typ, blk, be, q, scale, off); err != nil {
					continue
				}
				codes, d := make([]byte, be/tr.Block), make([]uint16, 1)
				if ok := tr.factors(typ, blk, codes, d); ok != tr.Factorable(typ, blk) {
					t.Fatalf("block % x: factors says %v, Factorable the opposite", blk, ok)
				}
				if !tr.Factorable(typ, blk) {
					continue
				}
				for k, c := range codes {
					if got := toF16(f16ToF32(d[0]) * float32(int8(c))); got != scale[k] {
						t.Fatalf("block % x sub-block %d: fp16(d·code) = %#04x, Rows' scale %#04x", blk, k, got, scale[k])
					}
				}
				checked++
			}
			if checked < 500 { // a random Q2_K block has one constant sub-block in two
				t.Errorf("%d blocks checked", checked)
			}
			if tr.Offset != "" { // a constant sub-block: scale code 0, min code 1
				blk := raw[:bb]
				binary.LittleEndian.PutUint16(blk[tr.halves[0]:], 0x3c00)
				binary.LittleEndian.PutUint16(blk[tr.halves[1]:], 0x3c00)
				if typ == ggml.Q2_K {
					blk[0] = 0x10
				} else { // sub-block 0 of get_scale_min_k4: scales[0], scales[4]
					blk[4], blk[8] = 0, 1
				}
				if tr.Factorable(typ, blk) {
					t.Errorf("a sub-block with scale 0 and min 1 is Factorable")
				}
			}
			ti := TensorInfo{Encoding: tr.Encoding, Shape: []int{4, 2 * be}, DType: tr.DType, BlockSize: tr.Block, ScaleGroup: g}
			ps, err := ti.Parts()
			if err != nil {
				t.Fatal(err)
			}
			nb := 2 * be / tr.Block
			for _, want := range []Part{{"scale", "I8", []int{4, nb}}, {"scale_factor", "F16", []int{4, nb / g}}} {
				if !slices.ContainsFunc(ps, func(p Part) bool {
					return p.Key == want.Key && p.DType == want.DType && slices.Equal(p.Shape, want.Shape)
				}) {
					t.Errorf("parts %+v, want %+v among them", ps, want)
				}
			}
		})
	}
	if factored != 6 {
		t.Errorf("%d types with factored scales, want 6 (Q2_K … Q6_K, IQ4_XS)", factored)
	}
}

// TestFactoredRows: rows of a tensor with factored scales (Tensor.Rows, as a fused qkv
// split takes them) are the same rows of the whole tensor, blockwise (Q4_K) and
// lut+blockwise (Q6_K).
func TestFactoredRows(t *testing.T) {
	for _, typ := range []ggml.Type{ggml.Q4_K, ggml.Q6_K} {
		tr := transcodings[typ]
		const rows, in = 6, 512
		n := rows * in
		raw := randomBlocks(typ, n/typ.BlockElems(), uint64(typ))
		for b := 0; b < len(raw); b += typ.BlockBytes() { // small finite d and dmin
			for _, at := range tr.halves {
				binary.LittleEndian.PutUint16(raw[b+at:], toF16(0.01))
			}
		}
		q, scale := make([]int32, n), make([]uint16, n/tr.Block)
		var off []uint16
		if tr.Offset != "" {
			off = make([]uint16, len(scale))
		}
		if err := tr.Rows(typ, raw, in, q, scale, off); err != nil {
			t.Fatal(err)
		}
		g := tr.ScaleGroup(typ)
		data := make([]byte, tr.dataBytes(n))
		tr.pack(data, 0, q)
		codes, d := make([]byte, len(scale)), make([]uint16, len(scale)/g)
		tr.factors(typ, raw, codes, d)
		whole := &Tensor{Info: TensorInfo{Encoding: tr.Encoding, Shape: []int{rows, in}, DType: tr.DType, BlockSize: tr.Block,
			Offset: tr.Offset, ScaleGroup: g}, Data: data, Scale: codes, ScaleFactor: halves(d)}
		if off != nil {
			whole.Offset = halves(off)
		}
		if tr.Encoding == LUTBlockwise {
			whole.LUT = codeBytes(tr.Codes)
		}
		part, err := whole.Rows(2, 5)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := part.Dequantize(), whole.Dequantize()[2*in:5*in]; !slices.Equal(got, want) {
			t.Errorf("%v: rows [2, 5) differ from the whole tensor's", typ)
		}
	}
}
