package reference

import (
	"slices"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// bufferPlan lets op outputs of one function share float storage. A program's values are
// SSA and its ops run in order, so once the last op reading a value has run, that value's
// buffer can hold a later op's output. Without sharing, a 32-layer prefill keeps every
// intermediate of every layer alive at once (≈1.7 GB for a Phi-2-shaped chunk of 64 tokens,
// more than the package itself); with it, memory is the few largest live intermediates.
//
// Only float outputs of a fully known declared shape are pooled (the large activations); a
// pooled slice is cut to its declared length and capacity, so a kernel that grows its output
// at run time reallocates instead of writing into storage another value owns. Several names
// can stand for one tensor (ops that forward their input), so tensors are reference-counted
// by the names that are still to be read.
type bufferPlan struct {
	lastUse map[string]int // value name → index of the last op reading it (block outputs: never)
	free    [2][][]float32 // free storage: [0] Go heap, [1] reserved for tensors along the keys
	// reserved marks storage of free[1] by its first element: it stays with tensors along the
	// keys, which write only the keys a call covers; any other tensor would make its pages
	// resident for nothing.
	reserved map[*float32]bool
	owned    map[*Tensor][]float32 // pooled tensors → the storage they were given
	live     map[*Tensor]int       // pooled tensors → names still to be read
	views    map[*Tensor]*Tensor   // an output that may view its input's storage → that input
	holds    map[*Tensor]*Tensor   // such an output → the pooled input it keeps alive
}

// pinned marks a value that outlives the function's ops (a block output, a view's source).
const pinned = 1 << 30

func newBufferPlan(ops []*milpb.Operation, outputs []string) *bufferPlan {
	p := &bufferPlan{lastUse: map[string]int{}, owned: map[*Tensor][]float32{}, live: map[*Tensor]int{}, reserved: map[*float32]bool{},
		views: map[*Tensor]*Tensor{}, holds: map[*Tensor]*Tensor{}}
	for i, op := range ops {
		for _, a := range op.GetInputs() {
			for _, b := range a.GetArguments() {
				if n := b.GetName(); n != "" {
					p.lastUse[n] = i
				}
			}
		}
	}
	for _, o := range outputs {
		p.lastUse[o] = pinned
	}
	return p
}

// take returns storage for n floats: the smallest free buffer that holds n, else a new one
// (from alloc); keys chooses the reserved storage (see reserved).
func (p *bufferPlan) take(t *Tensor, n int, keys bool, alloc func(int) []float32) {
	k := 0
	if keys {
		k = 1
	}
	free := p.free[k]
	best := -1
	for i, b := range free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(free[best])) {
			best = i
		}
	}
	var buf []float32
	if best >= 0 {
		buf = free[best]
		p.free[k] = slices.Delete(free, best, best+1)
	} else {
		buf = alloc(n)
		if keys {
			p.reserved[&buf[0]] = true
		}
	}
	t.f32 = buf[:n:n]
	p.owned[t] = buf[:cap(buf)]
}

// put returns buf to its free list.
func (p *bufferPlan) put(buf []float32) {
	if len(buf) > 0 && p.reserved[&buf[0]] {
		p.free[1] = append(p.free[1], buf)
		return
	}
	p.free[0] = append(p.free[0], buf)
}

// defined counts name (just defined by op i) as a reader of its tensor, and releases it at
// once when nothing reads it.
func (p *bufferPlan) defined(c *compiler, name string, i int) {
	v := c.vals[name]
	if v == nil || v.t == nil {
		return
	}
	if _, ok := p.owned[v.t]; !ok {
		return
	}
	p.live[v.t]++
	if last, ok := p.lastUse[name]; !ok || last <= i {
		p.release(v.t)
	}
}

// read notes that op i read name; after its last reader the name stops holding its tensor.
func (p *bufferPlan) read(c *compiler, name string, i int) {
	if p.lastUse[name] != i {
		return
	}
	if v := c.vals[name]; v != nil && v.t != nil {
		p.release(v.t)
	}
}

