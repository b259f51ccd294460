// Package arch holds lilims' knowledge of model architectures: the one reader of their
// typed hyper-parameters (config.go, ReadConfig), and one file per GGUF architecture
// (llama.go, qwen2.go, phi3.go, …) that registers it — its traits and its forward pass,
// emitted into a MIL function following the lilims program contract — exactly as a plugin
// registers one. The blocks they share: function inputs and states (func.go), weight
// binding, fp16 or compressed (weights.go), projections and norms (layers.go), QKV and
// feed-forward blocks (blocks.go), RoPE (rope.go) and attention over the stateful KV cache
// (attention.go).
//
// A builder only describes the graph, in three parts — embedding, one transformer block,
// LM head — so that a chunked export can place blocks in different packages. Weights are
// bound by GGUF tensor name and read when the program is serialised. The same builder
// serves both activation layouts (Standard and ANE): the shared blocks hide the layout. The
// package does not write the .mlpackage (package export does) and knows nothing of runtimes.
package arch

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// A Builder emits an architecture's forward pass into a Func, in three parts. Each returns
// nil after recording an error in fn (see Func.Err).
type Builder interface {
	// Embed returns the hidden state of the input tokens.
	Embed(fn *Func) *mil.Value
	// Block applies transformer layer l to the hidden state x.
	Block(fn *Func, l int, x *mil.Value) *mil.Value
	// Head returns the fp16 logits [1, N, n_vocab] of the final hidden state x — through
	// Func.LMHead, which in the ANE layout returns a vocabulary over 65536 as its parts
	// stacked [K, N, R]; what follows LMHead must be elementwise (a soft-cap).
	Head(fn *Func, x *mil.Value) *mil.Value
}

// Arch is an architecture: its traits and a ConfigReader over them, and a Builder made of
// three functions. Built-in architectures and plugins register one each (see llama.go).
type Arch struct {
	Traits    Traits
	EmbedFunc func(fn *Func) *mil.Value
	BlockFunc func(fn *Func, l int, x *mil.Value) *mil.Value
	HeadFunc  func(fn *Func, x *mil.Value) *mil.Value
	// ConfigFunc, when set, reads the architecture's own keys into c after the standard
	// ones (Arch.Config) and checks them; an error names the key.
	ConfigFunc func(f *gguf.File, c *Config) error
}

// Embed implements Builder.
func (a Arch) Embed(fn *Func) *mil.Value { return a.EmbedFunc(fn) }

// Block implements Builder.
func (a Arch) Block(fn *Func, l int, x *mil.Value) *mil.Value { return a.BlockFunc(fn, l, x) }

// Head implements Builder.
func (a Arch) Head(fn *Func, x *mil.Value) *mil.Value { return a.HeadFunc(fn, x) }

// Build runs b over fn's layers: the embedding when fn embeds (else the hidden_states
// input), blocks First to End, and the LM head when fn has it. It returns the logits, or
// the hidden state for a function that stops before the head.
func Build(b Builder, fn *Func) (*mil.Value, error) {
	if err := fn.Err(); err != nil {
		return nil, err
	}
	x := fn.Hidden
	if fn.Embeds() {
		x = b.Embed(fn)
	}
	for l := fn.First; l < fn.End && fn.Err() == nil; l++ {
		x = b.Block(fn, l, x)
	}
	if fn.HasHead() && fn.Err() == nil {
		x = b.Head(fn, x)
	}
	if err := fn.Err(); err != nil {
		return nil, err
	}
	if x == nil {
		return nil, fmt.Errorf("export: %s: architecture %s built no output", fn.File.Path, fn.Config.Arch)
	}
	return x, nil
}

var (
	mu       sync.RWMutex
	builders = map[string]Builder{}
)

// Register makes a builder available for GGUF files whose general.architecture is name.
// Registering a name twice replaces the earlier builder. The builder must also be a
// ConfigReader (an Arch is), which ReadConfig uses for the model's hyper-parameters.
func Register(name string, b Builder) {
	mu.Lock()
	defer mu.Unlock()
	builders[name] = b
}

// Lookup returns the builder of an architecture. For an unknown one the error lists the
// supported architectures and points to architecture plugins.
func Lookup(name string) (Builder, error) {
	mu.RLock()
	defer mu.RUnlock()
	if b, ok := builders[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("export: architecture %q is not built in (supported: %s); "+
		"an architecture plugin can export it: add a stage with `uses: plugin:PATH` to the pipeline",
		name, strings.Join(supportedLocked(), ", "))
}

// Supported lists the registered architectures, sorted.
func Supported() []string {
	mu.RLock()
	defer mu.RUnlock()
	return supportedLocked()
}

func supportedLocked() []string {
	names := make([]string, 0, len(builders))
	for n := range builders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
