package quantize

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// GPTQ (Frantar et al., 2022) quantizes a row of W column by column and, after each column,
// spreads that column's rounding error over the columns not yet quantized so that the
// layer's output error ‖(w − ŵ)·X‖² — not the weight error — is minimised for the
// calibration activations X. With H = E[x xᵀ] and U the upper Cholesky factor of H⁻¹, the
// error of column i, divided by U[i][i], is subtracted times U[i][j] from every later j.
// Rows are independent given U, so GPTQ streams chunk by chunk like the other codecs.

// gptqDamp is the share of the mean diagonal added to H before inverting it (GPTQ's
// percdamp): calibration texts are short, and H of a wide layer is often near singular.
const gptqDamp = 0.01

// gptqFactor returns U (n×n, row-major, upper triangular) with Uᵀ·U = (H + λI)⁻¹ for the
// mean second-moment matrix h of a layer's input. A feature that is never active (a zero
// diagonal) gets a unit diagonal: its weights then quantize without compensation.
func gptqFactor(h []float64, n int) ([]float32, error) {
	a := make([]float64, n*n)
	copy(a, h)
	var mean float64
	for i := 0; i < n; i++ {
		if a[i*n+i] <= 0 {
			a[i*n+i] = 1
		}
		mean += a[i*n+i]
	}
	lambda := gptqDamp * mean / float64(n)
	for i := 0; i < n; i++ {
		a[i*n+i] += lambda
	}
	// H = L·Lᵀ, then H⁻¹ = L⁻ᵀ·L⁻¹.
	if err := cholesky(a, n); err != nil {
		return nil, err
	}
	linv := make([]float64, n*n) // L⁻¹, lower triangular
	for c := 0; c < n; c++ {
		for r := c; r < n; r++ {
			s := 0.0
			if r == c {
				s = 1
			}
			for k := c; k < r; k++ {
				s -= a[r*n+k] * linv[k*n+c]
			}
			linv[r*n+c] = s / a[r*n+r]
		}
	}
	inv := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			s := 0.0
			for k := i; k < n; k++ { // (L⁻ᵀL⁻¹)ij = Σ_k L⁻¹[k][i]·L⁻¹[k][j], k ≥ max(i, j)
				s += linv[k*n+i] * linv[k*n+j]
			}
			inv[i*n+j], inv[j*n+i] = s, s
		}
	}
	// H⁻¹ = Lᵢ·Lᵢᵀ; U = Lᵢᵀ is the upper factor with Uᵀ·U = H⁻¹.
	if err := cholesky(inv, n); err != nil {
		return nil, err
	}
	u := make([]float32, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			u[i*n+j] = float32(inv[j*n+i])
		}
	}
	return u, nil
}

