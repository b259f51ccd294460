// Package export turns a GGUF model into a Core ML ML Program package (.mlpackage) that
// follows the lilims program contract (package contract, docs/export.md): spec 9 (opset
// CoreML8), fp16 compute, two functions sharing every weight —
//
//	prefill (N = the prefill chunk) and decode (N = 1, the default function)
//
// with the contract's inputs (input_ids, position_ids, causal_mask, current_pos), one fp16 KV
// state pair per layer and the output logits fp32 [1, N, n_vocab] (in the ANE layout a
// vocabulary over 65536 comes as logits_0 … logits_{K−1}, contract.LogitsOutputs). The package also carries
// its host file (contract.HostName): the source model's metadata — tokenizer, chat template,
// special tokens, hyper-parameters — so a host runs it without the GGUF.
//
// Weights are fp16 unless the quantize stage compressed them: those are bound through
// constexpr_blockwise_shift_scale or constexpr_lut_to_dense (Options.Weights). The
// activations are laid out as [1, N, n_embd] with linear projections, or channels-first for
// the Neural Engine (Options.Layout); the interface is the same. A chunked export
// (Options.Chunks > 1, or ChunksAuto under a weight ceiling) writes a directory of packages,
// each holding a run of layers and their KV states, chained by a hidden_states tensor (see
// mlpackage.ChunkIndex). Options.KVPad pads the KV states' head_dim with zero lanes for the
// Neural Engine.
//
// The graph of each architecture lives in package arch; this package picks the builder,
// fixes the contract's shapes and metadata, and writes the packages atomically. It does not
// quantize weights (the quantize stage does) nor run the result (package runtime).
package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Defaults and limits of Options.
const (
	DefaultContextLength = 2048 // capped by the model's own context_length
	DefaultPrefillChunk  = 64
	MaxContextLength     = 1 << 20
)

// KV state padding (Options.KVPad).
const (
	KVPadAuto = 0
	NoKVPad   = -1
	// ANEStateAlign is the multiple the Neural Engine wants a state's last dimension to be:
	// a stateful model whose state width is not one runs on CPU and GPU but fails on the ANE
	// (coremltools issue 2631: width 270 fails, 256 works; Phi-2's head_dim is 80).
	ANEStateAlign = 32
	maxKVPad      = 256
)

// Options are the export parameters. Zero fields take the defaults.
type Options struct {
	// ContextLength is C, the rows of the KV states: the longest sequence the package
	// holds. Default min(context_length of the model, 2048).
	ContextLength int
	// PrefillChunk is N of the prefill function. Default 64, at most C.
	PrefillChunk int
	// Layout is the activation layout: arch.Standard (default) or arch.ANE.
	Layout arch.Layout
	// Chunks splits the layers into that many packages (0 and 1: one package), or with
	// ChunksAuto into as few as keep each package's weights under MaxChunkBytes.
	Chunks int
	// MaxChunkBytes is the ceiling of ChunksAuto. Default DefaultMaxChunkBytes.
	MaxChunkBytes int64
	// KVPad rounds the KV states' last dimension (head_dim) up to a multiple of KVPad with
	// zero lanes, which leaves every logit unchanged. KVPadAuto (0, the default) pads to
	// ANEStateAlign in the ANE layout and not at all in the Standard one; NoKVPad (or 1)
	// never pads. See docs/export.md for the evidence behind the default.
	KVPad int
	// Weights supplies compressed weights; nil exports every weight as fp16.
	Weights arch.WeightSet
	// Progress, when set, is called by Export after each model weight (a GGUF tensor, or
	// the row range of one a chunk holds) is written: done of total, total fixed before
	// the first call.
	Progress func(done, total int)
}

