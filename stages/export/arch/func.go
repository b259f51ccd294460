package arch

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// MaskedScore is the value the host puts in causal_mask where a query may not attend
// (contract.MaskedScore).
const MaskedScore = contract.MaskedScore

// Layout is how a function lays out its activations.
type Layout int

const (
	// Standard keeps the hidden state as [1, N, n_embd] and projects with linear.
	Standard Layout = iota
	// ANE keeps it channels-first, [1, n_embd, 1, N], projects with 1×1 conv on
	// [out, in, 1, 1] weights, runs attention per head with the softmax over the key
	// (channel) axis and normalises over axis 1 (after Apple's
	// ml-ane-transformers). The function interface is the same as Standard's.
	ANE
)

func (l Layout) String() string {
	if l == ANE {
		return "ane"
	}
	return "standard"
}

// ParseLayout reads a layout name: "standard" (or "") or "ane".
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "", "standard":
		return Standard, nil
	case "ane":
		return ANE, nil
	}
	return Standard, fmt.Errorf("export: unknown layout %q (standard, ane)", s)
}

// HiddenIn and HiddenOut carry the hidden state between the packages of a chunked export:
// fp16 [1, N, n_embd] (Standard) or [1, n_embd, 1, N] (ANE). Every package but the last
// outputs HiddenOut, which the next one takes as its input HiddenIn.
const (
	HiddenIn  = contract.HiddenStates
	HiddenOut = contract.HiddenStatesOut
)

// FuncSpec says which function to build: its name and chunk size, the exported context,
// the layers it holds (all of them unless the export is chunked), the activation layout
// and where compressed weights come from.
type FuncSpec struct {
	Name string
	N    int // tokens per call
	C    int // exported context length: rows of the KV states
	// Layers [First, End) are built into this function. The function starts from the token
	// embedding when First is 0, from the hidden_states input otherwise; it ends with the LM
	// head (output logits) when End is n_layer, with the hidden_states output otherwise.
	First, End int
	Layout     Layout
	// KVPad rounds the last dimension of the KV states (head_dim) up to a multiple of it,
	// with zero lanes (see Func.stateDim); 0 or 1: the states are head_dim wide.
	KVPad   int
	Weights WeightSet // nil: every weight is fp16
	// Progress, when set, counts the weights the function binds and reports their writing.
	// The functions of one export share it.
	Progress *WeightProgress
}

// Func is one function of the exported program under construction (prefill with N = the
// chunk, or decode with N = 1): the MIL function, the contract's inputs and KV states, and
// the GGUF file its weights come from.
type Func struct {
	F      *mil.Function
	File   *gguf.File
	Config *Config
	FuncSpec

	InputIDs    *mil.Value // int32 [1, N]; nil unless the function embeds (First == 0)
	Hidden      *mil.Value // fp16 hidden_states input; nil when the function embeds
	PositionIDs *mil.Value // int32 [N]: absolute positions of the chunk's tokens
	CausalMask  *mil.Value // fp16 [1, 1, N, C]: 0 where key j ≤ position_ids[i], else −1e4
	CurrentPos  *mil.Value // int32 [1]: where the chunk's K/V rows are written

	kCache, vCache []*mil.Value // fp16 [1, n_head_kv, C, head_dim] per layer of [First, End)

	prog       *mil.Program // for WeightProgress: weights are shared within a program
	err        error
	cos, sin   [2]*mil.Value // rope angles of the chunk's positions, once per function: global, local
	masks      [4]*mil.Value // attention masks, once per function: (global, local) × (Standard, ANE)
	kvBegin    *mil.Value    // [0, 0, current_pos, 0]
	kEnd, vEnd *mil.Value    // [1, n_head_kv, current_pos+N, head_dim]
}

