package reference

import (
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchLinear measures one matvec y = W·x with W [out, in] through the kernel Predict uses.
func benchLinear(b *testing.B, w weightMatrix) {
	rows, cols := w.dims()
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	y := make([]float32, rows)
	p := newWorkerPool(0)
	defer p.close()
	task := &linearTask{w: w, din: cols, dout: rows, n: 1, x: x, out: y}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		task.run(p)
	}
	flops := 2 * float64(rows) * float64(cols) * float64(b.N)
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
	benchLinear(b, &halfWeight{w: h, rows: benchOut, cols: benchIn, lut: halfLUT()})
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
	benchLinear(b, &blockwiseWeight{data: data, scale: scale, rows: benchOut, cols: benchIn, rb: 1, cb: 32, sc: benchIn / 32})
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