// resolve fills in the defaults and checks the options against the model.
func (o Options) resolve(cfg *arch.Config) (Options, error) {
	if o.ContextLength < 0 || o.PrefillChunk < 0 || (o.Chunks < 0 && o.Chunks != ChunksAuto) || o.MaxChunkBytes < 0 {
		return o, fmt.Errorf("export: negative context length (%d), prefill chunk (%d) or chunk count (%d)", o.ContextLength, o.PrefillChunk, o.Chunks)
	}
	if o.ContextLength == 0 {
		o.ContextLength = min(cfg.ContextLength, DefaultContextLength)
	}
	if o.PrefillChunk == 0 {
		o.PrefillChunk = min(DefaultPrefillChunk, o.ContextLength)
	}
	if o.Chunks == 0 {
		o.Chunks = 1
	}
	if o.MaxChunkBytes == 0 {
		o.MaxChunkBytes = DefaultMaxChunkBytes
	}
	switch {
	case o.KVPad == KVPadAuto && o.Layout == arch.ANE:
		o.KVPad = ANEStateAlign
	case o.KVPad == KVPadAuto || o.KVPad == NoKVPad:
		o.KVPad = 1
	case o.KVPad < 1 || o.KVPad > maxKVPad:
		return o, fmt.Errorf("export: kv_pad %d out of range [1, %d] (0: auto, -1: none)", o.KVPad, maxKVPad)
	}
	if o.ContextLength < 1 {
		return o, fmt.Errorf("export: context length must be positive (the model declares %d)", cfg.ContextLength)
	}
	// A package holds C·n_layer·n_head_kv·head_dim fp16 values per cache; 1<<20 positions is
	// far beyond any Core ML deployment and keeps the state shapes sane.
	if o.ContextLength > MaxContextLength {
		return o, fmt.Errorf("export: context length %d is too large", o.ContextLength)
	}
	if o.PrefillChunk > o.ContextLength {
		return o, fmt.Errorf("export: prefill chunk %d exceeds the context length %d", o.PrefillChunk, o.ContextLength)
	}
	if o.Chunks > cfg.BlockCount {
		return o, fmt.Errorf("export: %d chunks for %d layers; each chunk needs a layer", o.Chunks, cfg.BlockCount)
	}
	if o.Layout != arch.Standard && o.Layout != arch.ANE {
		return o, fmt.Errorf("export: unknown layout %d", o.Layout)
	}
	return o, nil
}

// Program builds the MIL program of f (both functions and the metadata) without writing it.
// It is for a one-package export; see Programs for chunks.
func Program(f *gguf.File, opts Options) (*mil.Program, Options, error) {
	ps, opts, err := Programs(f, opts)
	if err != nil {
		return nil, opts, err
	}
	if len(ps) != 1 {
		return nil, opts, fmt.Errorf("export: %d chunks make %d programs; use Programs", opts.Chunks, len(ps))
	}
	return ps[0], opts, nil
}

// Programs builds one MIL program per chunk: chunk i holds layers [i·L/n, (i+1)·L/n) of the
// model's L (or the runs ChunksAuto chooses, see ChunkLayers), the first also the embedding,
// the last the LM head; the returned options' Chunks is their number. The builder and the
// hyper-parameters come from arch.Resolve: a built-in architecture, or one a plugin
// registered with arch.Register (with its own configuration reader).
func Programs(f *gguf.File, opts Options) ([]*mil.Program, Options, error) {
	progs, _, opts, err := programs(f, opts, nil)
	return progs, opts, err
}

// programs is Programs, also returning the layer range of each program and counting the
// weights bound into progress (may be nil).
func programs(f *gguf.File, opts Options, progress *arch.WeightProgress) ([]*mil.Program, []LayerRange, Options, error) {
	cfg, b, err := arch.Resolve(f)
	if err != nil {
		return nil, nil, opts, err
	}
	if opts, err = opts.resolve(cfg); err != nil {
		return nil, nil, opts, err
	}
	ranges, err := opts.layerRanges(f, cfg)
	if err != nil {
		return nil, nil, opts, err
	}
	opts.Chunks = len(ranges)
	var progs []*mil.Program
	for i, r := range ranges {
		p, err := program(f, cfg, b, opts, r.First, r.End, progress)
		if err != nil {
			return nil, nil, opts, err
		}
		p.SetMetadata(contract.KeyLayerRange, fmt.Sprintf("%d-%d", r.First, r.End))
		if len(ranges) > 1 {
			p.SetMetadata(contract.KeyChunk, strconv.Itoa(i))
			p.SetMetadata(contract.KeyChunks, strconv.Itoa(len(ranges)))
		}
		progs = append(progs, p)
	}
	return progs, ranges, opts, nil
}

