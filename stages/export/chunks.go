package export

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Chunking by size (Options.Chunks = ChunksAuto).
const (
	// ChunksAuto splits the layers into as few packages as keep each package's weights at
	// most Options.MaxChunkBytes.
	ChunksAuto = -1
	// DefaultMaxChunkBytes is the default ceiling of one package's weights, 1 GiB. Core ML's
	// ANE compiler is reported to fail on single programs somewhere between 1.5 and 3.4 GB of
	// weights (docs/export.md, "Chunks by size"); 1 GiB stays clear of the lowest report.
	DefaultMaxChunkBytes = 1 << 30
)

// LayerRange is the layers [First, End) of one package of an export.
type LayerRange struct{ First, End int }

// ChunkLayers returns the layer ranges of the packages Export writes for f with opts: one
// range per package, in order.
func ChunkLayers(f *gguf.File, opts Options) ([]LayerRange, error) {
	cfg, _, err := arch.Resolve(f)
	if err != nil {
		return nil, err
	}
	if opts, err = opts.resolve(cfg); err != nil {
		return nil, err
	}
	return opts.layerRanges(f, cfg)
}

// layerRanges splits cfg's layers as the resolved options say: Chunks equal runs of layers,
// or for ChunksAuto the fewest runs whose weights stay under MaxChunkBytes, filled greedily
// from the first layer (the embedding counts in the first package, the LM head in the
// last). A single layer heavier than the ceiling gets a package of its own: layers are not
// split.
func (o Options) layerRanges(f *gguf.File, cfg *arch.Config) ([]LayerRange, error) {
	n := cfg.BlockCount
	if o.Chunks != ChunksAuto {
		r := make([]LayerRange, o.Chunks)
		for i := range r {
			r[i] = LayerRange{i * n / o.Chunks, (i + 1) * n / o.Chunks}
		}
		return r, nil
	}
	layers, embed, head, err := weightBytes(f, n, o.Weights)
	if err != nil {
		return nil, err
	}
	var r []LayerRange
	first, cur := 0, embed
	for l := 0; l < n; l++ {
		cost := layers[l]
		if l == n-1 {
			cost += head
		}
		if l > first && cur+cost > o.MaxChunkBytes {
			r = append(r, LayerRange{first, l})
			first, cur = l, 0
		}
		cur += cost
	}
	return append(r, LayerRange{first, n}), nil
}

// weightBytes is what the weights of each layer, of the embedding and of the LM head take in
// weight.bin: a compressed tensor its data, scales, offsets and palettes, any other one fp16.
// A tied head counts the embedding table again (the last package binds its own copy);
// tensors of no layer other than the head's go with the embedding.
func weightBytes(f *gguf.File, layers int, w arch.WeightSet) (perLayer []int64, embed, head int64, err error) {
	perLayer = make([]int64, layers)
	size := func(t *gguf.Tensor) (int64, error) {
		if w != nil && len(t.Shape) == 2 {
			c, ok, err := w.Compressed(t.Name, 0, int(t.Shape[1]))
			if err != nil {
				return 0, fmt.Errorf("export: %s: %w", t.Name, err)
			}
			if ok {
				return c.Bytes(), nil
			}
		}
		return 2 * t.Elements(), nil
	}
	tied, table := true, int64(0)
	for _, t := range f.Tensors {
		b, err := size(t)
		if err != nil {
			return nil, 0, 0, err
		}
		switch {
		case strings.HasPrefix(t.Name, "blk."):
			l, err := strconv.Atoi(strings.SplitN(t.Name, ".", 3)[1])
			if err != nil || l < 0 || l >= layers {
				return nil, 0, 0, fmt.Errorf("export: %s: tensor %q names no layer of the model's %d", f.Path, t.Name, layers)
			}
			perLayer[l] += b
		case strings.HasPrefix(t.Name, "output"): // output.weight, output.bias, output_norm.*
			head += b
			tied = tied && t.Name != "output.weight"
		default:
			embed += b
			if t.Name == "token_embd.weight" {
				table = b
			}
		}
	}
	if tied {
		head += table
	}
	return perLayer, embed, head, nil
}
