package quantize

import (
	"math/rand/v2"
	"testing"
)

// GPTQ in act order must still minimise the output error: on a row whose inputs are
// correlated, its result has a lower (x − x̂)ᵀ·H·(x − x̂) than rounding each weight to the
// same per-channel grid without feedback, as in natural order.
func TestActOrderGPTQ(t *testing.T) {
	const n, m = 64, 256
	rng := rand.New(rand.NewPCG(1, 2))
	// H = mean of x·xᵀ over m samples whose features share a common component and have
	// energies spread over two orders of magnitude, so the order matters.
	st := &InputStats{Dim: n, Rows: m, Hessian: make([]float64, n*n), SecondMoment: make([]float64, n)}
	for range m {
		common := rng.NormFloat64()
		x := make([]float64, n)
		for i := range x {
			x[i] = (0.7*common + rng.NormFloat64()) * float64(1+i%10)
		}
		for i := range n {
			for j := range n {
				st.Hessian[i*n+j] += x[i] * x[j] / m
			}
		}
	}
	for i := range n {
		st.SecondMoment[i] = st.Hessian[i*n+i]
	}
	row := make([]float32, n)
	for i := range row {
		row[i] = float32(rng.NormFloat64())
	}
	imp := importanceFor(st.SecondMoment, n, &job{})
	for _, actOrder := range []bool{false, true} {
		g, err := newGPTQState(st, actOrder)
		if err != nil {
			t.Fatal(err)
		}
		c := &blockCodec{dtype: "uint4", block: n, search: 2}
		var ws workspace
		q, scale, zero := make([]int32, n), make([]uint16, 1), make([]int32, 1)
		c.channelRowGPTQ(row, imp, g, &ws, q, scale, zero)
		d := f16Table[scale[0]]
		deq, rtn := make([]float32, n), make([]float32, n)
		for i, v := range q {
			if v < 0 || v > 15 {
				t.Fatalf("level %d out of uint4", v)
			}
			deq[i] = d * float32(v-zero[0])
			rtn[i] = d * float32(clamp(round(row[i]/d)+zero[0], 0, 15)-zero[0])
		}
		diff := make([]float32, n)
		got, plain := outputError(g.h, row, deq, diff), outputError(g.h, row, rtn, diff)
		t.Logf("act order %v: output error %.4g, without feedback %.4g", actOrder, got, plain)
		if got >= plain {
			t.Errorf("act order %v: GPTQ output error %.4g ≥ rounding's %.4g", actOrder, got, plain)
		}
	}
}