// program builds the prefill and decode functions over layers [first, end).
func program(f *gguf.File, cfg *arch.Config, b arch.Builder, opts Options, first, end int, progress *arch.WeightProgress) (*mil.Program, error) {
	p := mil.NewProgram()
	for _, fd := range []struct {
		name string
		n    int
	}{{contract.Prefill, opts.PrefillChunk}, {contract.Decode, 1}} {
		fn := arch.NewFunc(p, f, cfg, arch.FuncSpec{
			Name: fd.name, N: fd.n, C: opts.ContextLength, First: first, End: end,
			Layout: opts.Layout, KVPad: opts.KVPad, Weights: opts.Weights, Progress: progress,
		})
		out, err := arch.Build(b, fn)
		if err != nil {
			return nil, fmt.Errorf("export: %s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
		if fn.HasHead() {
			if err := outputLogits(fn.F, out, opts.Layout, cfg.VocabSize); err != nil {
				return nil, fmt.Errorf("export: %s: %s: %w", filepath.Base(f.Path), fd.name, err)
			}
		} else {
			fn.F.Output(contract.HiddenStatesOut, out)
		}
		if err := fn.F.Err(); err != nil {
			return nil, fmt.Errorf("export: %s: %s: %w", filepath.Base(f.Path), fd.name, err)
		}
	}
	p.SetDefaultFunction(contract.Decode)
	for k, v := range map[string]string{
		contract.KeyVersion:       strconv.Itoa(contract.Version),
		contract.KeyArch:          cfg.Arch,
		contract.KeyContextLength: strconv.Itoa(opts.ContextLength),
		contract.KeyPrefillChunk:  strconv.Itoa(opts.PrefillChunk),
		contract.KeyVocabSize:     strconv.Itoa(cfg.VocabSize),
		contract.KeyLayers:        strconv.Itoa(cfg.BlockCount),
		contract.KeyLayout:        opts.Layout.String(),
		contract.KeySource:        filepath.Base(f.Path),
		contract.KeyHParams:       hparams(cfg),
	} {
		p.SetMetadata(k, v)
	}
	return p, nil
}

// outputLogits declares the logits outputs of the contract (contract.LogitsOutputs) from
// the head's fp16 logits: [1, N, n_vocab] as the one output logits, or the parts stacked
// [K, N, R] (arch.Func.LMHead) cut into logits_<k> [1, N, rows of part k].
func outputLogits(f *mil.Function, out *mil.Value, layout arch.Layout, v int) error {
	names := contract.LogitsOutputs(layout.String(), v)
	if len(names) == 1 {
		f.Output(contract.Logits, f.Cast(out, mil.FP32))
		return nil
	}
	b, sh := contract.VocabParts(v), out.Shape()
	if len(sh) != 3 || sh[0] != len(names) || sh[2] != b[1] {
		return fmt.Errorf("the LM head gives logits %v, want %d parts of %d stacked (n_vocab %d)", sh, len(names), b[1], v)
	}
	for k, name := range names {
		part := f.SliceByIndex(out, []int{k, 0, 0}, []int{k + 1, sh[1], b[k+1] - b[k]})
		f.Output(name, f.Cast(part, mil.FP32))
	}
	return nil
}

// Export writes f at outPath, replacing what is there; a failure leaves nothing behind. With
// one chunk outPath is a .mlpackage; with more it is a directory holding chunk_<i>.mlpackage
// and mlpackage.ChunkIndexFile. ctx cancels the export between tensors; opts.Progress hears of each
// weight written.
func Export(ctx context.Context, f *gguf.File, opts Options, outPath string) error {
	var progress *arch.WeightProgress
	if opts.Progress != nil {
		progress = arch.NewWeightProgress(opts.Progress)
	}
	progs, ranges, _, err := programs(f, opts, progress)
	if err != nil {
		return err
	}
	host, err := hostItem(f)
	if err != nil {
		return err
	}
	if len(progs) == 1 {
		return writePackage(ctx, f, opts.Weights, progs[0], outPath, host)
	}
	outPath = filepath.Clean(outPath)
	tmp, err := os.MkdirTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".tmp-")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left to remove
	idx := mlpackage.ChunkIndex{Format: mlpackage.ChunkFormat, Version: mlpackage.ChunkVersion, Layers: ranges[len(ranges)-1].End}
	for i, p := range progs {
		first, end := ranges[i].First, ranges[i].End
		name := fmt.Sprintf("chunk_%d.mlpackage", i)
		var items []mlpackage.Item
		if i == 0 { // the first chunk carries the host file (contract.HostName)
			items = append(items, host)
		}
		if err := writePackage(ctx, f, opts.Weights, p, filepath.Join(tmp, name), items...); err != nil {
			return err
		}
		idx.Chunks = append(idx.Chunks, mlpackage.Chunk{Path: name, First: first, End: end})
	}
	if err := mlpackage.WriteChunkIndex(tmp, &idx); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.RemoveAll(outPath); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp, outPath); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func writePackage(ctx context.Context, f *gguf.File, weights arch.WeightSet, p *mil.Program, outPath string, items ...mlpackage.Item) error {
	model := &milpb.Model{}
	release := []releaser{f}
	if r, ok := weights.(releaser); ok {
		release = append(release, r)
	}
	return mlpackage.Write(outPath, model, func(w *blob.Writer) error {
		// Weights stream from the mapped GGUF or quantized weights into weight.bin once
		// each: dropping their pages once written keeps the resident set bounded by the
		// largest tensors rather than the model, and a transcoded weight's buffer serves
		// another. Data built in memory is left alone.
		w.OnWritten = func(data []byte) {
			for _, r := range release {
				r.Release(data)
			}
		}
		m, err := p.Build(cancellable{ctx, w})
		if err != nil {
			return fmt.Errorf("export: %s: %w", filepath.Base(f.Path), err)
		}
		proto.Merge(model, m)
		return nil
	}, items...)
}

// hparams is the one-line hyper-parameter summary of the metadata (contract.KeyHParams).
func hparams(cfg *arch.Config) string {
	return fmt.Sprintf("n_vocab %d, n_embd %d, n_layer %d, n_ff %d, n_head %d, n_head_kv %d, head_dim %d/%d, n_ctx_train %d",
		cfg.VocabSize, cfg.EmbeddingLen, cfg.BlockCount, cfg.FeedForward, cfg.HeadCount, cfg.HeadCountKV,
		cfg.KeyLength, cfg.ValueLength, cfg.ContextLength)
}

// hostItem is the package's host file (contract.HostName): a GGUF holding every metadata
// key of f — tokenizer.* (vocabulary, merges, special ids, chat template), general.* and the
// architecture's hyper-parameters — and no tensors, plus the contract version.
func hostItem(f *gguf.File) (mlpackage.Item, error) {
	b := gguf.NewBuilder()
	for _, kv := range f.KVs {
		// Arrays of arrays hold nothing a host reads (and the builder writes flat arrays).
		if kv.Value.Type == gguf.TypeArray && kv.Value.Elem == gguf.TypeArray {
			continue
		}
		b.Set(kv.Key, kv.Value.V)
	}
	b.Set(contract.KeyVersion, uint32(contract.Version))
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		return mlpackage.Item{}, fmt.Errorf("export: %s: host file: %w", filepath.Base(f.Path), err)
	}
	return mlpackage.Item{Author: contract.HostAuthor, Name: contract.HostName, Description: contract.HostDescription, Data: buf.Bytes()}, nil
}

