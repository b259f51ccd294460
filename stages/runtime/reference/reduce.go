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
	x, err := o.floatTensor("x")
	if err != nil {
		return nil, err
	}
	axis, err := o.constInt("axis", -1)
	if err != nil {
		return nil, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	return func() error {
		a, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		out.setShape(x.Shape)
		outer, n, inner := axisSplit(x.Shape, a)
		for b := 0; b < outer; b++ {
			for j := 0; j < inner; j++ {
				base := b*n*inner + j
				m := float32(math.Inf(-1))
				for k := 0; k < n; k++ {
					m = max(m, x.f32[base+k*inner])
				}
				var sum float64
				for k := 0; k < n; k++ {
					e := math.Exp(float64(x.f32[base+k*inner] - m))
					out.f32[base+k*inner] = float32(e)
					sum += e
				}
				for k := 0; k < n; k++ {
					out.f32[base+k*inner] = float32(float64(out.f32[base+k*inner]) / sum)
				}
			}
		}
		return nil
	}, nil
}

// compileReduce covers reduce_sum/mean/max/min/prod over any set of axes.
func compileReduce(o *opCtx) (func() error, error) {
	x, err := o.floatTensor("x")
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
	out, err := o.floatOutput(0)
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

// compileLayerNorm: y = (x − mean)/sqrt(var + eps)·gamma + beta over axes (§5.2).
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

// compileSDPA: softmax(q·kᵀ/sqrt(E) + mask)·v, bool mask true = attend (§5.5, iOS18).
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
	var scores []float64
	var ms [8]int
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
		full := append(append(ms[:0], batch...), L, S)
		if mask != nil {
			if _, err := broadcastShapes(make([]int, 0, 8)[:0], mask.Shape, full); err != nil {
				return fmt.Errorf("attn_mask %v: %v", mask.Shape, err)
			}
		}
		if cap(scores) < S {
			scores = make([]float64, S)
		}
		scores = scores[:S]
		scale := 1 / math.Sqrt(float64(E))
		nb := numElements(batch)
		for b := 0; b < nb; b++ {
			for i := 0; i < L; i++ {
				qr := q.f32[(b*L+i)*E : (b*L+i+1)*E]
				m := math.Inf(-1)
				for j := 0; j < S; j++ {
					s := float64(dot(qr, k.f32[(b*S+j)*E:(b*S+j+1)*E])) * scale
					if mask != nil {
						mi := bcastIndex((b*L+i)*S+j, full, mask.Shape)
						if mask.DType == Bool {
							if !mask.b[mi] {
								s = math.Inf(-1)
							}
						} else {
							s += float64(mask.f32[mi])
						}
					}
					scores[j] = s
					m = math.Max(m, s)
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - m)
					sum += scores[j]
				}
				dst := out.f32[(b*L+i)*EV : (b*L+i+1)*EV]
				clear(dst)
				for j := 0; j < S; j++ {
					w := float32(scores[j] / sum)
					for e, x := range v.f32[(b*S+j)*EV : (b*S+j+1)*EV] {
						dst[e] += w * x
					}
				}
			}
		}
		return nil
	}, nil
}
