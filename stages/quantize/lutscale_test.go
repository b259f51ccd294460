package quantize

import (
	"math"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
)

// lut_scale channel (bits and error checked in TestSchemes): every 2-D weight becomes
// lut+blockwise — uint4 indices into fp16 palettes per group of rows, an fp16 scale per
// channel — each channel's largest |value| is its scale, so palette entries lie within
// [−1, 1] up to fp16 rounding; the option combines with gptq.
func TestLUTChannelScale(t *testing.T) {
	s, _ := quantizeModel(t, "tiny-llama256-f16.gguf", stage.Params{"scheme": "lut4", "lut_scale": "channel", "group_size": 64})
	n := 0
	for _, ti := range s.Manifest().Tensors {
		qt, ok := s.Lookup(ti.Name)
		if !ok {
			continue
		}
		n++
		if ti.Encoding != LUTBlockwise || ti.DType != "uint4" || ti.BlockSize != ti.Shape[1] || ti.GroupSize != 64 {
			t.Fatalf("%s: %+v, want lut+blockwise uint4, a scale per channel, palettes per 64 rows", ti.Name, ti)
		}
		for i := 0; i < len(qt.LUT); i += 2 {
			if v := math.Abs(float64(f16Table[uint16(qt.LUT[i])|uint16(qt.LUT[i+1])<<8])); v > 1+1e-3 {
				t.Fatalf("%s: palette entry %g outside [−1, 1]", ti.Name, v)
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing quantized")
	}
	if _, err := ParseConfig(stage.Params{"scheme": "lut", "lut_bits": 3, "lut_scale": "channel", "calibration": "x.txt"}); err != nil {
		t.Errorf("gptq with lut_scale: %v", err)
	}
}
