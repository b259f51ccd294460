package reference

// linearTask computes out[n, r] = W[r,:]·x[n,:] + bias[r] for rows split across workers.
//
// One token (decode) reads each row once through the weight's fused dot. Several tokens
// (prefill) take rows three at a time: each triple is dequantized once into the worker's
// scratch and multiplied with four tokens at a time (dot3x4), so a weight is read from
// memory once per product and seven vector loads serve twelve multiply-adds; the last one or
// two rows of a range go in a pair (dot2x4). Both tiles give each output the bits dot gives;
// with AVX-512 the linearDot* kernels play these parts (wide_amd64.go).
type linearTask struct {
	x, out  []float32
	bias    []float32
	w       weightMatrix
	n, din  int
	dout    int
	scratch [][]float32 // per worker, three dequantised rows (n > 1)

	// Fused int4 (n == 1): x deinterleaved and per-block corrections, made once per call.
	bw       *blockwiseWeight
	xd, corr []float32
	wide     bool // xd is in dotInt4Wide's layout
}

func (t *linearTask) runRange(w, lo, hi int) {
	if t.n == 1 {
		if t.bw != nil {
			for r := lo; r < hi; r++ {
				t.out[r] = t.bw.dotFused(r, t.xd, t.corr, t.wide)
			}
		} else {
			for r := lo; r < hi; r++ {
				t.out[r] = t.w.dotRow(r, t.x)
			}
		}
		if t.bias != nil {
			for r := lo; r < hi; r++ {
				t.out[r] += t.bias[r]
			}
		}
		return
	}
	buf := t.scratch[w]
	r0, r1, r2 := buf[:t.din], buf[t.din:2*t.din], buf[2*t.din:3*t.din]
	r := lo
	if wideKernels() {
		r = t.sextuples(buf, lo, hi)
	}
	var acc3 [12]float32
	for ; r+3 <= hi; r += 3 {
		t.w.row(r, r0)
		t.w.row(r+1, r1)
		t.w.row(r+2, r2)
		var b [3]float32
		if t.bias != nil {
			copy(b[:], t.bias[r:r+3])
		}
		i := 0
		for ; i+4 <= t.n; i += 4 {
			linearDot3x4(r0, r1, r2, t.x[i*t.din:], t.din, &acc3)
			for k := range 4 {
				o := t.out[(i+k)*t.dout+r:][:3]
				o[0] = acc3[k] + b[0]
				o[1] = acc3[4+k] + b[1]
				o[2] = acc3[8+k] + b[2]
			}
		}
		for ; i < t.n; i++ {
			xi := t.x[i*t.din : (i+1)*t.din]
			o := t.out[i*t.dout+r:][:3]
			o[0] = linearDot(r0, xi) + b[0]
			o[1] = linearDot(r1, xi) + b[1]
			o[2] = linearDot(r2, xi) + b[2]
		}
	}
	var acc [8]float32
	for ; r < hi; r += 2 {
		pair := r+1 < hi
		t.w.row(r, r0)
		if pair {
			t.w.row(r+1, r1)
		} else {
			copy(r1, r0)
		}
		var b0, b1 float32
		if t.bias != nil {
			b0 = t.bias[r]
			if pair {
				b1 = t.bias[r+1]
			}
		}
		i := 0
		for ; i+4 <= t.n && !wideKernels(); i += 4 { // (no 512-bit pair tile: these rows are few)
			dot2x4(r0, r1, t.x[i*t.din:], t.din, &acc)
			for k := range 4 {
				t.out[(i+k)*t.dout+r] = acc[k] + b0
				if pair {
					t.out[(i+k)*t.dout+r+1] = acc[4+k] + b1
				}
			}
		}
		for ; i < t.n; i++ {
			xi := t.x[i*t.din : (i+1)*t.din]
			t.out[i*t.dout+r] = linearDot(r0, xi) + b0
			if pair {
				t.out[i*t.dout+r+1] = linearDot(r1, xi) + b1
			}
		}
	}
}

