package reference

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

// stateAlias marks the values of one read_state → slice_update → write_state chain on a
// state, the pattern a KV cache update compiles to:
//
//	x = read_state(input=S)
//	y = slice_update(x=x, update=u, begin=…, end=…)
//	write_state(input=S, data=y)
//
// When x has no other consumer and S no other reader or writer, the three ops can work on
// the state's own storage: read_state makes x a view of S, slice_update writes u into that
// view and makes y the same view, and write_state only has to round the written slice to
// fp16 — which is deferred to the end of the call, so that the other consumers of y see
// exactly what the copying ops would have given them. The cost per call becomes the size
// of the update instead of three passes over the whole cache.
type stateAlias struct {
	read, update, write *milpb.Operation
}

// stateAliases finds the chains of blk that can work in place, by state name.
func stateAliases(blk *milpb.Block) map[string]*stateAlias {
	uses := map[string]int{}
	for _, op := range blk.GetOperations() {
		for _, arg := range op.GetInputs() {
			for _, b := range arg.GetArguments() {
				if n := b.GetName(); n != "" {
					uses[n]++
				}
			}
		}
	}
	for _, o := range blk.GetOutputs() {
		uses[o]++
	}
	bound := func(op *milpb.Operation, key string) string {
		if a := op.GetInputs()[key].GetArguments(); len(a) == 1 {
			return a[0].GetName()
		}
		return ""
	}
	output := func(op *milpb.Operation) string {
		if outs := op.GetOutputs(); len(outs) == 1 {
			return outs[0].GetName()
		}
		return ""
	}
	chains := map[string]*stateAlias{}
	producer := map[string]*milpb.Operation{}
	for _, op := range blk.GetOperations() {
		switch op.GetType() {
		case "read_state":
			s := bound(op, "input")
			if c := chains[s]; c == nil && uses[s] == 2 { // S is bound to this read and one write
				chains[s] = &stateAlias{read: op}
			}
		case "slice_update":
			x := bound(op, "x")
			if r := producer[x]; r != nil && uses[x] == 1 {
				s := bound(r, "input")
				if c := chains[s]; c != nil && c.read == r && c.update == nil {
					c.update = op
				}
			}
		case "write_state":
			s, y := bound(op, "input"), bound(op, "data")
			if c := chains[s]; c != nil && c.update != nil && c.write == nil && output(c.update) == y {
				c.write = op
			}
		}
		if out := output(op); out != "" {
			producer[out] = op
		}
	}
	for s, c := range chains {
		if c.write == nil {
			delete(chains, s)
		}
	}
	return chains
}

// stateArg returns the state named by input key.
func (o *opCtx) stateArg(key string) (*value, error) {
	v, err := o.arg(key)
	if err != nil {
		return nil, err
	}
	if v.state == "" {
		return nil, o.errf("input %q is not a state", key)
	}
	return v, nil
}

// aliased reports whether op o is part of an in-place chain on a state.
func (o *opCtx) aliased() bool {
	for _, c := range o.c.aliases {
		if c.read == o.op || c.update == o.op || c.write == o.op {
			return true
		}
	}
	return false
}

// compileReadState copies the state into the op's buffer, or, in an in-place chain, makes
// the buffer a view of the state.
func compileReadState(o *opCtx) (func() error, error) {
	sv, err := o.stateArg("input")
	if err != nil {
		return nil, err
	}
	out, err := o.floatOutput(0)
	if err != nil {
		return nil, err
	}
	f, name := o.c.f, sv.state
	sh := make([]int, 0, len(sv.stShape))
	if o.aliased() {
		out.f32 = nil // never used: the view replaces it on every call
		return func() error {
			st := f.state.vals[name]
			sh = st.viewShape(sh)
			out.f32, out.Shape = st.v, append(out.Shape[:0], sh...)
			return nil
		}, nil
	}
	return func() error {
		st := f.state.vals[name]
		sh = st.viewShape(sh)
		out.setShape(sh)
		copy(out.f32, st.v)
		return nil
	}, nil
}

// compileWriteState stores data into the state rounded to fp16 (states are fp16: coremltools' StateFeatureType). In
// an in-place chain the data already is the state; slice_update rounds what it wrote at the
// end of the call, so the op does nothing.
func compileWriteState(o *opCtx) (func() error, error) {
	sv, err := o.stateArg("input")
	if err != nil {
		return nil, err
	}
	data, err := o.floatTensor("data")
	if err != nil {
		return nil, err
	}
	if o.aliased() {
		return nil, nil
	}
	f, name := o.c.f, sv.state
	sh := make([]int, 0, len(sv.stShape))
	return func() error {
		st := f.state.vals[name]
		if sh = st.viewShape(sh); !sameShape(data.Shape, sh) {
			return fmt.Errorf("data %v does not match state %q %v", data.Shape, name, sh)
		}
		dst := st.v
		for i, v := range data.f32 {
			dst[i] = roundFP16(v)
		}
		return nil
	}, nil
}
