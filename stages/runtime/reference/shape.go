package reference

import (
	"fmt"
	"math"
	"slices"
)

// copyElems copies n elements from src[si:] to dst[di:] (same dtype family).
func copyElems(dst *Tensor, di int, src *Tensor, si, n int) {
	switch {
	case dst.DType.IsFloat():
		copy(dst.f32[di:di+n], src.Float32s()[si:si+n])
	case dst.DType == Int32:
		copy(dst.i32[di:di+n], src.i32[si:si+n])
	case dst.DType == Bool:
		copy(dst.b[di:di+n], src.b[si:si+n])
	}
}

// gatherStrided copies n elements src[si], src[si+stride], … to dst[di:] (same family).
func gatherStrided(dst *Tensor, di int, src *Tensor, si, stride, n int) {
	switch {
	case dst.DType.IsFloat():
		d, s := dst.f32[di:di+n], src.Float32s()
		for k := range d {
			d[k] = s[si+k*stride]
		}
	case dst.DType == Int32:
		d := dst.i32[di : di+n]
		for k := range d {
			d[k] = src.i32[si+k*stride]
		}
	case dst.DType == Bool:
		d := dst.b[di : di+n]
		for k := range d {
			d[k] = src.b[si+k*stride]
		}
	}
}

func normAxis(a, rank int) (int, error) {
	if a < 0 {
		a += rank
	}
	if a < 0 || a >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, rank)
	}
	return a, nil
}

func sameFamily(a, b DType) bool { return a == b || (a.IsFloat() && b.IsFloat()) }

// compileCopyShape handles ops whose output holds x's elements in the same order:
// reshape, expand_dims, squeeze. The output shape is the declared one, or computed.
func compileCopyShape(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	if !sameFamily(x.DType, out.DType) {
		return nil, o.errf("x is %v, output %v", x.DType, out.DType)
	}
	var shapeT *Tensor
	var axes []int
	switch o.typ {
	case "reshape":
		if shapeT, err = o.tensor("shape"); err != nil {
			return nil, err
		}
	case "expand_dims":
		if axes, err = o.constInts("axes", nil); err != nil {
			return nil, err
		}
	case "squeeze":
		if axes, err = o.constInts("axes", nil); err != nil {
			return nil, err
		}
	}
	sh := make([]int, 0, 8)
	vc := newViewOrCopy(o, x, out)
	f := o.c.f
	keyAxis, hasKeys := o.c.keys.axis[o.op.GetOutputs()[0].GetName()]
	return func() error {
		sh = sh[:0]
		switch o.typ {
		case "reshape":
			infer := -1
			known := 1
			for i := range shapeT.Len() {
				d := int(shapeT.intAt(i))
				switch {
				case hasKeys && i == keyAxis:
					d = f.keys // the declared C stands for the call's R keys
				case d == -1 && infer < 0:
					infer = i
				case d == 0 && i < len(x.Shape):
					d = x.Shape[i]
				case d < 0:
					return fmt.Errorf("bad shape %d at %d", d, i)
				}
				sh = append(sh, d)
				if d >= 0 {
					known *= d
				}
			}
			if infer >= 0 {
				if known == 0 {
					return fmt.Errorf("cannot infer -1 with zero-size dims")
				}
				sh[infer] = x.Len() / known
			}
		case "expand_dims":
			r := len(x.Shape) + len(axes)
			ins := [8]bool{}
			for _, a := range axes {
				a, err := normAxis(a, r)
				if err != nil || r > 8 {
					return fmt.Errorf("axes %v: %v", axes, err)
				}
				ins[a] = true
			}
			j := 0
			for d := 0; d < r; d++ {
				if ins[d] {
					sh = append(sh, 1)
				} else {
					sh = append(sh, x.Shape[j])
					j++
				}
			}
		case "squeeze":
			for d, s := range x.Shape {
				drop := false
				if axes == nil {
					drop = s == 1
				}
				for _, a := range axes {
					if a == d || a+len(x.Shape) == d {
						drop = true
					}
				}
				if drop && s != 1 {
					return fmt.Errorf("cannot squeeze axis %d of size %d", d, s)
				}
				if !drop {
					sh = append(sh, s)
				}
			}
		}
		if numElements(sh) != x.Len() {
			return fmt.Errorf("cannot view %v as %v", x.Shape, sh)
		}
		vc.run(x, 0, x.Len(), sh)
		return nil
	}, nil
}

