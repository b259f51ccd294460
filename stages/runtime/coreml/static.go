package coreml

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// Static ANE-compatibility checks: facts read from a package's program and compared with
// documented limits of the Apple Neural Engine. They are not a measurement — only Core ML
// decides where an op runs (MLComputePlan on a Mac says what it decided) — but each one
// names a reason the ANE would pass an op on to the GPU or CPU.
const (
	// aneMaxDimension bounds every dimension of a tensor the ANE holds (coremltools'
	// performance guidance; a 128k-token vocabulary's embedding table and LM head exceed it,
	// which is why the ANE layout splits them).
	aneMaxDimension = contract.MaxDimension
	// aneStateAlign: a state whose last dimension is not a multiple of 32 is not kept on
	// the ANE (coremltools issue 2631: stateful models with such states fall back).
	aneStateAlign = 32
	// aneLargeGatherRows: a gather from a weight table this tall (the token embedding of
	// any real vocabulary) is placed off the ANE in practice; the ANE runs gathers of
	// small tables only. This is a heuristic, not a published limit.
	aneLargeGatherRows = 16384
)

// StaticFinding is one static check that a package fails.
type StaticFinding struct {
	Package  string `json:"package,omitempty"` // the chunk's package, for a chunked export
	Function string `json:"function"`
	Check    string `json:"check"` // "dimension", "dtype", "state", "op"
	Op       string `json:"op,omitempty"`
	Name     string `json:"name"`  // the op's output or the state
	Where    string `json:"where"` // "layer 3", "input", "head"
	Msg      string `json:"msg"`
}

func (f StaticFinding) String() string {
	s := fmt.Sprintf("%s %s", f.Function, f.Where)
	if f.Package != "" {
		s = f.Package + ": " + s
	}
	return fmt.Sprintf("%s: [%s] %s", s, f.Check, f.Msg)
}

// Lines are the findings for people: one line per distinct finding, naming every function
// it holds for (prefill and decode usually share their weights and states).
func (r *StaticReport) Lines() []string {
	var keys []string
	fns := map[string][]string{}
	for _, f := range r.Findings {
		k := f.Where + ": [" + f.Check + "] " + f.Msg
		if f.Package != "" {
			k = f.Package + ": " + k
		}
		if _, ok := fns[k]; !ok {
			keys = append(keys, k)
		}
		fns[k] = append(fns[k], f.Function)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.Join(fns[k], ", ") + " " + k
	}
	return out
}

// StaticReport is the result of the static checks of one package or chunked export.
type StaticReport struct {
	Ops       map[string]int  `json:"ops"`       // op count by type, over every function (consts excluded)
	Quantized bool            `json:"quantized"` // weights go through constexpr_* dequantization
	Findings  []StaticFinding `json:"findings"`
}

// CheckStatic runs the static checks on the package, or every package of the chunked
// export, at path.
func CheckStatic(path string) (*StaticReport, error) {
	pkgs, err := mlpackage.PackagesAt(path)
	if err != nil {
		return nil, err
	}
	rep := &StaticReport{Ops: map[string]int{}}
	for _, p := range pkgs {
		pkg, err := mlpackage.Open(p)
		if err != nil {
			return nil, err
		}
		r := StaticChecks(pkg.Model)
		pkg.Close()
		for k, v := range r.Ops {
			rep.Ops[k] += v
		}
		rep.Quantized = rep.Quantized || r.Quantized
		for _, f := range r.Findings {
			if len(pkgs) > 1 {
				f.Package = p[strings.LastIndex(p, "/")+1:]
			}
			rep.Findings = append(rep.Findings, f)
		}
	}
	return rep, nil
}

