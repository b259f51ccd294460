package reference

import (
	"slices"

	"github.com/lilims/lilims/stages/export/contract"
)

// Attention over the filled part of the KV state.
//
// A lilims package declares its KV states [1, n_head_kv, C, head_dim] for the whole exported
// context C and attends over all C rows on every call; the causal mask input [1, 1, N, C]
// holds −1e4 (the masked score of the contract, docs/export.md) for every key a query may not
// see. Keys that every query of a call masks contribute exactly nothing: their scores plus
// −1e4 underflow to 0 in the softmax's exp (any score range narrower than ≈9000), and a
// zero probability adds nothing to p·v. So when the position axis of the states can be
// followed through a function — from read_state and the mask, through reshapes, transposes,
// slices, elementwise ops, softmax and the two matmuls, to its end in write_state or a
// matmul's contraction — the function runs each call over the first R keys only, R being
// what the mask attends (plus the chunk's own rows), rounded up to keyBlock: every tensor
// on that path is R long on its key axis, each score and each sum is computed in the same
// order as over C, and the logits are bit for bit those of the whole context. The states
// keep R rows (stateTensor.rows), grown as positions fill, so a long exported context
// costs memory and time only as it is used.
//
// A query that attends no key at all would differ (its softmax spreads over whichever keys
// it runs over); the contract's hosts never send one, as every query attends its own
// position. A function whose key axis cannot be followed (an op the plan does not know
// touches it) runs over all C keys.

// keyBlock is the granularity of R: states grow by whole blocks, so a decode step copies
// the cache into a larger one once every keyBlock tokens, not on every token.
const keyBlock = 64

// keyPlan follows the states' position axis through a function while it is compiled.
type keyPlan struct {
	extent int            // C, the position axis of every state; 0: the function has no such states
	mask   int            // index in the function's inputs of the causal mask [1, 1, N, C]
	axis   map[string]int // value name → its key axis
	broken bool           // an op the plan does not follow touches a key axis
}

// newKeyPlan starts the plan of a function with the given states and inputs: the key axis
// is axis 2 of rank-4 states that agree on it, and axis 3 of the one float input shaped
// [1, 1, N, C], the causal mask.
func newKeyPlan(states, inputs []Feature) *keyPlan {
	k := &keyPlan{mask: -1, axis: map[string]int{}}
	for _, s := range states {
		if len(s.Shape) != 4 || (k.extent != 0 && s.Shape[2] != k.extent) {
			k.extent = 0
			return k
		}
		k.extent = s.Shape[2]
	}
	if k.extent == 0 {
		return k
	}
	for i, in := range inputs {
		if in.DType.IsFloat() && len(in.Shape) == 4 && in.Shape[0] == 1 && in.Shape[1] == 1 && in.Shape[3] == k.extent {
			if k.mask >= 0 {
				k.broken = true // two candidate masks: do not guess
			}
			k.mask = i
			k.axis[in.Name] = 3
		}
	}
	k.broken = k.broken || k.mask < 0
	return k
}

// dynamic reports whether the function runs over the filled keys only.
func (k *keyPlan) dynamic() bool { return k.extent > 0 && !k.broken }

