package reference

import (
	"fmt"
	"math"
)

// axisSplit views shape as [outer, n, inner] around axis a.
func axisSplit(shape []int, a int) (outer, n, inner int) {
	return numElements(shape[:a]), shape[a], numElements(shape[a+1:])
}

func compileSoftmax(o *opCtx) (func() error, error) {
	x, out, err := o.floatXAndOut()
	if err != nil {
		return nil, err
	}
	axis, err := o.constInt("axis", -1)
	if err != nil {
		return nil, err
	}
	task := &softmaxTask{}
	pool := o.c.m.pool
	return func() error {
		a, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		out.setShape(x.Shape)
		outer, n, inner := axisSplit(x.Shape, a)
		*task = softmaxTask{x: x.f32, out: out.f32, n: n, inner: inner}
		// Lanes (one softmax each: a row per head and query for attention) are independent.
		pool.parallel(outer*inner, max(1, minParallelWork/max(1, n)), task)
		return nil
	}, nil
}

// softmaxTask computes softmax over lanes of n elements at stride inner: lane l starts at
// (l/inner)·n·inner + l%inner. Exponentials and their sum are float64.
type softmaxTask struct {
	x, out   []float32
	n, inner int
}

func (t *softmaxTask) runRange(_, lo, hi int) {
	n, inner := t.n, t.inner
	for l := lo; l < hi; l++ {
		base := (l/inner)*n*inner + l%inner
		if inner == 1 {
			softmaxRow(t.out[base:base+n], t.x[base:base+n])
			continue
		}
		m := float32(math.Inf(-1))
		for k := 0; k < n; k++ {
			m = max(m, t.x[base+k*inner])
		}
		var sum float64
		for k := 0; k < n; k++ {
			e := math.Exp(float64(t.x[base+k*inner] - m))
			t.out[base+k*inner] = float32(e)
			sum += e
		}
		for k := 0; k < n; k++ {
			t.out[base+k*inner] = float32(float64(t.out[base+k*inner]) / sum)
		}
	}
}

// expUnderflow is below the float64 underflow threshold of exp (≈ −745.13): math.Exp of
// anything smaller is exactly 0. Attention rows are mostly masked (−1e4) positions.
const expUnderflow = -746

// softmaxRow is softmax over a contiguous row.
func softmaxRow(dst, x []float32) {
	x = x[:len(dst)]
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var sum float64
	for i, v := range x {
		d := float64(v - m)
		if d < expUnderflow { // masked out: exp is exactly 0, skip the call
			dst[i] = 0
			continue
		}
		e := math.Exp(d)
		dst[i] = float32(e)
		sum += e
	}
	for i, v := range dst {
		dst[i] = float32(float64(v) / sum)
	}
}