// NewFunc adds function spec.Name to p and declares the contract's inputs and one K and one
// V state per layer of [spec.First, spec.End).
func NewFunc(p *mil.Program, file *gguf.File, cfg *Config, spec FuncSpec) *Func {
	f := p.Function(spec.Name)
	fn := &Func{F: f, File: file, Config: cfg, FuncSpec: spec, prog: p}
	if spec.First < 0 || spec.End > cfg.BlockCount || spec.First > spec.End {
		fn.fail(fmt.Errorf("export: %s: layers [%d, %d) outside the model's %d", file.Path, spec.First, spec.End, cfg.BlockCount))
		return fn
	}
	n, c := spec.N, spec.C
	if spec.First == 0 {
		fn.InputIDs = f.Input(contract.InputIDs, mil.Int32, 1, n)
	} else {
		fn.Hidden = f.Input(HiddenIn, mil.FP16, fn.hiddenShape()...)
	}
	fn.PositionIDs = f.Input(contract.PositionIDs, mil.Int32, n)
	fn.CausalMask = f.Input(contract.CausalMask, mil.FP16, 1, 1, n, c)
	fn.CurrentPos = f.Input(contract.CurrentPos, mil.Int32, 1)
	for l := spec.First; l < spec.End; l++ {
		fn.kCache = append(fn.kCache, f.State(contract.KCache(l), mil.FP16, 1, cfg.HeadCountKV, c, fn.stateDim(cfg.KeyLength)))
		fn.vCache = append(fn.vCache, f.State(contract.VCache(l), mil.FP16, 1, cfg.HeadCountKV, c, fn.stateDim(cfg.ValueLength)))
	}
	return fn
}

// stateDim is the last dimension of a KV state holding head_dim d: d rounded up to a
// multiple of KVPad. The extra lanes stay zero (padLanes writes zeros there, and the
// queries get zero lanes too), so every score q·k and every output p·V is the unpadded
// one: the added products are exact zeros.
func (fn *Func) stateDim(d int) int {
	if fn.KVPad <= 1 {
		return d
	}
	return (d + fn.KVPad - 1) / fn.KVPad * fn.KVPad
}

// padLanes appends zero lanes to the last axis of x, from d to stateDim(d).
func (fn *Func) padLanes(x *mil.Value, d int) *mil.Value {
	dp := fn.stateDim(d)
	if dp == d || x == nil || len(x.Shape()) == 0 {
		return x
	}
	sh := append([]int(nil), x.Shape()...)
	sh[len(sh)-1] = dp - d
	// fill rather than a constant: the zeros cost no bytes in weight.bin.
	return fn.F.Concat(len(sh)-1, x, fn.F.Fill(sh, mil.FloatScalar(mil.FP16, 0)))
}

// unpadLanes keeps the first d lanes of the last axis of x (an attention output over padded
// V rows).
func (fn *Func) unpadLanes(x *mil.Value, d int) *mil.Value {
	if x == nil {
		return nil
	}
	sh := x.Shape()
	if len(sh) == 0 || sh[len(sh)-1] == d {
		return x
	}
	end := append([]int(nil), sh...)
	end[len(end)-1] = d
	return fn.F.SliceByIndex(x, make([]int, len(sh)), end)
}

// hiddenShape is the shape of the hidden state between layers in fn's layout.
func (fn *Func) hiddenShape() []int {
	if fn.Layout == ANE {
		return []int{1, fn.Config.EmbeddingLen, 1, fn.N}
	}
	return []int{1, fn.N, fn.Config.EmbeddingLen}
}

// Embeds reports whether the function starts from the token embedding.
func (fn *Func) Embeds() bool { return fn.First == 0 }

// HasHead reports whether the function ends with the LM head.
func (fn *Func) HasHead() bool { return fn.End == fn.Config.BlockCount }

// Err returns the first error met while building: a missing or misshapen tensor, or a
// graph error from the MIL builder.
func (fn *Func) Err() error {
	if fn.err != nil {
		return fn.err
	}
	return fn.F.Err()
}

func (fn *Func) fail(err error) {
	if fn.err == nil {
		fn.err = err
	}
}

// Has reports whether the GGUF file holds tensor name.
func (fn *Func) Has(name string) bool {
	_, ok := fn.File.Tensor(name)
	return ok
}

// Scalar is an fp16 scalar constant.
func (fn *Func) Scalar(v float64) *mil.Value {
	return fn.F.Const(mil.FloatScalar(mil.FP16, v))
}

// channelAxis is the axis of the hidden state's features: last (Standard) or 1 (ANE).
func (fn *Func) channelAxis() int {
	if fn.Layout == ANE {
		return 1
	}
	return -1
}
