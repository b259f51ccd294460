package qweights

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// TestTranscodedAsCloseAsFP16: on every fixture made by llama.cpp's quantizer, each
// transcoded type's values (data, scales and offsets as a package stores them) are as
// close to ggml's own dequantization as the fp16 export of those values is: the RMS of
// their deviation from ggml's values is at most 1.3 times the RMS of fp16's rounding of
// them (none for the exact types). The fp16 export rounds each weight once; a transcoding
// rounds the sub-block scale and offset instead, which this bounds in aggregate as
// TestTranscodingsRandomBlocks bounds it element by element.
func TestTranscodedAsCloseAsFP16(t *testing.T) {
	files, _ := filepath.Glob("../../../testdata/oracle/models/tiny-*q[0-9]*.gguf") // IQ4_NL too
	if len(files) < 10 {
		t.Fatalf("%d quantized fixtures found", len(files))
	}
	for _, path := range files {
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		type sums struct{ ours, fp16, n float64 }
		byType := map[ggml.Type]*sums{}
		for _, tn := range f.Tensors {
			tr, ok := TranscodingOf(tn.Type)
			if !ok || len(tn.Shape) != 2 {
				continue
			}
			in, rows := int(tn.Shape[0]), int(tn.Shape[1])
			n := in * rows
			raw := f.Data(tn)
			want := make([]float32, n)
			if err := ggml.DequantizeRow(tn.Type, raw, want); err != nil {
				t.Fatal(err)
			}
			q := make([]int32, n)
			scale := make([]uint16, n/tr.Block)
			var off []uint16
			if tr.Offset != "" {
				off = make([]uint16, len(scale))
			}
			if err := tr.Rows(tn.Type, raw, in, q, scale, off); err != nil {
				t.Fatalf("%s: %s: %v", path, tn.Name, err)
			}
			data := make([]byte, tr.dataBytes(n))
			tr.pack(data, 0, q)
			qt := &Tensor{Info: TensorInfo{Encoding: tr.Encoding, Shape: []int{rows, in}, DType: tr.DType, BlockSize: tr.Block, Offset: tr.Offset},
				Data: data, Scale: halves(scale)}
			if off != nil {
				qt.Offset = halves(off)
			}
			if tr.Encoding == LUTBlockwise {
				qt.LUT = codeBytes(tr.Codes)
			}
			got := qt.Dequantize()
			s := byType[tn.Type]
			if s == nil {
				s = &sums{}
				byType[tn.Type] = s
			}
			for i, w := range want {
				d, h := float64(got[i])-float64(w), float64(f16ToF32(toF16(w)))-float64(w)
				s.ours += d * d
				s.fp16 += h * h
			}
			s.n += float64(n)
		}
		for typ, s := range byType {
			ours, fp16 := math.Sqrt(s.ours/s.n), math.Sqrt(s.fp16/s.n)
			t.Logf("%s %v: RMS deviation from ggml %.3g, fp16 rounding %.3g (%.2f×)", filepath.Base(path), typ, ours, fp16, ours/fp16)
			if tr, _ := TranscodingOf(typ); tr.Bound == BoundExact && ours != 0 || ours > 1.3*fp16 {
				t.Errorf("%s %v: RMS deviation %.3g, fp16 export's %.3g", filepath.Base(path), typ, ours, fp16)
			}
		}
	}
}