// cholesky overwrites the lower triangle of the symmetric positive definite a (n×n) with L,
// a = L·Lᵀ.
func cholesky(a []float64, n int) error {
	for j := 0; j < n; j++ {
		d := a[j*n+j]
		for k := 0; k < j; k++ {
			d -= a[j*n+k] * a[j*n+k]
		}
		if d <= 0 || math.IsNaN(d) {
			return fmt.Errorf("calibration matrix is not positive definite at feature %d", j)
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := 0; k < j; k++ {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / d
		}
	}
	return nil
}

// compensate spreads the error e of column i of row w over its later columns.
func compensate(w, urow []float32, i int, e float32) {
	e /= urow[i]
	tail := w[i+1:]
	u := urow[i+1 : i+1+len(tail)]
	for j := range tail {
		tail[j] -= e * u[j]
	}
}

// quantizeRowGPTQ is quantizeRow with GPTQ error feedback: each block's scale (and zero)
// is chosen, by the same importance-weighted search, from the row as compensated so far;
// then its columns are rounded one by one, compensating the later columns. w is scratch
// (len(x)); x is left intact and the error is measured against it.
func (c *blockCodec) quantizeRowGPTQ(x, imp, u, w []float32, q []int32, scale []uint16, zero []int32) (errSum, sigSum float64) {
	n := len(x)
	copy(w, x)
	lo, hi := levels(c.dtype)
	for b := 0; b*c.block < n; b++ {
		b0, b1 := b*c.block, (b+1)*c.block
		var d float32
		var z int32
		if c.symmetric {
			d = c.symmetricBlock(w[b0:b1], imp[b0:b1], q[b0:b1], lo, hi)
			if hi-lo > 15 {
				lo, hi = -127, 127 // int8 keeps ggml Q8_0's symmetric range
			}
		} else {
			d, z = c.affineBlock(w[b0:b1], imp[b0:b1], q[b0:b1], hi)
			zero[b] = z
		}
		scale[b] = toF16(d)
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for i := b0; i < b1; i++ {
			v := clamp(round(w[i]*id)+z, lo, hi)
			if d == 0 {
				v = clamp(z, lo, hi)
			}
			q[i] = v
			if i+1 < n {
				compensate(w, u[i*n:(i+1)*n], i, w[i]-d*float32(v-z))
			}
		}
		var es, ss float32
		for i := b0; i < b1; i++ {
			e := x[i] - d*float32(q[i]-z)
			es += e * e
			ss += x[i] * x[i]
		}
		errSum += float64(es)
		sigSum += float64(ss)
	}
	return errSum, sigSum
}

// palettizeRowGPTQ assigns the elements of row x to palette entries with GPTQ error
// feedback. w is scratch of len(x).
func palettizeRowGPTQ(x []float32, g *gptqState, w []float32, pal, mids []float32, idx []int32) (errSum, sigSum float64) {
	n := len(x)
	for k := range n {
		w[k] = x[g.at(k)]
	}
	for i := 0; i < n; i++ {
		k := nearest(mids, w[i])
		idx[g.at(i)] = k
		if i+1 < n {
			compensate(w, g.u[i*n:(i+1)*n], i, w[i]-pal[k])
		}
	}
	for i, v := range x {
		e := v - pal[idx[i]]
		errSum += float64(e * e)
		sigSum += float64(v * v)
	}
	return errSum, sigSum
}

// channelSearch are the scales GPTQ tries for a per-channel row, relative to the
// importance-weighted search's choice: with error feedback a tighter range often wins,
// since the clipped columns' error is compensated on the others.
var channelSearch = []float32{1, 0.95, 0.9, 0.85, 0.8, 1.05}

// gptqState is what a GPTQ codec needs of a tensor's input statistics.
type gptqState struct {
	u []float32 // upper Cholesky factor of (H + λI)⁻¹, n×n, in quantization order
	h []float32 // H, to score candidates, n×n, natural order
	// perm is the quantization order (act_order: decreasing E[x²], the loudest features
	// first, so that their error is compensated on the quieter ones); nil: natural order.
	perm []int
}

// newGPTQState factors a tensor's H, permuted into decreasing E[x²] with actOrder. Only
// per-channel scales and palettes may take that order: a block's scale must be chosen
// before its columns are rounded, and act order interleaves the blocks.
func newGPTQState(st *InputStats, actOrder bool) (*gptqState, error) {
	n := st.Dim
	hp := st.Hessian
	var perm []int
	if actOrder {
		perm = make([]int, n)
		for i := range perm {
			perm[i] = i
		}
		slices.SortStableFunc(perm, func(a, b int) int { return cmp.Compare(st.Hessian[b*n+b], st.Hessian[a*n+a]) })
		hp = make([]float64, n*n)
		for i, pi := range perm {
			for j, pj := range perm {
				hp[i*n+j] = st.Hessian[pi*n+pj]
			}
		}
	}
	u, err := gptqFactor(hp, n)
	if err != nil {
		return nil, err
	}
	h := make([]float32, n*n)
	for i, v := range st.Hessian {
		h[i] = float32(v)
	}
	return &gptqState{u: u, h: h, perm: perm}, nil
}

// at is the column quantized k-th.
func (g *gptqState) at(k int) int {
	if g.perm == nil {
		return k
	}
	return g.perm[k]
}

// outputError is (x − y)ᵀ·H·(x − y): the mean squared output error the difference causes.
func outputError(h []float32, x, y, diff []float32) float64 {
	n := len(x)
	for i := range diff {
		diff[i] = x[i] - y[i]
	}
	var s float64
	for i, di := range diff {
		if di == 0 {
			continue
		}
		row := h[i*n : (i+1)*n]
		var r float32
		for j, dj := range diff {
			r += row[j] * dj
		}
		s += float64(di * r)
	}
	return s
}

// channelRowGPTQ quantizes one row with a single symmetric or affine scale (block = row)
// by GPTQ, trying the scales of channelSearch and keeping the one whose
// result has the least output error under H. ws supplies scratch.
func (c *blockCodec) channelRowGPTQ(x, imp []float32, g *gptqState, ws *workspace, q []int32, scale []uint16, zero []int32) (errSum, sigSum float64) {
	n := len(x)
	ws.w = grow(ws.w, n)
	ws.deq = grow(ws.deq, n)
	ws.diff = grow(ws.diff, n)
	ws.qp = grow(ws.qp, n)
	xp, ip := x, imp
	lo, hi := levels(c.dtype)
	var d0 float32
	var z0 int32
	if c.symmetric {
		d0 = c.symmetricBlock(xp, ip, ws.qp, lo, hi)
		if hi-lo > 15 {
			lo, hi = -127, 127
		}
	} else {
		d0, z0 = c.affineBlock(xp, ip, ws.qp, hi)
	}
	bestErr, bestD, bestZ := math.Inf(1), float32(0), z0
	for _, r := range channelSearch {
		d := f16Table[toF16(d0*r)]
		z := z0
		if !c.symmetric && d != 0 {
			// Keep the range's zero where it was: z = −min/d rounded.
			z = clamp(round(float32(z0)*d0/d), 0, hi)
		}
		if d == 0 && r != 1 {
			continue
		}
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for k := range n {
			ws.w[k] = xp[g.at(k)]
		}
		for i := 0; i < n; i++ {
			v := clamp(z, lo, hi)
			if d != 0 {
				v = clamp(round(ws.w[i]*id)+z, lo, hi)
			}
			c := g.at(i)
			ws.qp[c] = v
			ws.deq[c] = d * float32(v-z)
			if i+1 < n {
				compensate(ws.w, g.u[i*n:(i+1)*n], i, ws.w[i]-ws.deq[c])
			}
		}
		if e := outputError(g.h, xp, ws.deq, ws.diff); e < bestErr {
			bestErr, bestD, bestZ = e, d, z
			copy(q, ws.qp)
		}
	}
	scale[0], zero[0] = toF16(bestD), bestZ
	d := f16Table[scale[0]]
	for i, v := range x {
		e := v - d*float32(q[i]-bestZ)
		errSum += float64(e * e)
		sigSum += float64(v * v)
	}
	return errSum, sigSum
}

// groupGPTQ palettizes one group of rows (x, row-major, rows of len(x)/rows) with the
// importance-weighted k-means palette and GPTQ assignment. (Refitting the palette to the
// assignment by least squares under H lowered the calibration text's output error but
// raised stories260K's perplexity on little-stories.txt, +10.8% → +12.7%: not done.)
func (c *lutCodec) groupGPTQ(x, imp []float32, rows int, g *gptqState, ws *workspace, idx []int32, lut []uint16) (errSum, sigSum float64) {
	n := len(x) / rows
	ws.w = grow(ws.w, n)
	pal, mids := c.palette(ws.palettes(), x, imp, lut)
	for r := 0; r < rows; r++ {
		e, s := palettizeRowGPTQ(x[r*n:(r+1)*n], g, ws.w, pal, mids, idx[r*n:(r+1)*n])
		errSum += e
		sigSum += s
	}
	return errSum, sigSum
}