// sextuples runs rows [lo, hi) six at a time through linearDot6x4 (the AVX-512 tile, which
// shares each token load among six rows) as far as whole sextuples go, and returns the
// first row left. buf holds six dequantized rows.
func (t *linearTask) sextuples(buf []float32, lo, hi int) int {
	var rows [6][]float32
	var acc [24]float32
	r := lo
	for ; r+6 <= hi; r += 6 {
		for k := range rows {
			rows[k] = buf[k*t.din : (k+1)*t.din]
			t.w.row(r+k, rows[k])
		}
		var b [6]float32
		if t.bias != nil {
			copy(b[:], t.bias[r:r+6])
		}
		i := 0
		for ; i+4 <= t.n; i += 4 {
			linearDot6x4(&rows, t.x[i*t.din:], t.din, &acc)
			for k := range 4 {
				o := t.out[(i+k)*t.dout+r:][:6]
				for j := range o {
					o[j] = acc[4*j+k] + b[j]
				}
			}
		}
		for ; i < t.n; i++ {
			xi := t.x[i*t.din : (i+1)*t.din]
			o := t.out[i*t.dout+r:][:6]
			for j := range o {
				o[j] = linearDot(rows[j], xi) + b[j]
			}
		}
	}
	return r
}

func (t *linearTask) run(p *workerPool) {
	if t.n > 1 && t.scratch == nil {
		t.scratch = make([][]float32, p.workers)
		for i := range t.scratch {
			t.scratch[i] = make([]float32, 6*t.din) // six rows for sextuples, three else
		}
	}
	t.bw = nil
	if bw, ok := t.w.(*blockwiseWeight); ok && t.n == 1 && bw.fused() {
		if t.xd == nil {
			t.xd, t.corr = make([]float32, t.din), make([]float32, bw.sc)
		}
		t.wide = wideKernels()
		if t.wide {
			bw.prepareWide(t.x, t.xd, t.corr)
		} else {
			bw.prepare(t.x, t.xd, t.corr)
		}
		t.bw = bw
	}
	if t.n > 1 {
		// Chunks of whole row triples.
		p.parallel((t.dout+2)/3, max(1, minParallelWork/max(1, 3*t.din*t.n)), (*rowTriples)(t))
		return
	}
	// Split only when each worker gets some 16K multiply-adds: below that, waking a
	// goroutine costs more than it saves.
	p.parallel(t.dout, max(1, minParallelWork/max(1, t.din*t.n)), t)
}

// rowTriples runs a linearTask over triples of rows, so that chunk boundaries fall on
// multiples of three.
type rowTriples linearTask

func (p *rowTriples) runRange(w, lo, hi int) {
	(*linearTask)(p).runRange(w, 3*lo, min(3*hi, p.dout))
}

// weightArg returns input key as a weight matrix, fused when it comes from a constexpr op.
func (o *opCtx) weightArg(key string) (weightMatrix, []int, error) {
	v, err := o.arg(key)
	if err != nil {
		return nil, nil, err
	}
	if v.w != nil && v.t == nil {
		_, shape, err := tensorTypeOf(v.wType)
		return v.w, shape, err
	}
	if !v.isConst {
		return nil, nil, o.errf("input %q must be a constant", key)
	}
	// An fp16 constant stays fp16 (mapped, half the memory): its kernels widen as they read.
	if t := v.t; t != nil && t.DType == Float16 && t.f32 == nil && t.half != nil {
		return weightOf(t), t.Shape, nil
	}
	t, err := o.c.materialise(v)
	if err != nil {
		return nil, nil, err
	}
	if t == nil || !t.DType.IsFloat() {
		return nil, nil, o.errf("input %q must be an fp16/fp32 tensor", key)
	}
	return weightOf(t), t.Shape, nil
}