// StaticChecks runs the static checks on one program.
func StaticChecks(m *milpb.Model) *StaticReport {
	rep := &StaticReport{Ops: map[string]int{}}
	prog := m.GetMlProgram()
	names := make([]string, 0, len(prog.GetFunctions()))
	for n := range prog.GetFunctions() {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, fn := range names {
		f := prog.GetFunctions()[fn]
		types := map[string]*milpb.ValueType{}
		for _, in := range f.GetInputs() {
			types[in.GetName()] = in.GetType()
			if st := in.GetType().GetStateType(); st != nil {
				rep.checkState(fn, in.GetName(), st.GetWrappedType().GetTensorType())
			} else {
				rep.checkTensor(fn, "input", "", in.GetName(), in.GetType().GetTensorType())
			}
		}
		for _, op := range OpsInOrder(f) {
			for _, o := range op.Op.GetOutputs() {
				types[o.GetName()] = o.GetType()
			}
			t := op.Op.GetType()
			for _, o := range op.Op.GetOutputs() {
				rep.checkTensor(fn, op.Where, t, o.GetName(), o.GetType().GetTensorType())
			}
			if t == "const" {
				continue
			}
			rep.Ops[t]++
			if strings.HasPrefix(t, "constexpr_") {
				rep.Quantized = true
			}
			if t == "gather" {
				rep.checkGather(fn, op, types)
			}
		}
	}
	return rep
}

func (r *StaticReport) add(f StaticFinding) { r.Findings = append(r.Findings, f) }

func dims(t *milpb.TensorType) []int64 {
	var d []int64
	for _, x := range t.GetDimensions() {
		if c := x.GetConstant(); c != nil {
			d = append(d, int64(c.GetSize()))
		} else {
			d = append(d, -1)
		}
	}
	return d
}

func (r *StaticReport) checkTensor(fn, where, op, name string, t *milpb.TensorType) {
	if t == nil {
		return
	}
	for i, d := range dims(t) {
		if d > aneMaxDimension {
			r.add(StaticFinding{Function: fn, Check: "dimension", Op: op, Name: name, Where: where,
				Msg: fmt.Sprintf("%s %q: dimension %d is %d, above the ANE's %d", opOr(op, "tensor"), name, i, d, aneMaxDimension)})
			break
		}
	}
	switch dt := t.GetDataType(); dt {
	case milpb.DataType_FLOAT32, milpb.DataType_FLOAT64, milpb.DataType_BFLOAT16:
		r.add(StaticFinding{Function: fn, Check: "dtype", Op: op, Name: name, Where: where,
			Msg: fmt.Sprintf("%s %q is %v: the ANE computes in fp16 only", opOr(op, "tensor"), name, dt)})
	}
}

func (r *StaticReport) checkState(fn, name string, t *milpb.TensorType) {
	d := dims(t)
	if t.GetDataType() != milpb.DataType_FLOAT16 {
		r.add(StaticFinding{Function: fn, Check: "state", Name: name, Where: "state",
			Msg: fmt.Sprintf("state %q is %v: the ANE keeps fp16 states only", name, t.GetDataType())})
	}
	if len(d) > 0 && d[len(d)-1]%aneStateAlign != 0 {
		r.add(StaticFinding{Function: fn, Check: "state", Name: name, Where: "state",
			Msg: fmt.Sprintf("state %q %v: last dimension %d is not a multiple of %d (coremltools issue 2631)", name, d, d[len(d)-1], aneStateAlign)})
	}
	for i, x := range d {
		if x > aneMaxDimension {
			r.add(StaticFinding{Function: fn, Check: "state", Name: name, Where: "state",
				Msg: fmt.Sprintf("state %q: dimension %d is %d, above the ANE's %d", name, i, x, aneMaxDimension)})
		}
	}
}

func (r *StaticReport) checkGather(fn string, op PlacedOp, types map[string]*milpb.ValueType) {
	table := argName(op.Op, "x")
	t := types[table].GetTensorType()
	d := dims(t)
	if len(d) == 0 || d[0] < aneLargeGatherRows {
		return
	}
	r.add(StaticFinding{Function: fn, Check: "op", Op: "gather", Name: op.Op.GetOutputs()[0].GetName(), Where: op.Where,
		Msg: fmt.Sprintf("gather from %q, a table of %d rows: large gathers run off the ANE (heuristic, from %d rows)", table, d[0], aneLargeGatherRows)})
}

func opOr(op, alt string) string {
	if op == "" {
		return alt
	}
	return op
}

// argName is the name bound to an op's input, "" for a literal.
func argName(op *milpb.Operation, input string) string {
	for _, b := range op.GetInputs()[input].GetArguments() {
		return b.GetName()
	}
	return ""
}

// PlacedOp is an op of a function with the part of the model it belongs to.
type PlacedOp struct {
	Op    *milpb.Operation
	Where string // "input" (before the first layer), "layer N", "head"
}

var layerWeight = regexp.MustCompile(`^blk_(\d+)_`)

// OpsInOrder lists the ops of a function's block in program order, each placed in a layer
// by the weights it reads: exported weights are named after their GGUF tensors (blk.N.* →
// blk_N_*), so an op belongs to the layer of the last layer weight read at or before it,
// and to the head once output weights are read. The order is what MLComputePlan reports
// its per-op usage against.
func OpsInOrder(f *milpb.Function) []PlacedOp {
	var block *milpb.Block
	for _, b := range f.GetBlockSpecializations() {
		block = b // one specialisation per function in lilims packages
	}
	where := "input"
	var out []PlacedOp
	for _, op := range block.GetOperations() {
		for _, arg := range op.GetInputs() {
			for _, b := range arg.GetArguments() {
				n := b.GetName()
				if m := layerWeight.FindStringSubmatch(n); m != nil {
					if l, err := strconv.Atoi(m[1]); err == nil {
						where = fmt.Sprintf("layer %d", l)
					}
				} else if strings.HasPrefix(n, "output_") || n == "output" || (n == "token_embd_weight" && where != "input") {
					where = "head" // the LM head: its own weights, or the tied embedding's
				}
			}
		}
		out = append(out, PlacedOp{Op: op, Where: where})
	}
	return out
}
