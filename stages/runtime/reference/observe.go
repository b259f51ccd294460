package reference

// ObservedOp is one op of a running function as an Options.Observe function sees it, right
// after the op ran (and after its fp16 rounding): what a calibration pass needs to collect
// the statistics of the activations that reach each weight.
type ObservedOp struct {
	Function   string // the function running, e.g. "prefill" or "decode"
	Type, Name string // the op's type ("linear", "matmul", "gather", …) and name
	// Args maps each input parameter ("x", "weight", "indices", …) to the name of the value
	// bound to it in the program — for a weight, the const or constexpr value the exporter
	// named after the GGUF tensor. A parameter bound to an inline literal maps to "".
	// Variadic parameters report their first binding only.
	Args map[string]string
	// Inputs maps input parameters to their tensors when they exist as tensors: runtime
	// buffers (valid until the next op overwrites them: read them during the call, do not
	// keep them) and constants. A constexpr weight that the runtime never materialises (the
	// fused int4/LUT kernels read it packed) is absent.
	Inputs map[string]*Tensor
}

// observed describes op o for Options.Observe; it is built once, at Open, so observing costs
// a function call per op and nothing when Observe is nil (steps then carry no description).
func (c *compiler) observed(o *opCtx) *ObservedOp {
	ob := &ObservedOp{Function: c.fnName, Type: o.typ, Name: o.name,
		Args: map[string]string{}, Inputs: map[string]*Tensor{}}
	for key, a := range o.op.GetInputs() {
		bs := a.GetArguments()
		if len(bs) == 0 {
			continue
		}
		name := bs[0].GetName()
		ob.Args[key] = name
		if v, ok := c.vals[name]; ok && name != "" && v.t != nil {
			ob.Inputs[key] = v.t
		}
	}
	return ob
}