func compileLinear(o *opCtx) (func() error, error) {
	x, err := o.floatTensor("x")
	if err != nil {
		return nil, err
	}
	w, wshape, err := o.weightArg("weight")
	if err != nil {
		return nil, err
	}
	if len(wshape) != 2 {
		return nil, o.errf("weight shape %v, want [D_out, D_in]", wshape)
	}
	dout, din := wshape[0], wshape[1]
	bias, err := o.bias(dout)
	if err != nil {
		return nil, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	return o.linearRun(x, out, &linearTask{w: w, bias: bias, din: din, dout: dout}), nil
}

// linearRun returns the step computing out[..., dout] = x[..., din]·Wᵀ (+ bias) with task.
func (o *opCtx) linearRun(x, out *Tensor, task *linearTask) func() error {
	shape := make([]int, 0, 8)
	pool := o.c.m.pool
	return func() error {
		r := len(x.Shape)
		if r < 1 || x.Shape[r-1] != task.din {
			return errShape("x", x.Shape, "[..., %d]", task.din)
		}
		shape = append(append(shape[:0], x.Shape[:r-1]...), task.dout)
		out.setShape(shape)
		if task.din == 0 || x.Len() == 0 {
			// An empty operand (a zero dimension in x or the weight): each output row is
			// the empty sum plus the bias. The kernels assume at least one row and column
			// (found by FuzzOpen: a zero-row x indexed absent scratch).
			for i := range out.f32 {
				out.f32[i] = 0
				if task.bias != nil {
					out.f32[i] = task.bias[i%task.dout]
				}
			}
			return nil
		}
		task.x, task.out, task.n = x.f32, out.f32, x.Len()/task.din
		task.run(pool)
		return nil
	}
}

// compileConv supports the ANE form of linear: a 1×1 conv, stride 1, no padding, groups 1,
// on x [N, C_in, *spatial]; it runs as a linear over the spatial positions.
func compileConv(o *opCtx) (func() error, error) {
	x, err := o.floatTensor("x")
	if err != nil {
		return nil, err
	}
	w, wshape, err := o.weightArg("weight")
	if err != nil {
		return nil, err
	}
	if len(wshape) < 3 || numElements(wshape[2:]) != 1 {
		return nil, o.errf("only 1×1 kernels are supported (weight %v)", wshape)
	}
	groups, err := o.constInt("groups", 1)
	if err != nil {
		return nil, err
	}
	if groups != 1 {
		return nil, o.errf("groups=%d is not supported (only 1)", groups)
	}
	for _, key := range []string{"strides", "dilations"} {
		v, err := o.constInts(key, nil)
		if err != nil {
			return nil, err
		}
		for _, s := range v {
			if s != 1 {
				return nil, o.errf("%s %v: only 1 is supported", key, v)
			}
		}
	}
	pad, err := o.constInts("pad", nil)
	if err != nil {
		return nil, err
	}
	for _, p := range pad {
		if p != 0 {
			return nil, o.errf("pad %v: only 0 is supported", pad)
		}
	}
	cout, cin := wshape[0], wshape[1]
	bias, err := o.bias(cout)
	if err != nil {
		return nil, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	task := &linearTask{w: w, din: cin, dout: cout}
	var xt, yt []float32
	shape := make([]int, 0, 8)
	pool := o.c.m.pool
	return func() error {
		if len(x.Shape) < 3 || x.Shape[1] != cin {
			return errShape("x", x.Shape, "[N, %d, ...]", cin)
		}
		n, sp := x.Shape[0], numElements(x.Shape[2:])
		shape = append(append(shape[:0], n, cout), x.Shape[2:]...)
		out.setShape(shape)
		if n*sp == 0 {
			return nil // no positions: the output is empty, and the kernel needs a row
		}
		if cap(xt) < n*sp*cin {
			xt, yt = make([]float32, n*sp*cin), make([]float32, n*sp*cout)
		}
		xt, yt = xt[:n*sp*cin], yt[:n*sp*cout]
		// [N, C, S] → [N·S, C] so each position is a contiguous vector.
		for b := 0; b < n; b++ {
			for c := 0; c < cin; c++ {
				src := x.f32[(b*cin+c)*sp : (b*cin+c+1)*sp]
				for s, v := range src {
					xt[(b*sp+s)*cin+c] = v
				}
			}
		}
		task.x, task.out, task.n = xt, yt, n*sp
		task.run(pool)
		for b := 0; b < n; b++ {
			for s := 0; s < sp; s++ {
				for c := 0; c < cout; c++ {
					v := yt[(b*sp+s)*cout+c]
					if bias != nil {
						v += bias[c]
					}
					out.f32[(b*cout+c)*sp+s] = v
				}
			}
		}
		return nil
	}, nil
}

// matmulTask computes batched products; rows of all batches are split across workers.
type matmulTask struct {
	x, y, out  []float32
	m, k, n    int
	tx, ty     bool
	xoff, yoff []int // per batch: element offset of the x / y matrix
}

func (t *matmulTask) runRange(_, lo, hi int) {
	m, k, n := t.m, t.k, t.n
	if t.tx && !t.ty {
		// Rows of one batch at a time: x[p, i] for consecutive i is contiguous.
		for lo < hi {
			b := lo / m
			end := min(hi, (b+1)*m)
			t.transposedX(b, lo-b*m, end-b*m)
			lo = end
		}
		return
	}
	for row := lo; row < hi; row++ {
		b, i := row/m, row%m
		xo, yo := t.xoff[b], t.yoff[b]
		dst := t.out[row*n : (row+1)*n]
		switch {
		case !t.tx && t.ty: // out[i, j] = x[i, :]·y[j, :], both rows contiguous (q·kᵀ)
			xr := t.x[xo+i*k : xo+(i+1)*k]
			// Four rows of y per call (attention scores against a long cache are
			// thousands of short dots): dot2x4 gives each the bits dot gives; its second
			// row repeats x's.
			j := 0
			var acc [8]float32
			for ; j+4 <= len(dst); j += 4 {
				dot2x4(xr, xr, t.y[yo+j*k:], k, &acc)
				copy(dst[j:j+4], acc[:4])
			}
			for ; j < len(dst); j++ {
				dst[j] = dot(xr, t.y[yo+j*k:yo+(j+1)*k])
			}
		case !t.tx: // out[i, :] = Σ_p x[i, p]·y[p, :], accumulated in p order (p·v)
			clear(dst)
			for p, xv := range t.x[xo+i*k : xo+(i+1)*k] {
				if xv == 0 {
					continue // a masked key's probability: adding 0·v changes nothing
				}
				axpy(dst, xv, t.y[yo+p*n:yo+(p+1)*n])
			}
		default: // both transposed: x[i, p] is x[p·m + i], y[p, j] is y[j·k + p]
			for j := range dst {
				var s float32
				for p := 0; p < k; p++ {
					s += float32(t.x[xo+p*m+i] * t.y[yo+j*k+p])
				}
				dst[j] = s
			}
		}
	}
}

// transposedX computes rows [i0, i1) of batch b for x transposed and y not (the ANE
// layout's vᵀ·p): out[i, :] = Σ_p x[p, i]·y[p, :], accumulated in p order, each product
// rounded before its sum, as a scalar loop would. Row p of y that is all zero (keys every
// query of the chunk masks: probabilities that underflowed) adds nothing and is skipped, so
// attention costs what the filled part of the cache holds, not the exported context.
func (t *matmulTask) transposedX(b, i0, i1 int) {
	m, k, n := t.m, t.k, t.n
	xo, yo := t.xoff[b], t.yoff[b]
	out := t.out[(b*m+i0)*n : (b*m+i1)*n]
	clear(out)
	for p := 0; p < k; p++ {
		yr := t.y[yo+p*n : yo+(p+1)*n]
		xr := t.x[xo+p*m+i0 : xo+p*m+i1] // x[p, i0:i1]
		if n == 1 {
			if yr[0] != 0 {
				axpy(out, yr[0], xr) // one token: a column of out is contiguous
			}
			continue
		}
		if allZero(yr) {
			continue
		}
		for i, a := range xr {
			axpy(out[i*n:(i+1)*n], a, yr)
		}
	}
}

func allZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

func compileMatmul(o *opCtx) (func() error, error) {
	tx, err := o.constBool("transpose_x", false)
	if err != nil {
		return nil, err
	}
	ty, err := o.constBool("transpose_y", false)
	if err != nil {
		return nil, err
	}
	x, err := o.floatTensor("x")
	if err != nil {
		return nil, err
	}
	// A constant 2-D y with transpose_y is a linear weight [N, K]: use the fused kernel.
	if yv, err := o.arg("y"); err == nil && yv.w != nil && yv.t == nil && ty && !tx {
		w, wshape, err := o.weightArg("y")
		if err != nil {
			return nil, err
		}
		if len(wshape) == 2 {
			out, err := o.floatOutput(0)
			if err != nil {
				return nil, err
			}
			return o.linearRun(x, out, &linearTask{w: w, din: wshape[1], dout: wshape[0]}), nil
		}
	}
	y, err := o.floatTensor("y")
	if err != nil {
		return nil, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	task := &matmulTask{tx: tx, ty: ty}
	var xs, ys, os, bshape [8]int
	shape := make([]int, 0, 8)
	pool := o.c.m.pool
	return func() error {
		xr, yr := len(x.Shape), len(y.Shape)
		if xr < 1 || yr < 1 || xr > 6 || yr > 6 {
			return errShape("x/y", x.Shape, "rank 1..6 operands")
		}
		// Rank-1 promotion: x [K] → [1, K], y [K] → [K, 1]; the extra axis is dropped after.
		xsh := append(xs[:0], x.Shape...)
		ysh := append(ys[:0], y.Shape...)
		if xr == 1 {
			xsh = append(xs[:0], 1, x.Shape[0])
			if tx {
				xsh = append(xs[:0], x.Shape[0], 1)
			}
		}
		if yr == 1 {
			ysh = append(ys[:0], y.Shape[0], 1)
			if ty {
				ysh = append(ys[:0], 1, y.Shape[0])
			}
		}
		m, k := xsh[len(xsh)-2], xsh[len(xsh)-1]
		if tx {
			m, k = k, m
		}
		k2, n := ysh[len(ysh)-2], ysh[len(ysh)-1]
		if ty {
			k2, n = n, k2
		}
		if k != k2 {
			return errShape("y", y.Shape, "inner dimension %d (x is %v)", k, x.Shape)
		}
		xb, yb := xsh[:len(xsh)-2], ysh[:len(ysh)-2]
		bs, err := broadcastShapes(bshape[:0], xb, yb)
		if err != nil {
			return err
		}
		shape = append(shape[:0], bs...)
		if xr > 1 {
			shape = append(shape, m)
		}
		if yr > 1 {
			shape = append(shape, n)
		}
		out.setShape(shape)
		nb := numElements(bs)
		if cap(task.xoff) < nb {
			task.xoff, task.yoff = make([]int, nb), make([]int, nb)
		}
		task.xoff, task.yoff = task.xoff[:nb], task.yoff[:nb]
		idx := os[:len(bs)]
		clear(idx)
		for b := 0; b < nb; b++ {
			task.xoff[b] = bcastOffset(idx, xb) * m * k
			task.yoff[b] = bcastOffset(idx, yb) * k * n
			for d := len(idx) - 1; d >= 0; d-- {
				if idx[d]++; idx[d] < bs[d] {
					break
				}
				idx[d] = 0
			}
		}
		task.x, task.y, task.out, task.m, task.k, task.n = x.f32, y.f32, out.f32, m, k, n
		rows := nb * m
		pool.parallel(rows, max(1, minParallelWork/max(1, n*k)), task)
		return nil
	}, nil
}

// bcastOffset returns the flat index into a tensor of shape sub (right-aligned against the
// broadcast index idx, size-1 dims broadcast).
func bcastOffset(idx, sub []int) int {
	off := 0
	shift := len(idx) - len(sub)
	for d, s := range sub {
		i := idx[d+shift]
		if s == 1 {
			i = 0
		}
		off = off*s + i
	}
	return off
}