// follow records the key axis of op o's output from those of its inputs, or breaks the
// plan when o handles a key axis in a way the plan does not know. It runs before o's
// kernel is compiled, so that the kernel can ask for its output's key axis.
func (k *keyPlan) follow(o *opCtx) {
	if k.extent == 0 || k.broken {
		return
	}
	marked := map[string]int{} // input key → key axis of the value bound there
	for key, a := range o.op.GetInputs() {
		for _, b := range a.GetArguments() {
			if ax, ok := k.axis[b.GetName()]; ok {
				if _, dup := marked[key]; dup {
					k.broken = true // a variadic input (concat) over keys
					return
				}
				marked[key] = ax
			}
		}
	}
	outs := o.op.GetOutputs()
	var out string
	var outShape []int
	if len(outs) == 1 {
		out = outs[0].GetName()
		_, outShape, _ = tensorTypeOf(outs[0].GetType().GetTensorType())
	}
	if o.typ == "read_state" {
		if len(outShape) == 4 && outShape[2] == k.extent {
			k.axis[out] = 2
		} else {
			k.broken = true
		}
		return
	}
	if len(marked) == 0 {
		return
	}
	only := func(keys ...string) bool {
		for key := range marked {
			if !slices.Contains(keys, key) {
				return false
			}
		}
		return true
	}
	set := func(a int) {
		if a < 0 || a >= len(outShape) || outShape[a] != k.extent {
			k.broken = true
			return
		}
		k.axis[out] = a
	}
	shapeOf := func(key string) []int {
		t, err := o.tensor(key)
		if err != nil {
			return nil
		}
		return t.Shape
	}
	_, binary := binaryFloat[o.typ]
	_, unary := unaryFloat[o.typ]
	switch {
	case o.typ == "write_state" && only("data"):
		// the key axis ends in the state
	case (unary || o.typ == "softmax") && only("x"):
		set(marked["x"])
	case binary && only("x", "y"):
		r, a := len(outShape), -1
		for _, key := range []string{"x", "y"} {
			if ax, ok := marked[key]; ok {
				oa := ax + r - len(shapeOf(key))
				if a >= 0 && oa != a {
					k.broken = true
					return
				}
				a = oa
			}
		}
		for _, key := range []string{"x", "y"} {
			if _, ok := marked[key]; ok {
				continue
			}
			sh := shapeOf(key) // broadcast along the keys, or not there
			if d := a - (r - len(sh)); sh == nil || (d >= 0 && sh[d] != 1) {
				k.broken = true
				return
			}
		}
		set(a)
	case o.typ == "reshape" && only("x"):
		// The key axis survives when the output keeps it whole, after the same elements.
		in, ax := shapeOf("x"), marked["x"]
		pre, p := numElements(in[:ax]), 1
		for j, d := range outShape {
			if p == pre && d == k.extent {
				set(j)
				return
			}
			p *= d
		}
		k.broken = true
	case o.typ == "transpose" && only("x"):
		perm, err := o.constInts("perm", nil)
		if err != nil {
			k.broken = true
			return
		}
		for j, p := range perm {
			if p, err := normAxis(p, len(perm)); err == nil && p == marked["x"] {
				set(j)
				return
			}
		}
		k.broken = true
	case o.typ == "slice_by_index" && only("x"):
		k.followSlice(o, marked["x"], set)
	case o.typ == "slice_update" && only("x"):
		set(marked["x"])
	case o.typ == "matmul" && only("x", "y"):
		k.followMatmul(o, marked, len(shapeOf("x")), len(shapeOf("y")), len(outShape), set)
	default:
		k.broken = true
	}
}

// followSlice lets a slice_by_index keep the key axis ax when it takes all of it.
func (k *keyPlan) followSlice(o *opCtx, ax int, set func(int)) {
	begin, err1 := o.constInts("begin", nil)
	end, err2 := o.constInts("end", nil)
	stride, err3 := o.constInts("stride", nil)
	bm, err4 := o.constBools("begin_mask", nil)
	em, err5 := o.constBools("end_mask", nil)
	sq, err6 := o.constBools("squeeze_mask", nil)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || err6 != nil ||
		ax >= len(begin) || ax >= len(end) {
		k.broken = true
		return
	}
	at := func(m []bool, i int) bool { return i < len(m) && m[i] }
	whole := (begin[ax] == 0 || at(bm, ax)) && (end[ax] >= k.extent || at(em, ax)) &&
		(stride == nil || stride[ax] == 1) && !at(sq, ax)
	if !whole {
		k.broken = true
		return
	}
	a := ax
	for d := 0; d < ax; d++ {
		if at(sq, d) {
			a--
		}
	}
	set(a)
}

