// Package arch holds the architecture builders of the exporter: one file per GGUF
// architecture (llama.go, phi2.go, gemma.go, gpt2.go) that reads the model's
// hyper-parameters and emits its forward pass as a MIL function following the lilims
// program contract, and the blocks they share (common.go: function inputs, norms, RoPE,
// attention over the stateful KV cache, LM head).
//
// A builder only describes the graph. Weights are bound by GGUF tensor name and read,
// dequantized to fp16, when the program is serialised. The package does not write the
// .mlpackage (package export does) and knows nothing of runtimes.
package arch

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/lilims/lilims/stages/export/mil"
)

// A Builder emits one function of an architecture's program into fn (its inputs and KV
// states already declared) and returns the fp16 logits [1, N, n_vocab]; the caller casts
// them to fp32 and names the output.
type Builder interface {
	Build(fn *Func) (*mil.Value, error)
}

// BuilderFunc adapts a function to Builder.
type BuilderFunc func(fn *Func) (*mil.Value, error)

// Build implements Builder.
func (b BuilderFunc) Build(fn *Func) (*mil.Value, error) { return b(fn) }

var (
	mu       sync.RWMutex
	builders = map[string]Builder{}
)

// Register makes a builder available for GGUF files whose general.architecture is name.
// Registering a name twice replaces the earlier builder.
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

func init() {
	Register("llama", BuilderFunc(buildLlama))
	Register("phi2", BuilderFunc(buildPhi2))
	Register("gemma", BuilderFunc(buildGemma))
	Register("gpt2", BuilderFunc(buildGPT2))
}