// compileReduce covers reduce_sum/mean/max/min/prod over any set of axes.
func compileReduce(o *opCtx) (func() error, error) {
	x, out, err := o.floatXAndOut()
	if err != nil {
		return nil, err
	}
	axes, err := o.constInts("axes", nil)
	if err != nil {
		return nil, err
	}
	keep, err := o.constBool("keep_dims", false)
	if err != nil {
		return nil, err
	}
	var init float64
	var acc func(a, v float64) float64
	switch o.typ {
	case "reduce_sum", "reduce_mean":
		acc = func(a, v float64) float64 { return a + v }
	case "reduce_max":
		init, acc = math.Inf(-1), math.Max
	case "reduce_min":
		init, acc = math.Inf(1), math.Min
	case "reduce_prod":
		init, acc = 1, func(a, v float64) float64 { return a * v }
	case "reduce_sum_square":
		acc = func(a, v float64) float64 { return a + v*v }
	}
	sh := make([]int, 0, 8)
	var red [8]bool
	var sums []float64
	return func() error {
		r := len(x.Shape)
		if r > 8 {
			return fmt.Errorf("rank %d", r)
		}
		red = [8]bool{}
		if axes == nil {
			for d := range r {
				red[d] = true
			}
		}
		for _, a := range axes {
			a, err := normAxis(a, r)
			if err != nil {
				return err
			}
			red[a] = true
		}
		sh = sh[:0]
		count := 1
		for d := range r {
			switch {
			case !red[d]:
				sh = append(sh, x.Shape[d])
			case keep:
				sh = append(sh, 1)
				count *= x.Shape[d]
			default:
				count *= x.Shape[d]
			}
		}
		out.setShape(sh)
		n := out.Len()
		if cap(sums) < n {
			sums = make([]float64, n)
		}
		sums = sums[:n]
		for i := range sums {
			sums[i] = init
		}
		var idx [8]int
		for _, v := range x.f32 {
			oi := 0
			for d := range r {
				if !red[d] {
					oi = oi*x.Shape[d] + idx[d]
				}
			}
			sums[oi] = acc(sums[oi], float64(v))
			for d := r - 1; d >= 0; d-- {
				if idx[d]++; idx[d] < x.Shape[d] {
					break
				}
				idx[d] = 0
			}
		}
		for i, s := range sums {
			if o.typ == "reduce_mean" {
				s /= float64(count)
			}
			out.f32[i] = float32(s)
		}
		return nil
	}, nil
}