// followMatmul: a key axis of x's rows or y's columns is one of the output; the keys as
// the contraction (p·v) must be that of both operands, and end there.
func (k *keyPlan) followMatmul(o *opCtx, marked map[string]int, rx, ry, r int, set func(int)) {
	tx, err1 := o.constBool("transpose_x", false)
	ty, err2 := o.constBool("transpose_y", false)
	if err1 != nil || err2 != nil || rx < 2 || ry < 2 {
		k.broken = true
		return
	}
	xRow, xIn := rx-2, rx-1
	if tx {
		xRow, xIn = xIn, xRow
	}
	yIn, yCol := ry-2, ry-1
	if ty {
		yIn, yCol = yCol, yIn
	}
	ax, xm := marked["x"]
	ay, ym := marked["y"]
	switch {
	case xm && ym && ax == xIn && ay == yIn: // contraction over the keys
	case xm && !ym && ax == xRow:
		set(r - 2)
	case ym && !xm && ay == yCol:
		set(r - 1)
	default:
		k.broken = true
	}
}

// end breaks the plan when a block output carries a key axis.
func (k *keyPlan) end(outputs []string) {
	for _, o := range outputs {
		if _, ok := k.axis[o]; ok {
			k.broken = true
		}
	}
}

// keysAttended returns how many leading keys the mask [1, 1, n, c] attends to: one past
// the last key some query does not mask. A value at or below MaskedScore masks (−inf does
// too); anything else — NaN included — attends. Each row is read from its end down to what
// the rows before it attend, four keys at a time, so a call reads the masked tail once per
// row and nothing of the rest.
func keysAttended(mask []float32, n, c int) int {
	e := 0
	for i := range n {
		row := mask[i*c : (i+1)*c]
		j := c
		for j-4 >= e && row[j-1] <= maskedScore && row[j-2] <= maskedScore && row[j-3] <= maskedScore && row[j-4] <= maskedScore {
			j -= 4
		}
		for j > e && row[j-1] <= maskedScore {
			j--
		}
		e = j
	}
	return e
}

// maskedScore is the contract's additive mask value for a key a query does not attend.
const maskedScore = contract.MaskedScore

// callKeys returns R, the keys a call covers given its mask [1, 1, n, c]: every key the
// mask attends, and the n rows the call writes (they start at or before the first query's
// own position, so they end within n − 1 keys past what the mask attends), rounded up to
// keyBlock, at most c.
func callKeys(mask []float32, n, c int) int {
	r := keysAttended(mask, n, c) + n - 1
	r = (r + keyBlock - 1) / keyBlock * keyBlock
	return min(max(r, keyBlock), c)
}

// coverKeys prepares the call about to run: it sets f.keys to R and makes f's states hold R
// positions (all of them when the function does not follow its keys), and copies the first
// R keys of each row of the mask into its input buffer (rounded to fp16 when it is declared
// so, as every input is): the masked rest is neither copied nor kept.
func (f *function) coverKeys(inputs map[string]*Tensor) {
	if !f.dynKeys {
		f.keys = f.keyExtent
		if f.state != nil {
			for _, s := range f.desc.States {
				if t := f.state.vals[s.Name]; len(t.shape) == 4 {
					t.grow(t.shape[2])
				}
			}
		}
		return
	}
	in := inputs[f.desc.Inputs[f.maskIn].Name].Float32s()
	n, c := f.desc.Inputs[f.maskIn].Shape[2], f.keyExtent
	r := callKeys(in, n, c)
	// The states' rows only grow (a Reset session rewrites them from position 0, under the
	// mask), and every state of the call is viewed with the same R.
	for _, s := range f.desc.States {
		r = max(r, f.state.vals[s.Name].rows)
	}
	for _, s := range f.desc.States {
		f.state.vals[s.Name].grow(r)
	}
	buf := f.inputs[f.maskIn]
	buf.setShape([]int{1, 1, n, r})
	for i := range n {
		row := buf.f32[i*r : (i+1)*r]
		copy(row, in[i*c:i*c+r])
		if buf.DType == Float16 {
			roundSliceFP16(row)
		}
	}
	f.keys = r
}