// viewOrCopy is the output of an op whose result is a contiguous run of its input's
// elements (reshape, expand_dims, squeeze, a contiguous slice): out views x's storage when
// the buffer plan allows it (compiler.mayView), else gets a copy in its own storage. A view
// saves the copy — in the ANE layout's attention, slicing every head's K and V out of the
// cache copied the whole cache twice per layer and token.
type viewOrCopy struct {
	out  *Tensor
	own  []float32 // out's own storage, for copies
	view bool
}

func newViewOrCopy(o *opCtx, x, out *Tensor) *viewOrCopy {
	return &viewOrCopy{out: out, own: out.f32, view: o.c.mayView(out, x)}
}

// run makes out the n elements of x from i, shaped sh.
func (v *viewOrCopy) run(x *Tensor, i, n int, sh []int) {
	out := v.out
	if v.view && x.f32 != nil {
		out.f32 = x.f32[i : i+n : i+n]
		out.Shape = append(out.Shape[:0], sh...)
		return
	}
	v.ownBuffer(sh)
	copyElems(out, 0, x, i, n)
}

// ownBuffer gives out back its own storage (a previous call may have left a view there),
// shaped sh.
func (v *viewOrCopy) ownBuffer(sh []int) {
	if v.own != nil {
		v.out.f32 = v.own
	}
	v.out.setShape(sh)
	if v.out.DType.IsFloat() {
		v.own = v.out.f32
	}
}

func compileTranspose(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	perm, err := o.constInts("perm", nil)
	if err != nil {
		return nil, err
	}
	if !sameFamily(x.DType, out.DType) || len(perm) > 8 {
		return nil, o.errf("bad dtype or rank")
	}
	var sh, stride [8]int
	return func() error {
		r := len(x.Shape)
		if len(perm) != r {
			return fmt.Errorf("perm %v for rank %d", perm, r)
		}
		xs := 1
		var xstr [8]int
		for d := r - 1; d >= 0; d-- {
			xstr[d] = xs
			xs *= x.Shape[d]
		}
		for d, p := range perm {
			p, err := normAxis(p, r)
			if err != nil {
				return err
			}
			sh[d] = x.Shape[p]
			stride[d] = xstr[p]
		}
		out.setShape(sh[:r])
		if r == 0 {
			copyElems(out, 0, x, 0, x.Len())
			return nil
		}
		// Output rows along the last axis gather x at that axis's stride.
		n := sh[r-1]
		if n == 0 {
			return nil
		}
		var idx [8]int
		si := 0
		for di := 0; di < out.Len(); di += n {
			gatherStrided(out, di, x, si, stride[r-1], n)
			for d := r - 2; d >= 0; d-- {
				idx[d]++
				si += stride[d]
				if idx[d] < sh[d] {
					break
				}
				si -= stride[d] * sh[d]
				idx[d] = 0
			}
		}
		return nil
	}, nil
}

