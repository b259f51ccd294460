// Package export turns a GGUF model into a Core ML ML Program package (.mlpackage) that
// follows the lilims program contract: spec 9 (opset CoreML8), fp16 weights and compute,
// two functions sharing every weight —
//
//	prefill (N = the prefill chunk) and decode (N = 1, the default function)
//
// with inputs input_ids int32 [1, N], position_ids int32 [N], causal_mask fp16 [1, 1, N, C]
// (0 where key j ≤ position_ids[i], −1e4 elsewhere), current_pos int32 [1]; one fp16 state
// pair k_cache_<l> [1, n_head_kv, C, head_dim_k], v_cache_<l> [1, n_head_kv, C, head_dim_v]
// per layer; and the output logits fp32 [1, N, n_vocab]. C is the exported context.
//
// The graph of each architecture lives in package arch; this package picks the builder,
// fixes the contract's shapes and metadata, and writes the package atomically. Every GGUF
// tensor is dequantized and stored as fp16, one tensor at a time. The package does not
// quantize weights (the quantize stage does) nor run the result (package runtime).
package export

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Contract is the version of the program contract written to the metadata.
const Contract = "1"

// Defaults of Options.
const (
	DefaultContextLength = 2048 // capped by the model's own context_length
	DefaultPrefillChunk  = 64
)

// Options are the export parameters. Zero fields take the defaults.
type Options struct {
	// ContextLength is C, the rows of the KV states: the longest sequence the package
	// holds. Default min(context_length of the model, 2048).
	ContextLength int
	// PrefillChunk is N of the prefill function. Default 64, at most C.
	PrefillChunk int
}

// resolve fills in the defaults and checks the options against the model.
func (o Options) resolve(cfg *gguf.Config) (Options, error) {
	if o.ContextLength < 0 || o.PrefillChunk < 0 {
		return o, fmt.Errorf("export: negative context length (%d) or prefill chunk (%d)", o.ContextLength, o.PrefillChunk)
	}
	if o.ContextLength == 0 {
		o.ContextLength = min(cfg.ContextLength, DefaultContextLength)
	}
	if o.PrefillChunk == 0 {
		o.PrefillChunk = min(DefaultPrefillChunk, o.ContextLength)
	}
	if o.ContextLength < 1 {
		return o, fmt.Errorf("export: context length must be positive (the model declares %d)", cfg.ContextLength)
	}
	// A package holds C·n_layer·n_head_kv·head_dim fp16 values per cache; 1<<20 positions is
	// far beyond any Core ML deployment and keeps the state shapes sane.
	if o.ContextLength > 1<<20 {
		return o, fmt.Errorf("export: context length %d is too large", o.ContextLength)
	}
	if o.PrefillChunk > o.ContextLength {
		return o, fmt.Errorf("export: prefill chunk %d exceeds the context length %d", o.PrefillChunk, o.ContextLength)
	}
	return o, nil
}

// Program builds the MIL program of f (both functions and the metadata) without writing it.
func Program(f *gguf.File, opts Options) (*mil.Program, Options, error) {
	cfg, err := f.Config()
	if err != nil {
		// An architecture without a typed config may still have a registered builder one day;
		// today every built-in has one, so report the unknown architecture plainly.
		if name := f.Architecture(); name != "" {
			if _, lerr := arch.Lookup(name); lerr != nil {
				return nil, opts, lerr
			}
		}
		return nil, opts, fmt.Errorf("export: %w", err)
	}
	b, err := arch.Lookup(cfg.Arch)
	if err != nil {
		return nil, opts, err
	}
	if opts, err = opts.resolve(cfg); err != nil {
		return nil, opts, err
	}
	p := mil.NewProgram()
	for _, fd := range []struct {
		name string
		n    int
	}{{"prefill", opts.PrefillChunk}, {"decode", 1}} {
		fn := arch.NewFunc(p, fd.name, f, cfg, fd.n, opts.ContextLength)
		logits, err := b.Build(fn)
		if err == nil {
			err = fn.Err()
		}
		if err != nil {
			return nil, opts, fmt.Errorf("export: %s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
		fn.F.Output("logits", fn.F.Cast(logits, mil.FP32))
		if err := fn.F.Err(); err != nil {
			return nil, opts, fmt.Errorf("export: %s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
	}
	p.SetDefaultFunction("decode")
	for k, v := range map[string]string{
		"lilims.contract":       Contract,
		"lilims.arch":           cfg.Arch,
		"lilims.context_length": strconv.Itoa(opts.ContextLength),
		"lilims.prefill_chunk":  strconv.Itoa(opts.PrefillChunk),
		"lilims.vocab_size":     strconv.Itoa(cfg.VocabSize),
		"lilims.layers":         strconv.Itoa(cfg.BlockCount),
		"lilims.source":         filepath.Base(f.Path),
	} {
		p.SetMetadata(k, v)
	}
	return p, opts, nil
}

// Export writes f as a .mlpackage at outPath (replacing any package there; a failure leaves
// nothing behind). ctx cancels the export between tensors.
func Export(ctx context.Context, f *gguf.File, opts Options, outPath string) error {
	p, _, err := Program(f, opts)
	if err != nil {
		return err
	}
	model := &milpb.Model{}
	return mlpackage.Write(outPath, model, func(w *blob.Writer) error {
		m, err := p.Build(cancellable{ctx, w})
		if err != nil {
			return fmt.Errorf("export: %s: %w", filepath.Base(f.Path), err)
		}
		proto.Merge(model, m)
		return nil
	})
}

// cancellable checks ctx before each weight record it writes.
type cancellable struct {
	ctx context.Context
	w   mil.BlobWriter
}

func (c cancellable) Add(dtype blob.DataType, data []byte, elemCount int) (uint64, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, errors.Join(errors.New("export cancelled"), err)
	}
	return c.w.Add(dtype, data, elemCount)
}