// compileLayerNorm: y = (x − mean)/sqrt(var + eps)·gamma + beta over axes (MIL layer_norm, coremltools mil/ops/defs/iOS15/normalization.py).
func compileLayerNorm(o *opCtx) (func() error, error) {
	x, err := o.floatTensor("x")
	if err != nil {
		return nil, err
	}
	axes, err := o.constInts("axes", nil)
	if err != nil {
		return nil, err
	}
	eps, err := o.constFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	var gamma, beta []float32
	if o.has("gamma") {
		g, err := o.floatTensor("gamma")
		if err != nil {
			return nil, err
		}
		gamma = g.Float32s()
	}
	if o.has("beta") {
		b, err := o.floatTensor("beta")
		if err != nil {
			return nil, err
		}
		beta = b.Float32s()
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	return func() error {
		r := len(x.Shape)
		// The normalised axes must be the trailing ones (the only layout transformers use).
		k := len(axes)
		if axes == nil {
			k = r
		}
		for i, a := range axes {
			a, err := normAxis(a, r)
			if err != nil {
				return err
			}
			if a != r-k+i {
				return fmt.Errorf("axes %v: only trailing axes in order are supported", axes)
			}
		}
		n := numElements(x.Shape[r-k:])
		if (gamma != nil && len(gamma) != n) || (beta != nil && len(beta) != n) {
			return fmt.Errorf("gamma/beta size differs from normalised size %d", n)
		}
		out.setShape(x.Shape)
		for b := 0; b+n <= len(x.f32) && n > 0; b += n {
			row := x.f32[b : b+n]
			var mean, vr float64
			for _, v := range row {
				mean += float64(v)
			}
			mean /= float64(n)
			for _, v := range row {
				d := float64(v) - mean
				vr += d * d
			}
			vr /= float64(n)
			inv := 1 / math.Sqrt(vr+float64(eps))
			for i, v := range row {
				y := float32((float64(v) - mean) * inv)
				if gamma != nil {
					y *= gamma[i]
				}
				if beta != nil {
					y += beta[i]
				}
				out.f32[b+i] = y
			}
		}
		return nil
	}, nil
}

// compileSDPA: softmax(q·kᵀ/sqrt(E) + mask)·v, bool mask true = attend (MIL scaled_dot_product_attention, iOS18).
func compileSDPA(o *opCtx) (func() error, error) {
	q, err := o.floatTensor("query")
	if err != nil {
		return nil, err
	}
	k, err := o.floatTensor("key")
	if err != nil {
		return nil, err
	}
	v, err := o.floatTensor("value")
	if err != nil {
		return nil, err
	}
	var mask *Tensor
	if o.has("attn_mask") {
		if mask, err = o.tensor("attn_mask"); err != nil {
			return nil, err
		}
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	pool := o.c.m.pool
	task := &sdpaTask{q: q, k: k, v: v, mask: mask, out: out, scores: make([][]float64, pool.workers)}
	var ms, bs [8]int
	sh := make([]int, 0, 8)
	return func() error {
		r := len(q.Shape)
		if r < 3 || len(k.Shape) != r || len(v.Shape) != r || r > 8 {
			return fmt.Errorf("query/key/value must have the same rank ≥ 3 (%v %v %v)", q.Shape, k.Shape, v.Shape)
		}
		L, E := q.Shape[r-2], q.Shape[r-1]
		S, EV := k.Shape[r-2], v.Shape[r-1]
		if k.Shape[r-1] != E || v.Shape[r-2] != S {
			return fmt.Errorf("key %v / value %v do not match query %v", k.Shape, v.Shape, q.Shape)
		}
		batch := q.Shape[:r-2]
		if !sameShape(batch, k.Shape[:r-2]) || !sameShape(batch, v.Shape[:r-2]) {
			return fmt.Errorf("batch dims of query %v, key %v, value %v differ", q.Shape, k.Shape, v.Shape)
		}
		sh = append(append(sh[:0], batch...), L, EV)
		out.setShape(sh)
		task.full = append(append(ms[:0], batch...), L, S)
		if mask != nil {
			if _, err := broadcastShapes(bs[:0], mask.Shape, task.full); err != nil {
				return fmt.Errorf("attn_mask %v: %v", mask.Shape, err)
			}
		}
		task.L, task.E, task.S, task.EV = L, E, S, EV
		rows := numElements(batch) * L
		pool.parallel(rows, max(1, minParallelWork/max(1, S*(E+EV))), task)
		return nil
	}, nil
}

// sdpaTask computes attention for rows (batch·L query rows), each worker with its own
// float64 score buffer.
type sdpaTask struct {
	q, k, v, mask, out *Tensor
	full               []int // [batch…, L, S]: the shape the mask broadcasts to
	L, E, S, EV        int
	scores             [][]float64 // per worker
}

func (t *sdpaTask) runRange(w, lo, hi int) {
	L, E, S, EV := t.L, t.E, t.S, t.EV
	if cap(t.scores[w]) < S {
		t.scores[w] = make([]float64, S)
	}
	scores := t.scores[w][:S]
	scale := 1 / math.Sqrt(float64(E))
	for row := lo; row < hi; row++ {
		b := row / L
		qr := t.q.f32[row*E : (row+1)*E]
		m := math.Inf(-1)
		for j := 0; j < S; j++ {
			s := float64(dot(qr, t.k.f32[(b*S+j)*E:(b*S+j+1)*E])) * scale
			if t.mask != nil {
				mi := bcastIndex(row*S+j, t.full, t.mask.Shape)
				if t.mask.DType == Bool {
					if !t.mask.b[mi] {
						s = math.Inf(-1)
					}
				} else {
					s += float64(t.mask.f32[mi])
				}
			}
			scores[j] = s
			m = math.Max(m, s)
		}
		var sum float64
		for j, v := range scores {
			if v-m < expUnderflow {
				scores[j] = 0
				continue
			}
			scores[j] = math.Exp(v - m)
			sum += scores[j]
		}
		dst := t.out.f32[row*EV : (row+1)*EV]
		clear(dst)
		for j := 0; j < S; j++ {
			if scores[j] == 0 {
				// A key whose weight underflowed (masked positions: −1e4 in the mask) would
				// add 0·v: skipping it is exact and halves decode's attention over a long,
				// mostly empty cache.
				continue
			}
			axpy(dst, float32(scores[j]/sum), t.v.f32[(b*S+j)*EV:(b*S+j+1)*EV])
		}
	}
}
