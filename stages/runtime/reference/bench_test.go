package reference

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchLinear measures one product y = W·x with W [out, in] and x n tokens through the
// kernels Predict uses (n = 1: decode; more: prefill).
func benchLinear(b *testing.B, w weightMatrix, n int) {
	rows, cols := w.dims()
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	y := make([]float32, n*rows)
	p := newWorkerPool(0)
	defer p.close()
	task := &linearTask{w: w, din: cols, dout: rows, n: n, x: x, out: y}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		task.run(p)
	}
	flops := 2 * float64(rows) * float64(cols) * float64(n) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// Phi-2's MLP up-projection: 2560 → 10240.
const benchIn, benchOut = 2560, 10240

func BenchmarkLinearFP16(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	h := make([]uint16, benchIn*benchOut)
	for i := range h {
		h[i] = floatToHalf(float32(r.NormFloat64() * 0.02))
	}
	benchLinear(b, &halfWeight{w: h, rows: benchOut, cols: benchIn, lut: halfLUT()}, 1)
}

func BenchmarkLinearInt4Blockwise32(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	data := &Tensor{DType: Int4, Shape: []int{benchOut, benchIn}, raw: make([]byte, benchIn*benchOut/2)}
	for i := range data.raw {
		data.raw[i] = byte(r.Uint32())
	}
	scale := make([]float32, benchOut*benchIn/32)
	for i := range scale {
		scale[i] = 0.01
	}
	benchLinear(b, &blockwiseWeight{data: data, scale: scale, rows: benchOut, cols: benchIn, rb: 1, cb: 32, sc: benchIn / 32}, 1)
}

// BenchmarkLinearInt4 runs the int4 block-32 up-projection (fp16 scales: the fused layout of
// a GGUF Q4_0 transcode) for decode (n=1) and a 64-token prefill chunk, with the 512-bit
// kernels where the CPU has them and without.
func BenchmarkLinearInt4(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	data := &Tensor{DType: Int4, Shape: []int{benchOut, benchIn}, raw: make([]byte, benchIn*benchOut/2)}
	for i := range data.raw {
		data.raw[i] = byte(r.Uint32())
	}
	scale := make([]uint16, benchOut*benchIn/32)
	for i := range scale {
		scale[i] = floatToHalf(0.01)
	}
	w := &blockwiseWeight{data: data, scaleH: scale, rows: benchOut, cols: benchIn, rb: 1, cb: 32, sc: benchIn / 32}
	for _, wide := range []bool{false, true} {
		for _, n := range []int{1, 64} {
			name := fmt.Sprintf("n=%d/avx512=%v", n, wide)
			b.Run(name, func(b *testing.B) {
				if !setAVX512(wide) {
					b.Skip("no AVX-512 kernels here")
				}
				defer setAVX512(hasAVX512)
				benchLinear(b, w, n)
			})
		}
	}
}

// TestPredictSteadyStateAllocs: after the first call, a decode step through PredictInto
// with the same output map allocates nothing; Predict allocates only the returned map and
// output tensors (map + 1 tensor + its shape and data = a handful).
func TestPredictSteadyStateAllocs(t *testing.T) {
	m, err := Open(filepath.Join(coremlDir, "kv_cache_state.mlpackage"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, _ := m.NewState("")
	in := map[string]*Tensor{
		"q": NewTensor(Float16, 1, 1, 16), "k_new": NewTensor(Float16, 1, 1, 16),
		"v_new": NewTensor(Float16, 1, 1, 16), "pos": NewTensor(Int32, 1), "mask": NewTensor(Float16, 1, 1, 8),
	}
	if _, err := m.Predict("", in, st); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := m.Predict("", in, st); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 6 {
		t.Errorf("Predict allocates %v times per call in steady state, want ≤ 6", allocs)
	}
	out := map[string]*Tensor{}
	if err := m.PredictInto("", in, st, out); err != nil {
		t.Fatal(err)
	}
	first := out["attn_out"]
	allocs = testing.AllocsPerRun(20, func() {
		if err := m.PredictInto("", in, st, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("PredictInto allocates %v times per call in steady state, want 0", allocs)
	}
	if out["attn_out"] != first {
		t.Error("PredictInto replaced an output tensor of the right dtype instead of reusing it")
	}
}
