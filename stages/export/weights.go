package export

import (
	"fmt"
	"slices"
	"sync"

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
	// Transcoded arrays (arch.Compressed.Load) go into buffers that are lent to the blob
	// writer, which writes a weight in the background while the next is transcoded and
	// hands each buffer back through Release, to serve a later weight.
	mu   sync.Mutex
	lent map[*byte][]byte // by first byte: the whole buffer
	free [][]byte
}

// OpenWeights opens the quantize stage's output directory.
func OpenWeights(dir string) (*QuantizedWeights, error) { return OpenWeightsFor(dir, "") }

// OpenWeightsFor opens the quantize stage's output directory for an export of the GGUF at
// model ("": the one the manifest names), from which tensors transcoded from ggml blocks
// are read.
func OpenWeightsFor(dir, model string) (*QuantizedWeights, error) {
	s, err := qweights.OpenSource(dir, model)
	if err != nil {
		return nil, err
	}
	return &QuantizedWeights{dir: dir, set: s}, nil
}

// maxFree bounds the bytes of the transcoding buffers kept for reuse: enough for the arrays
// of the weights a layer repeats, not for one-off giants (embeddings, the output matrix).
const maxFree = 128 << 20

// take is the qweights.Alloc of transcoded weights: the smallest free buffer holding n
// bytes, else a new one, lent until Release takes it back.
func (q *QuantizedWeights) take(n int) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	best := -1
	for i, b := range q.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(q.free[best])) {
			best = i
		}
	}
	var b []byte
	if best >= 0 {
		b = q.free[best][:n]
		q.free = slices.Delete(q.free, best, best+1)
	} else {
		b = make([]byte, n)
	}
	if n > 0 {
		if q.lent == nil {
			q.lent = map[*byte][]byte{}
		}
		q.lent[&b[0]] = b[:cap(b)]
	}
	return b
}

// Release takes back b once it is written: a transcoding buffer for a later weight, or
// pages of the artifact's mapping for the kernel. It may run concurrently with Load.
func (q *QuantizedWeights) Release(b []byte) {
	if cap(b) > 0 {
		q.mu.Lock()
		full, ok := q.lent[&b[:1][0]]
		if ok {
			delete(q.lent, &full[0])
			q.free = append(q.free, full)
			slices.SortFunc(q.free, func(a, b []byte) int { return cap(a) - cap(b) })
			kept := 0
			for i, f := range q.free {
				if kept += cap(f); kept > maxFree { // drop the largest
					clear(q.free[i:])
					q.free = q.free[:i]
					break
				}
			}
		}
		q.mu.Unlock()
		if ok {
			return
		}
	}
	q.set.Release(b)
}

// Close releases the artifact; an export using it must have finished.
func (q *QuantizedWeights) Close() error { return q.set.Close() }

// Manifest returns the artifact's manifest (scheme, bits per weight, per-tensor error).
func (q *QuantizedWeights) Manifest() *qweights.Manifest { return q.set.Manifest() }

// Compressed implements arch.WeightSet.
func (q *QuantizedWeights) Compressed(name string, r0, r1 int) (*arch.Compressed, bool, error) {
	ti, ok := q.set.Info(name)
	if !ok || ti.Encoding == qweights.FP16 {
		return nil, false, nil
	}
	if len(ti.Shape) != 2 {
		return nil, false, fmt.Errorf("%s: shape %v is not [out, in]", q.dir, ti.Shape)
	}
	var t *qweights.Tensor
	if q.set.Derived(name) {
		// Transcoded from the GGUF's blocks when the export writes it: one tensor's arrays
		// in memory at a time, written once.
		t = &qweights.Tensor{Info: ti, LUT: q.set.LUT(name)}
		t.Info.Shape = []int{r1 - r0, ti.Shape[1]}
	} else {
		var err error
		if t, err = q.set.Rows(name, r0, r1); err != nil {
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
		ScaleGroup: info.ScaleGroup, ScaleFactor: t.ScaleFactor,
		GroupSize: info.GroupSize, Palette: t.LUT,
	}
	if q.set.Derived(name) {
		c.Load = func(dst []byte, scales bool) (arch.Arrays, error) {
			t, err := q.set.RowsInto(name, r0, r1, func(a qweights.Array, n int) []byte {
				switch {
				case a == qweights.DataArray && dst != nil && len(dst) == n:
					return dst // its record in weight.bin
				case (a == qweights.ScaleArray || a == qweights.ScaleFactorArray) && info.ScaleGroup > 0 && !scales:
					return nil // made by LoadScales
				}
				return q.take(n)
			})
			if err != nil {
				return arch.Arrays{}, err
			}
			return arch.Arrays{Data: t.Data, Scale: t.Scale, ScaleFactor: t.ScaleFactor, Offset: t.Offset}, nil
		}
		if info.ScaleGroup > 0 {
			c.LoadScales = func() ([]byte, []byte, error) {
				return q.set.ScaleCodes(name, r0, r1, func(_ qweights.Array, n int) []byte { return q.take(n) })
			}
		}
	}
	switch info.Encoding {
	case qweights.Blockwise, qweights.LUTBlockwise:
		c.Encoding = arch.Blockwise
		if info.Encoding == qweights.LUTBlockwise {
			c.Encoding = arch.LUTBlockwise
		}
		if t.Offset != nil || (c.Load != nil && info.Offset != "") {
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
