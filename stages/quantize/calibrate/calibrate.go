// Package calibrate measures the activations that reach each weight of a GGUF model while it
// reads a calibration text: per 2-D weight, the second moments of its input features (the
// diagonal of E[x xᵀ]) and, within a memory budget, the whole matrix E[x xᵀ] — the Hessian
// of a linear layer's squared output error that error-aware quantization (scale search,
// weighted k-means, GPTQ) minimises.
//
// It does not restate any architecture's math. Collect exports the model as fp16 with
// package export into a temporary directory and runs that package with the reference
// runtime, observing the inputs of every linear op whose weight the exporter named after a
// GGUF tensor (reference.Options.Observe). This makes the quantize stage import the export
// stage and the runtime as libraries: a deliberate, documented exception to "stages do not
// import each other", because calibration must observe exactly the
// program that is exported, not a second implementation of it. (Package quantize cannot
// import this one — the exporter imports quantize — so the quantize stage takes File as its
// quantize.Calibrator: quantize.Stage{Calibrate: calibrate.File}.)
package calibrate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
	"github.com/lilims/lilims/stages/quantize"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// Options configure a calibration run. Zero fields take the defaults.
type Options struct {
	// Context is the length of the sequences the text is cut into (default 128, capped by
	// the model's context length); each starts with BOS.
	Context int
	// PrefillChunk is the exported prefill chunk (default 64); sequences are cut to a
	// multiple of it so that no padding is ever observed.
	PrefillChunk int
	// MaxTokens bounds the tokens run (default 16384).
	MaxTokens int
	// HessianBytes bounds the memory of the full E[x xᵀ] matrices (8 bytes per entry, one
	// matrix per distinct activation; default 1 GiB). Activations beyond it keep only their
	// diagonal.
	HessianBytes int64
}

func (o Options) withDefaults() Options {
	if o.Context <= 0 {
		o.Context = 128
	}
	if o.PrefillChunk <= 0 {
		o.PrefillChunk = 64
	}
	o.PrefillChunk = min(o.PrefillChunk, o.Context)
	if o.MaxTokens <= 0 {
		o.MaxTokens = 16384
	}
	if o.HessianBytes <= 0 {
		o.HessianBytes = 1 << 30
	}
	return o
}

// accum gathers the statistics of one activation while collecting.
type accum struct {
	st    *quantize.InputStats
	sum   []float64 // Σ x·xᵀ (upper triangle), or Σ x² without a Hessian
	full  bool      // sum is the Dim×Dim matrix
	owner string    // the op whose observations count (see collector.observe)
}

// Tokens tokenizes text as the model's vocabulary does (BOS added where the vocabulary
// adds one, special tokens not parsed).
func Tokens(f *gguf.File, text string) ([]int32, int32, error) {
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, 0, fmt.Errorf("calibrate: %w", err)
	}
	return tok.Encode(text, true, false), tok.BOS(), nil
}

// File tokenizes the calibration text at path and runs Collect on it with default options.
// It is a quantize.Calibrator.
func File(ctx context.Context, f *gguf.File, path string) (*quantize.Activations, error) {
	return FileOptions(ctx, f, path, Options{})
}

// FileOptions is File with explicit options.
func FileOptions(ctx context.Context, f *gguf.File, path string, opts Options) (*quantize.Activations, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	ids, bos, err := Tokens(f, string(raw))
	if err != nil {
		return nil, err
	}
	st, err := Collect(ctx, f, ids, bos, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (calibration text %s)", err, path)
	}
	return st, nil
}

// Collect runs tokens through the fp16 export of f with the reference runtime and returns
// the statistics of every linear layer's input. The tokens are cut into sequences of
// Options.Context tokens (a tail is cut to a multiple of the prefill chunk); the first token
// of each sequence is replaced by bos, as llama-perplexity does with its chunks.
func Collect(ctx context.Context, f *gguf.File, tokens []int32, bos int32, opts Options) (*quantize.Activations, error) {
	opts = opts.withDefaults()
	if cfg, err := arch.ReadConfig(f); err == nil && cfg.ContextLength > 0 {
		opts.Context = min(opts.Context, int(cfg.ContextLength))
		opts.PrefillChunk = min(opts.PrefillChunk, opts.Context)
	}
	tokens = tokens[:min(len(tokens), opts.MaxTokens)]
	if len(tokens) < opts.PrefillChunk {
		return nil, fmt.Errorf("calibrate: %d tokens, need at least one prefill chunk of %d", len(tokens), opts.PrefillChunk)
	}
	dir, err := os.MkdirTemp("", "lilims-calibrate-")
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	defer os.RemoveAll(dir)
	pkg := filepath.Join(dir, "fp16.mlpackage")
	if err := export.Export(ctx, f, export.Options{ContextLength: opts.Context, PrefillChunk: opts.PrefillChunk}, pkg); err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}

	c := &collector{weights: weightNames(f), byValue: map[string]*accum{},
		stats: &quantize.Activations{Inputs: map[string]*quantize.InputStats{}}, budget: opts.HessianBytes}
	sess, err := runtime.OpenReferenceOptions(pkg, reference.Options{Observe: c.observe})
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	defer sess.Close()
	for i := 0; i < len(tokens); i += opts.Context {
		seq := tokens[i:min(len(tokens), i+opts.Context)]
		seq = seq[:len(seq)/opts.PrefillChunk*opts.PrefillChunk]
		if len(seq) == 0 {
			break
		}
		seq = append([]int32{bos}, seq[1:]...)
		sess.Reset()
		if _, err := sess.Prefill(ctx, seq); err != nil {
			return nil, fmt.Errorf("calibrate: %w", err)
		}
		if c.err != nil {
			return nil, fmt.Errorf("calibrate: %w", c.err)
		}
		c.stats.Tokens += len(seq)
	}
	for _, a := range c.byValue {
		a.finish()
	}
	return c.stats, nil
}

