package export

import (
	"fmt"

	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// QuantizedWeights is a quantize stage artifact (weights.safetensors + manifest.json) opened
// as the exporter's arch.WeightSet. Tensors the manifest lists as fp16 are not held: the
// exporter reads those from the GGUF.
type QuantizedWeights struct {
	dir string
	set *qweights.Set
}

// OpenWeights opens the quantize stage's output directory.
func OpenWeights(dir string) (*QuantizedWeights, error) {
	s, err := qweights.Open(dir)
	if err != nil {
		return nil, err
	}
	return &QuantizedWeights{dir: dir, set: s}, nil
}

// Release hands pages of the artifact's mapping back to the kernel once written.
func (q *QuantizedWeights) Release(b []byte) { q.set.Release(b) }

// Close releases the artifact; an export using it must have finished.
func (q *QuantizedWeights) Close() error { return q.set.Close() }

// Manifest returns the artifact's manifest (scheme, bits per weight, per-tensor error).
func (q *QuantizedWeights) Manifest() *qweights.Manifest { return q.set.Manifest() }

// Compressed implements arch.WeightSet.
func (q *QuantizedWeights) Compressed(name string, r0, r1 int) (*arch.Compressed, bool, error) {
	t, ok := q.set.Lookup(name)
	if !ok || t.Info.Encoding == qweights.FP16 {
		return nil, false, nil
	}
	if len(t.Info.Shape) != 2 {
		return nil, false, fmt.Errorf("%s: shape %v is not [out, in]", q.dir, t.Info.Shape)
	}
	if r0 != 0 || r1 != t.Info.Shape[0] {
		var err error
		if t, err = t.Rows(r0, r1); err != nil {
			return nil, false, err
		}
	}
	info := t.Info
	dt, ok := mil.ParseDType(info.DType)
	if !ok {
		return nil, false, fmt.Errorf("%s: dtype %q", q.dir, info.DType)
	}
	c := &arch.Compressed{
		Out: info.Shape[0], In: info.Shape[1], DType: dt, Data: t.Data,
		BlockSize: info.BlockSize, Scale: t.Scale, Offset: t.Offset,
		GroupSize: info.GroupSize, Palette: t.LUT,
	}
	switch info.Encoding {
	case qweights.Blockwise:
		c.Encoding = arch.Blockwise
		if t.Offset != nil {
			if c.OffsetDType, ok = mil.ParseDType(info.Offset); !ok {
				return nil, false, fmt.Errorf("%s: offset dtype %q", q.dir, info.Offset)
			}
		}
	case qweights.LUT:
		c.Encoding = arch.LUT
	default:
		return nil, false, fmt.Errorf("%s: unknown encoding %q", q.dir, info.Encoding)
	}
	return c, true, nil
}
