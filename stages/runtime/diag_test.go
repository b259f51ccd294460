package runtime_test

import (
	"context"
	"math"
	"testing"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

func TestDiag(t *testing.T) {
	o := loadOracle(t)
	file := "stories260K.gguf"
	pkg := exportModel(t, file, export.Options{ContextLength: 64, PrefillChunk: 16})
	s32, _ := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP32})
	s16, _ := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP16Faithful})
	var w32, w32r, w16, maxl, maxdl float64
	for _, pr := range o.Models[file].Prompts {
		s32.Reset(); s16.Reset()
		l32, _ := s32.Prefill(context.Background(), pr.Tokens)
		l16, _ := s16.Prefill(context.Background(), pr.Tokens)
		for i, st := range pr.Steps {
			r := make([]float32, len(l32[i]))
			for j, v := range l32[i] {
				r[j] = float16.Fromfloat32(v).Float32()
				maxl = math.Max(maxl, math.Abs(float64(v)))
				maxdl = math.Max(maxdl, math.Abs(float64(v-l16[i][j])))
			}
			p32, pr32, p16 := softmax(l32[i]), softmax(r), softmax(l16[i])
			for _, top := range st.Top {
				id := int(top[0])
				w32 = math.Max(w32, math.Abs(p32[id]-top[1]))
				w32r = math.Max(w32r, math.Abs(pr32[id]-top[1]))
				w16 = math.Max(w16, math.Abs(p16[id]-top[1]))
			}
		}
	}
	t.Logf("fp32 %.5f fp32+fp16 logits %.5f fp16 %.5f; max|logit| %.2f max|Δlogit 16 vs 32| %.4f", w32, w32r, w16, maxl, maxdl)
}