// mayView reports whether out (a pooled output) may be made, at run time, a view of x's
// storage instead of a copy (see viewOrCopy), and records it: x then stays out of the pool
// for as long as out is live. Only same-dtype float tensors qualify, only when out is
// pooled (that is what tracks its lifetime) and not rounded in place after its op.
func (c *compiler) mayView(out, x *Tensor) bool {
	p := c.plan
	if p == nil || x == nil || x == out || x.DType != out.DType || !out.DType.IsFloat() || c.m.opts.copyViews {
		return false
	}
	if out.DType == Float16 && c.m.opts.Precision == FP16Faithful {
		return false // the step rounds its output in place: a view would round x too
	}
	if _, ok := p.owned[out]; !ok {
		return false
	}
	p.views[out] = x
	return true
}

// pin keeps t's storage out of the pool for good (an op made a view of it).
func (p *bufferPlan) pin(t *Tensor) {
	if _, ok := p.owned[t]; ok {
		p.live[t] += pinned
	}
}

func (p *bufferPlan) release(t *Tensor) {
	buf, ok := p.owned[t]
	if !ok {
		return
	}
	if p.live[t]--; p.live[t] > 0 {
		return
	}
	delete(p.live, t)
	delete(p.owned, t)
	p.put(buf)
	if x, ok := p.holds[t]; ok {
		delete(p.holds, t)
		p.release(x)
	}
}

// after updates the plan once op i (already compiled) has defined its outputs and read its
// inputs.
func (p *bufferPlan) after(c *compiler, op *milpb.Operation, i int) {
	if (&opCtx{c: c, op: op}).aliased() {
		// An in-place state chain makes its output a view of its input (or of the state) at
		// run time: the input must keep its storage, and the storage the output was given
		// (dropped by the kernel, f32 nil) goes straight back to the pool.
		for _, a := range op.GetInputs() {
			for _, b := range a.GetArguments() {
				if v := c.vals[b.GetName()]; v != nil && v.t != nil {
					p.pin(v.t)
				}
			}
		}
		for _, o := range op.GetOutputs() {
			if v := c.vals[o.GetName()]; v != nil && v.t != nil && v.t.f32 == nil {
				if buf, ok := p.owned[v.t]; ok {
					delete(p.owned, v.t)
					p.put(buf)
				}
			}
		}
	}
	// A view keeps its source's storage out of the pool until the view itself is released;
	// counted before the op's reads, which may be the source's last.
	for _, o := range op.GetOutputs() {
		if v := c.vals[o.GetName()]; v != nil && v.t != nil {
			if x, ok := p.views[v.t]; ok {
				delete(p.views, v.t)
				if _, pooled := p.owned[x]; pooled {
					p.live[x]++
					p.holds[v.t] = x
				}
			}
		}
	}
	for _, o := range op.GetOutputs() {
		p.defined(c, o.GetName(), i)
	}
	for _, a := range op.GetInputs() {
		for _, b := range a.GetArguments() {
			if n := b.GetName(); n != "" {
				p.read(c, n, i)
			}
		}
	}
}

// buffer returns an output buffer for a declared type, pooled when the plan allows it. A
// buffer along the keys (keys.go) that is new to the pool is reserved, not allocated: a
// call writes only the keys it covers.
func (c *compiler) buffer(dt DType, shape []int, keys bool) (*Tensor, error) {
	n := numElements(shape)
	if c.plan == nil || !dt.IsFloat() || n <= 0 || slices.Contains(shape, -1) {
		return newBuffer(dt, shape), nil
	}
	t := &Tensor{DType: dt, Shape: slices.Clone(shape)}
	var err error
	alloc := func(n int) []float32 { return make([]float32, n) }
	if keys {
		alloc = func(n int) []float32 {
			v, free, e := reserveFloats(n)
			if e != nil {
				err = e
				return make([]float32, n)
			}
			c.m.closers = append(c.m.closers, free)
			return v
		}
	}
	c.plan.take(t, n, keys, alloc)
	return t, err
}