// weightNames maps the value names the exporter gives weight consts to GGUF tensor names.
// The MIL builder names a value after its key with every character outside [A-Za-z0-9_]
// replaced by '_' (mil.Function.Weight); a row range of a fused tensor appends "#rowsA_B".
func weightNames(f *gguf.File) map[string]string {
	m := map[string]string{}
	for _, t := range f.Tensors {
		if len(t.Shape) == 2 {
			m[milName(t.Name)] = t.Name
		}
	}
	return m
}

func milName(s string) string {
	b := []byte(s)
	for i, r := range b {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

type collector struct {
	weights map[string]string // value name → GGUF name
	byValue map[string]*accum // activation value name → its statistics
	stats   *quantize.Activations
	budget  int64 // bytes left for Hessians
	err     error
}

// observe accumulates the input of a linear op whose weight is a GGUF tensor. Only the
// prefill function is observed: decode sees the same weights, and every calibration token
// goes through prefill.
func (c *collector) observe(op *reference.ObservedOp) {
	if op.Function != runtime.PrefillFunction || op.Type != "linear" || c.err != nil {
		return
	}
	w := op.Args["weight"]
	name, ok := c.weights[w]
	if !ok {
		// A row part of a fused tensor (attn_qkv) reads the same x as its other parts:
		// count it once, through the part that starts at row 0.
		base, rows, cut := strings.Cut(w, "_rows")
		if !cut || !strings.HasPrefix(rows, "0_") {
			return
		}
		if name, ok = c.weights[base]; !ok {
			return
		}
	}
	x := op.Inputs["x"]
	xn := op.Args["x"]
	if x == nil || len(x.Shape) == 0 {
		return
	}
	dim := x.Shape[len(x.Shape)-1]
	a := c.byValue[xn]
	if a == nil {
		a = &accum{st: &quantize.InputStats{Dim: dim}}
		if need := int64(dim) * int64(dim) * 8; need <= c.budget {
			c.budget -= need
			a.sum, a.full = make([]float64, dim*dim), true
		} else {
			a.sum = make([]float64, dim)
		}
		c.byValue[xn] = a
	}
	if a.st.Dim != dim {
		c.err = fmt.Errorf("op %s: input %s has %d features, earlier %d", op.Name, xn, dim, a.st.Dim)
		return
	}
	if prev, ok := c.stats.Inputs[name]; ok && prev != a.st {
		c.err = fmt.Errorf("weight %s is read by two different activations (%s)", name, xn)
		return
	}
	c.stats.Inputs[name] = a.st
	// Weights that share x (q, k, v) are observed one after another on the same values:
	// the first op to read x in a call is the one that counts it.
	if a.owner == "" {
		a.owner = op.Name
	}
	if a.owner == op.Name {
		a.add(x.Float32s(), dim)
	}
}

// add accumulates the rows of v (row-major, dim wide).
func (a *accum) add(v []float32, dim int) {
	rows := len(v) / dim
	a.st.Rows += rows
	for r := 0; r < rows; r++ {
		x := v[r*dim : (r+1)*dim]
		if !a.full {
			for i, e := range x {
				a.sum[i] += float64(e) * float64(e)
			}
			continue
		}
		// Upper triangle only; finish mirrors it.
		for i, e := range x {
			if e == 0 {
				continue
			}
			row := a.sum[i*dim : (i+1)*dim]
			fe := float64(e)
			for j := i; j < dim; j++ {
				row[j] += fe * float64(x[j])
			}
		}
	}
}

// finish turns the sums into means.
func (a *accum) finish() {
	st := a.st
	n := float64(max(st.Rows, 1))
	d := st.Dim
	st.SecondMoment = make([]float64, d)
	if !a.full {
		for i, s := range a.sum {
			st.SecondMoment[i] = s / n
		}
		return
	}
	h := a.sum
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			h[i*d+j] /= n
			h[j*d+i] = h[i*d+j]
		}
		st.SecondMoment[i] = h[i*d+i]
	}
	st.Hessian = h
}