// releaser takes back what it lent once it is written: pages of a mapped file go back to
// the kernel (gguf.File, QuantizedWeights), a transcoding buffer to QuantizedWeights; each
// ignores bytes that are not its own. Release may be called from the blob writer's
// goroutine.
type releaser interface{ Release(b []byte) }

// cancellable checks ctx before each weight record it writes.
type cancellable struct {
	ctx context.Context
	w   mil.BlobWriter
}

func (c cancellable) Add(dtype blob.DataType, data []byte, elemCount int) (uint64, error) {
	if err := c.cancelled(); err != nil {
		return 0, err
	}
	return c.w.Add(dtype, data, elemCount)
}

// Reserve passes a reservation through to the blob writer (ErrNoReserve if it has none).
func (c cancellable) Reserve(dtype blob.DataType, elemCount int) (uint64, []byte, func() error, error) {
	if err := c.cancelled(); err != nil {
		return 0, nil, nil, err
	}
	r, ok := c.w.(mil.BlobReserver)
	if !ok {
		return 0, nil, nil, blob.ErrNoReserve
	}
	return reserve(r, dtype, elemCount)
}

// cancelled is the error of a record asked for after ctx ended.
func (c cancellable) cancelled() error {
	if err := c.ctx.Err(); err != nil {
		return errors.Join(errors.New("export cancelled"), err)
	}
	return nil
}

// reserve is how cancellable reserves a record: a seam for tests, which compare the files
// written with and without reservations.
var reserve = func(r mil.BlobReserver, dtype blob.DataType, elemCount int) (uint64, []byte, func() error, error) {
	return r.Reserve(dtype, elemCount)
}