func compileConcat(o *opCtx) (func() error, error) {
	vs, err := o.args("values")
	if err != nil {
		return nil, err
	}
	var xs []*Tensor
	for i, v := range vs {
		t, err := o.c.materialise(v)
		if err != nil || t == nil {
			return nil, o.errf("values[%d] is not a tensor", i)
		}
		xs = append(xs, t)
	}
	axis, err := o.constInt("axis", 0)
	if err != nil {
		return nil, err
	}
	if il, err := o.constBool("interleave", false); err != nil || il {
		return nil, o.errf("interleave is not supported")
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	sh := make([]int, 0, 8)
	return func() error {
		r := len(xs[0].Shape)
		a, err := normAxis(axis, r)
		if err != nil {
			return err
		}
		sh = append(sh[:0], xs[0].Shape...)
		sh[a] = 0
		for _, t := range xs {
			if len(t.Shape) != r || !sameFamily(t.DType, out.DType) {
				return fmt.Errorf("values %v do not concatenate", t)
			}
			for d := range r {
				if d != a && t.Shape[d] != xs[0].Shape[d] {
					return fmt.Errorf("values %v and %v differ off axis %d", xs[0].Shape, t.Shape, a)
				}
			}
			sh[a] += t.Shape[a]
		}
		out.setShape(sh)
		outer := numElements(sh[:a])
		inner := numElements(sh[a+1:])
		di := 0
		for b := 0; b < outer; b++ {
			for _, t := range xs {
				n := t.Shape[a] * inner
				copyElems(out, di, t, b*n, n)
				di += n
			}
		}
		return nil
	}, nil
}

func compileSplit(o *opCtx) (func() error, error) {
	x, err := o.tensor("x")
	if err != nil {
		return nil, err
	}
	axis, err := o.constInt("axis", 0)
	if err != nil {
		return nil, err
	}
	sizes, err := o.constInts("split_sizes", nil)
	if err != nil {
		return nil, err
	}
	nOut := len(o.op.GetOutputs())
	var outs []*Tensor
	for i := range nOut {
		t, err := o.output(i)
		if err != nil {
			return nil, err
		}
		outs = append(outs, t)
	}
	sh := make([]int, 0, 8)
	return func() error {
		a, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		if sizes == nil && x.Shape[a]%nOut != 0 {
			return fmt.Errorf("axis size %d does not split into %d", x.Shape[a], nOut)
		}
		outer := numElements(x.Shape[:a])
		inner := numElements(x.Shape[a+1:])
		off := 0
		for i, t := range outs {
			s := x.Shape[a] / nOut
			if sizes != nil {
				if len(sizes) != nOut {
					return fmt.Errorf("split_sizes %v for %d outputs", sizes, nOut)
				}
				s = sizes[i]
			}
			sh = append(sh[:0], x.Shape...)
			sh[a] = s
			t.setShape(sh)
			for b := 0; b < outer; b++ {
				copyElems(t, b*s*inner, x, (b*x.Shape[a]+off)*inner, s*inner)
			}
			off += s
		}
		if off != x.Shape[a] {
			return fmt.Errorf("split sizes cover %d of %d", off, x.Shape[a])
		}
		return nil
	}, nil
}

// sliceSpec resolves begin/end/stride/masks of slice_by_index and slice_update into
// per-axis start, step and count.
type sliceSpec struct {
	begin, end, stride              *Tensor
	beginMask, endMask, squeezeMask []bool
	start, step, count              [8]int
}

func (o *opCtx) sliceSpec() (*sliceSpec, error) {
	s := &sliceSpec{}
	var err error
	if s.begin, err = o.tensor("begin"); err != nil {
		return nil, err
	}
	if s.end, err = o.tensor("end"); err != nil {
		return nil, err
	}
	if o.has("stride") {
		if s.stride, err = o.tensor("stride"); err != nil {
			return nil, err
		}
	}
	if s.beginMask, err = o.constBools("begin_mask", nil); err != nil {
		return nil, err
	}
	if s.endMask, err = o.constBools("end_mask", nil); err != nil {
		return nil, err
	}
	if s.squeezeMask, err = o.constBools("squeeze_mask", nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sliceSpec) resolve(shape []int) error {
	r := len(shape)
	if r > 8 || s.begin.Len() != r || s.end.Len() != r || (s.stride != nil && s.stride.Len() != r) {
		return fmt.Errorf("begin/end/stride must have %d elements", r)
	}
	for d := range r {
		n := shape[d]
		st := 1
		if s.stride != nil {
			st = int(s.stride.intAt(d))
		}
		if st == 0 {
			return fmt.Errorf("stride 0 on axis %d", d)
		}
		b, e := int(s.begin.intAt(d)), int(s.end.intAt(d))
		if b < 0 {
			b += n
		}
		if e < 0 {
			e += n
		}
		if st > 0 {
			if d < len(s.beginMask) && s.beginMask[d] {
				b = 0
			}
			if d < len(s.endMask) && s.endMask[d] {
				e = n
			}
			b, e = min(max(b, 0), n), min(max(e, 0), n)
		} else {
			if d < len(s.beginMask) && s.beginMask[d] {
				b = n - 1
			}
			if d < len(s.endMask) && s.endMask[d] {
				e = -1
			}
			b, e = min(max(b, -1), n-1), min(max(e, -1), n-1)
		}
		if d < len(s.squeezeMask) && s.squeezeMask[d] {
			if b < 0 || b >= n {
				return fmt.Errorf("squeezed index %d out of range on axis %d", b, d)
			}
			e, st = b+1, 1
		}
		cnt := 0
		if st > 0 && e > b {
			cnt = (e - b + st - 1) / st
		} else if st < 0 && b > e {
			cnt = (b - e - st - 1) / -st
		}
		s.start[d], s.step[d], s.count[d] = b, st, cnt
	}
	return nil
}

// walk visits the slice of a tensor of the given shape in order: f(xi, k, n) says that
// elements k..k+n of the slice are x[xi : xi+n]. Runs are whole rows of the last axis when
// its stride is 1 (the common case), single elements otherwise.
func (s *sliceSpec) walk(shape []int, f func(xi, k, n int)) {
	r := len(shape)
	var xstr [8]int
	acc := 1
	for d := r - 1; d >= 0; d-- {
		xstr[d] = acc
		acc *= shape[d]
	}
	total := 1
	for d := range r {
		total *= s.count[d]
	}
	if total == 0 {
		return
	}
	run, axes := 1, r
	if r > 0 && s.step[r-1] == 1 {
		run, axes = s.count[r-1], r-1
	}
	xi := 0
	for d := range r {
		xi += s.start[d] * xstr[d]
	}
	var idx [8]int
	for k := 0; k < total; k += run {
		f(xi, k, run)
		for d := axes - 1; d >= 0; d-- {
			idx[d]++
			xi += s.step[d] * xstr[d]
			if idx[d] < s.count[d] {
				break
			}
			xi -= s.step[d] * xstr[d] * s.count[d]
			idx[d] = 0
		}
	}
}

func compileSliceByIndex(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	s, err := o.sliceSpec()
	if err != nil {
		return nil, err
	}
	sh := make([]int, 0, 8)
	vc := newViewOrCopy(o, x, out)
	return func() error {
		if err := s.resolve(x.Shape); err != nil {
			return err
		}
		sh = sh[:0]
		for d := range x.Shape {
			if !(d < len(s.squeezeMask) && s.squeezeMask[d]) {
				sh = append(sh, s.count[d])
			}
		}
		if i, n, ok := s.contiguous(x.Shape); ok {
			vc.run(x, i, n, sh)
			return nil
		}
		vc.ownBuffer(sh)
		s.walk(x.Shape, func(xi, k, n int) { copyElems(out, k, x, xi, n) })
		return nil
	}, nil
}

// contiguous reports whether the resolved slice of a tensor of shape is one run of
// elements, and where: every axis inside the first partial one is whole, and every axis
// outside it is cut to one index.
func (s *sliceSpec) contiguous(shape []int) (start, n int, ok bool) {
	r := len(shape)
	i := r - 1
	for i >= 0 && s.start[i] == 0 && s.step[i] == 1 && s.count[i] == shape[i] {
		i--
	}
	if i >= 0 && s.count[i] > 1 && s.step[i] != 1 {
		return 0, 0, false
	}
	for d := 0; d < i; d++ {
		if s.count[d] != 1 {
			return 0, 0, false
		}
	}
	n, stride := 1, 1
	for d := r - 1; d >= 0; d-- {
		start += s.start[d] * stride
		n *= s.count[d]
		stride *= shape[d]
	}
	return start, n, true
}

func compileSliceBySize(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	begin, err := o.tensor("begin")
	if err != nil {
		return nil, err
	}
	size, err := o.tensor("size")
	if err != nil {
		return nil, err
	}
	s := &sliceSpec{}
	return func() error {
		r := len(x.Shape)
		if begin.Len() != r || size.Len() != r || r > 8 {
			return fmt.Errorf("begin/size must have %d elements", r)
		}
		for d := range r {
			b, n := int(begin.intAt(d)), int(size.intAt(d))
			if b < 0 {
				b += x.Shape[d]
			}
			if n == -1 {
				n = x.Shape[d] - b
			}
			if b < 0 || n < 0 || b+n > x.Shape[d] {
				return fmt.Errorf("slice [%d, +%d) out of range on axis %d of size %d", b, n, d, x.Shape[d])
			}
			s.start[d], s.step[d], s.count[d] = b, 1, n
		}
		out.setShape(s.count[:r])
		s.walk(x.Shape, func(xi, k, n int) { copyElems(out, k, x, xi, n) })
		return nil
	}, nil
}

// compileSliceUpdate: out = x with x[begin:end:stride] = update (iOS18). In an in-place
// state chain (stateAliases) x is a view of the state: the update is written into it, out
// becomes the same view, and the written slice is rounded to fp16 at the end of the call.
func compileSliceUpdate(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	upd, err := o.tensor("update")
	if err != nil {
		return nil, err
	}
	s, err := o.sliceSpec()
	if err != nil {
		return nil, err
	}
	check := func() error {
		if err := s.resolve(x.Shape); err != nil {
			return err
		}
		n := 1
		for d := range x.Shape {
			n *= s.count[d]
		}
		if n != upd.Len() {
			return fmt.Errorf("update %v does not fit slice of %d elements", upd.Shape, n)
		}
		return nil
	}
	if o.aliased() && out.DType.IsFloat() {
		out.f32 = nil // never used: the view replaces it on every call
		written := false
		o.c.f.finish = append(o.c.f.finish, func() {
			if written {
				s.walk(out.Shape, func(xi, _, n int) { roundSliceFP16(out.f32[xi : xi+n]) })
				written = false
			}
		})
		return func() error {
			if err := check(); err != nil {
				return err
			}
			out.f32 = x.f32
			out.setShape(x.Shape)
			s.walk(x.Shape, func(xi, k, n int) { copyElems(out, xi, upd, k, n) })
			written = true
			return nil
		}, nil
	}
	return func() error {
		if err := check(); err != nil {
			return err
		}
		out.setShape(x.Shape)
		copyElems(out, 0, x, 0, x.Len())
		s.walk(x.Shape, func(xi, k, n int) { copyElems(out, xi, upd, k, n) })
		return nil
	}, nil
}

func compileGather(o *opCtx) (func() error, error) {
	if run, ok, err := compileGatherRows(o); ok || err != nil {
		return run, err
	}
	x, err := o.tensor("x")
	if err != nil {
		return nil, err
	}
	ind, err := o.tensor("indices")
	if err != nil {
		return nil, err
	}
	axis, err := o.constInt("axis", 0)
	if err != nil {
		return nil, err
	}
	if bd, err := o.constInt("batch_dims", 0); err != nil || bd != 0 {
		return nil, o.errf("batch_dims other than 0 is not supported")
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	sh := make([]int, 0, 8)
	return func() error {
		a, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		sh = append(append(append(sh[:0], x.Shape[:a]...), ind.Shape...), x.Shape[a+1:]...)
		out.setShape(sh)
		outer := numElements(x.Shape[:a])
		inner := numElements(x.Shape[a+1:])
		n, ni := x.Shape[a], ind.Len()
		for b := 0; b < outer; b++ {
			for j := 0; j < ni; j++ {
				k := int(ind.intAt(j))
				if k < 0 {
					k += n // iOS15/16 semantics; iOS17 calls negatives out of bounds
				}
				if k < 0 || k >= n {
					return fmt.Errorf("index %d out of range [0, %d)", ind.intAt(j), n)
				}
				copyElems(out, (b*ni+j)*inner, x, (b*n+k)*inner, inner)
			}
		}
		return nil
	}, nil
}

func compileTile(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	reps, err := o.tensor("reps")
	if err != nil {
		return nil, err
	}
	sh := make([]int, 0, 8)
	return func() error {
		r := len(x.Shape)
		if reps.Len() != r {
			return fmt.Errorf("reps has %d elements for rank %d", reps.Len(), r)
		}
		sh = sh[:0]
		for d := range r {
			sh = append(sh, x.Shape[d]*int(reps.intAt(d)))
		}
		out.setShape(sh)
		for i := range out.Len() {
			// Map each output coordinate back modulo the input shape.
			xi, mul, rem := 0, 1, i
			for d := r - 1; d >= 0; d-- {
				c := rem % sh[d]
				rem /= sh[d]
				xi += (c % x.Shape[d]) * mul
				mul *= x.Shape[d]
			}
			copyElems(out, i, x, xi, 1)
		}
		return nil
	}, nil
}

func compileBandPart(o *opCtx) (func() error, error) {
	x, out, err := o.xAndOut()
	if err != nil {
		return nil, err
	}
	lower, err := o.constInt("lower", -1)
	if err != nil {
		return nil, err
	}
	upper, err := o.constInt("upper", -1)
	if err != nil {
		return nil, err
	}
	return func() error {
		r := len(x.Shape)
		if r < 2 {
			return fmt.Errorf("x must have rank ≥ 2")
		}
		out.setShape(x.Shape)
		m, n := x.Shape[r-2], x.Shape[r-1]
		for i := range x.Len() {
			row, col := (i/n)%m, i%n
			keep := (lower < 0 || row-col <= lower) && (upper < 0 || col-row <= upper)
			switch {
			case out.DType.IsFloat():
				out.f32[i] = 0
				if keep {
					out.f32[i] = x.f32[i]
				}
			case out.DType == Int32:
				out.i32[i] = 0
				if keep {
					out.i32[i] = x.i32[i]
				}
			default:
				out.b[i] = keep && x.b[i]
			}
		}
		return nil
	}, nil
}

func compileRange1D(o *opCtx) (func() error, error) {
	start, err := o.tensor("start")
	if err != nil {
		return nil, err
	}
	end, err := o.tensor("end")
	if err != nil {
		return nil, err
	}
	step, err := o.tensor("step")
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	var sh [1]int
	return func() error {
		s, e, st := start.Float64At(0), end.Float64At(0), step.Float64At(0)
		if st == 0 {
			return fmt.Errorf("step is 0")
		}
		n := int(math.Max(0, math.Ceil((e-s)/st)))
		if n > 1<<30 {
			return fmt.Errorf("range of %d elements", n)
		}
		sh[0] = n
		out.setShape(sh[:])
		for i := range n {
			v := s + float64(i)*st
			if out.DType == Int32 {
				out.i32[i] = int32(v)
			} else {
				out.f32[i] = float32(v)
			}
		}
		return nil
	}, nil
}

func compileFill(o *opCtx) (func() error, error) {
	shapeT, err := o.tensor("shape")
	if err != nil {
		return nil, err
	}
	val, err := o.constFloat("value", 0)
	if err != nil {
		return nil, err
	}
	out, err := o.output(0)
	if err != nil {
		return nil, err
	}
	sh := make([]int, 0, 8)
	return func() error {
		sh = sh[:0]
		for i := range shapeT.Len() {
			d := int(shapeT.intAt(i))
			if d < 0 || d > 1<<30 {
				return fmt.Errorf("bad dimension %d", d)
			}
			sh = append(sh, d)
		}
		out.setShape(sh)
		for i := range out.Len() {
			switch {
			case out.DType.IsFloat():
				out.f32[i] = val
			case out.DType == Int32:
				out.i32[i] = int32(val)
			default:
				out.b[i] = val != 0
			}
		}
		return nil
	}, nil
}

// compileGatherRows handles gather along axis 0 of a constexpr weight (an embedding table
// quantized to int4 or a LUT): it dequantizes only the rows the indices pick, so the table
// is never materialised (for a 51200×2560 vocabulary that would be 500 MB of float32).
// ok is false when the op is not of that form.
func compileGatherRows(o *opCtx) (run func() error, ok bool, err error) {
	v, err := o.arg("x")
	if err != nil || v.w == nil || v.t != nil {
		return nil, false, nil
	}
	axis, err := o.constInt("axis", 0)
	if err != nil || axis != 0 {
		return nil, false, nil
	}
	if bd, err := o.constInt("batch_dims", 0); err != nil || bd != 0 {
		return nil, false, nil
	}
	dt, wshape, err := tensorTypeOf(v.wType)
	// [rows, cols] or, as the ANE layout binds weights, [rows, cols, 1, 1].
	if err != nil || len(wshape) < 2 || slices.Contains(wshape, -1) || numElements(wshape[2:]) != 1 {
		return nil, false, nil
	}
	ind, err := o.tensor("indices")
	if err != nil {
		return nil, true, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, true, err
	}
	w := v.w
	rows, cols := w.dims()
	sh := make([]int, 0, 8)
	return func() error {
		sh = append(append(sh[:0], ind.Shape...), wshape[1:]...)
		out.setShape(sh)
		for j := range ind.Len() {
			k := int(ind.intAt(j))
			if k < 0 {
				k += rows // iOS15/16 semantics; iOS17 calls negatives out of bounds
			}
			if k < 0 || k >= rows {
				return fmt.Errorf("index %d out of range [0, %d)", ind.intAt(j), rows)
			}
			dst := out.f32[j*cols : (j+1)*cols]
			w.row(k, dst)
			if dt == Float16 {
				// As materialise would have rounded the dense weight (constexpr output fp16).
				roundSliceFP16(dst)
			}
		}
		return nil
	}, true, nil
}
