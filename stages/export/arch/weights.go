package arch

import (
	"encoding/binary"
	"fmt"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// Encodings of a Compressed weight.
const (
	Blockwise = "blockwise" // constexpr_blockwise_shift_scale
	LUT       = "lut"       // constexpr_lut_to_dense
	// LUTBlockwise is constexpr_lut_to_dense of integer codes feeding the data of
	// constexpr_blockwise_shift_scale: n-bit codes with block-wise scales and offsets.
	LUTBlockwise = "lut+blockwise"
)

// Compressed is a 2-D weight [Out, In] (PyTorch order) that the quantize stage compressed,
// in the terms of the iOS18 constexpr ops that decompress it.
type Compressed struct {
	Encoding string // Blockwise, LUT or LUTBlockwise
	Out, In  int    // logical shape
	// Blockwise: data Int4, UInt4, Int8 or UInt8; LUT and LUTBlockwise: indices
	// UInt1, UInt2, UInt3, UInt4, UInt6 or UInt8.
	DType mil.DType
	// Data is row-major [Out, In], sub-byte values packed LSB-first as in a MIL blob.
	Data []byte

	// Blockwise: Scale is fp16 [Out, In/BlockSize]; Offset, same shape and of OffsetDType
	// (the data's dtype or FP16), is nil for symmetric quantization.
	BlockSize   int
	Scale       []byte
	Offset      []byte
	OffsetDType mil.DType
	// ScaleGroup > 0: the scales are factored (a ggml K-quant's): Scale holds int8 codes
	// [Out, In/BlockSize] and ScaleFactor the fp16 factor of each ScaleGroup of them along
	// In, [Out, In/BlockSize/ScaleGroup]; a constexpr_blockwise_shift_scale of the codes
	// makes the fp16 scales (coremltools' iOS18 compression.py materializes a scale made
	// by a constexpr op).
	ScaleGroup  int
	ScaleFactor []byte

	// LUT: Palette is fp16 [Out/GroupSize, 1, 2^bits, 1]: one palette per GroupSize rows.
	// LUTBlockwise: Palette is the int8 codes [2^bits], one table for the tensor, or with
	// GroupSize > 0 fp16 palettes as for LUT; BlockSize, Scale and Offset (FP16 only) are
	// as for Blockwise.
	GroupSize int
	Palette   []byte

	// Load, when set, makes a Blockwise weight's Data, Scale and Offset (then nil) when the
	// export writes them, for arrays computed from other bytes (a transcoded GGUF tensor)
	// rather than mapped: one weight's arrays are in memory at a time. The data it returns
	// may be reused by the WeightSet's next Load (one buffer for every weight), so it is
	// written at once or loaded again; scale and offset stay valid. A non-nil dst (the
	// data's record in weight.bin, of the data's size) is where the data goes: Load then
	// returns it as data. With ScaleGroup, scales asks for the factored scales too (false:
	// LoadScales made them already).
	Load func(dst []byte, scales bool) (Arrays, error)
	// LoadScales, with Load and ScaleGroup, makes the factored scales alone: a blockwise
	// weight's scale op is written before its own (a LUT weight's after its data, so Load
	// makes them in the same pass).
	LoadScales func() (codes, factors []byte, err error)
}

// Arrays are the arrays Compressed.Load makes: Data, Scale, ScaleFactor (factored scales
// only) and Offset (nil when symmetric).
type Arrays struct{ Data, Scale, ScaleFactor, Offset []byte }

// WeightSet supplies the compressed weights of an export. Tensors it does not hold stay fp16.
type WeightSet interface {
	// Compressed returns rows [r0, r1) of the 2-D GGUF tensor name, or ok false when the
	// tensor is not compressed. A row range that cuts a block or palette group is an error.
	Compressed(name string, r0, r1 int) (w *Compressed, ok bool, err error)
}

// check verifies that w's byte lengths match its shape, so a bad quantize artifact fails
// at export with the tensor's name rather than in a runtime.
func (w *Compressed) check() error {
	if w.Out < 1 || w.In < 1 {
		return fmt.Errorf("shape [%d %d]", w.Out, w.In)
	}
	if w.Load != nil {
		if w.Encoding != Blockwise && w.Encoding != LUTBlockwise {
			return fmt.Errorf("arrays loaded on demand for encoding %q (blockwise or lut+blockwise only)", w.Encoding)
		}
		// The lengths are checked when the arrays are loaded (lazy); the rest now, with the
		// lengths the shape implies (no arrays of the weight's size are allocated for it).
		data, scale, factor, offset := w.loadedSizes()
		return w.checkSizes(data, scale, factor, offset, w.OffsetDType != mil.InvalidDType)
	}
	return w.checkSizes(len(w.Data), len(w.Scale), len(w.ScaleFactor), len(w.Offset), w.Offset != nil)
}

// loadedSizes are the byte lengths of the arrays of a weight with Load, as its shape,
// dtypes and ScaleGroup imply them (factor 0 and offset 0: none).
func (w *Compressed) loadedSizes() (data, scale, factor, offset int) {
	n := w.Out * (w.In / max(1, w.BlockSize)) // scales
	data, scale = w.DType.ByteSize(w.Out*w.In), 2*n
	if w.ScaleGroup > 0 {
		scale, factor = n, 2*(n/w.ScaleGroup)
	}
	if w.OffsetDType != mil.InvalidDType {
		offset = w.OffsetDType.ByteSize(n)
	}
	return data, scale, factor, offset
}

// Bytes is what w's arrays take in weight.bin, known before they are loaded.
func (w *Compressed) Bytes() int64 {
	if w.Load == nil {
		return int64(len(w.Data) + len(w.Scale) + len(w.ScaleFactor) + len(w.Offset) + len(w.Palette))
	}
	data, scale, factor, offset := w.loadedSizes()
	return int64(data + scale + factor + offset + len(w.Palette))
}

// checkSizes is check for arrays of the given byte lengths (offset: whether there is one).
func (w *Compressed) checkSizes(data, scale, factor, offset int, hasOffset bool) error {
	if want := w.DType.ByteSize(w.Out * w.In); data != want {
		return fmt.Errorf("%s data of %d bytes, shape [%d %d] needs %d", w.DType, data, w.Out, w.In, want)
	}
	switch w.Encoding {
	case Blockwise, LUTBlockwise:
		if w.Encoding == LUTBlockwise {
			switch w.DType {
			case mil.UInt1, mil.UInt2, mil.UInt3, mil.UInt4, mil.UInt6, mil.UInt8:
			default:
				return fmt.Errorf("lut+blockwise indices dtype %s (uint1, uint2, uint3, uint4, uint6, uint8)", w.DType)
			}
			if w.GroupSize > 0 {
				if w.Out%w.GroupSize != 0 {
					return fmt.Errorf("palette group of %d rows does not divide %d rows", w.GroupSize, w.Out)
				}
				if want := 2 * (w.Out / w.GroupSize) << w.DType.Bits(); len(w.Palette) != want {
					return fmt.Errorf("palettes of %d bytes, want %d", len(w.Palette), want)
				}
			} else if want := 1 << w.DType.Bits(); len(w.Palette) != want {
				return fmt.Errorf("code table of %d bytes, want %d int8 codes", len(w.Palette), want)
			}
			if w.Offset != nil && w.OffsetDType != mil.FP16 {
				return fmt.Errorf("offset dtype %s, want fp16", w.OffsetDType)
			}
		} else {
			switch w.DType {
			case mil.Int4, mil.UInt4, mil.Int8, mil.UInt8:
			default:
				return fmt.Errorf("blockwise data dtype %s (int4, uint4, int8, uint8)", w.DType)
			}
		}
		if w.BlockSize < 1 || w.In%w.BlockSize != 0 {
			return fmt.Errorf("block size %d does not divide the input dimension %d", w.BlockSize, w.In)
		}
		n := w.Out * (w.In / w.BlockSize)
		switch g := w.ScaleGroup; {
		case g > 0:
			if w.In/w.BlockSize%g != 0 {
				return fmt.Errorf("scale group %d does not divide the %d scales of a row", g, w.In/w.BlockSize)
			}
			if scale != n || factor != 2*(n/g) {
				return fmt.Errorf("factored scales of %d and %d bytes, want %d int8 codes and %d fp16 factors", scale, factor, n, n/g)
			}
		case scale != 2*n:
			return fmt.Errorf("scale of %d bytes, want %d fp16 values", scale, n)
		}
		if hasOffset {
			if w.OffsetDType != w.DType && w.OffsetDType != mil.FP16 {
				return fmt.Errorf("offset dtype %s, want %s or fp16", w.OffsetDType, w.DType)
			}
			if offset != w.OffsetDType.ByteSize(n) {
				return fmt.Errorf("offset of %d bytes, want %d %s values", offset, n, w.OffsetDType)
			}
		}
	case LUT:
		switch w.DType {
		case mil.UInt1, mil.UInt2, mil.UInt3, mil.UInt4, mil.UInt6, mil.UInt8:
		default:
			return fmt.Errorf("lut indices dtype %s (uint1, uint2, uint3, uint4, uint6, uint8)", w.DType)
		}
		if w.GroupSize < 1 || w.Out%w.GroupSize != 0 {
			return fmt.Errorf("palette group of %d rows does not divide %d rows", w.GroupSize, w.Out)
		}
		if want := 2 * (w.Out / w.GroupSize) * (1 << w.DType.Bits()); len(w.Palette) != want {
			return fmt.Errorf("palettes of %d bytes, want %d", len(w.Palette), want)
		}
	default:
		return fmt.Errorf("unknown encoding %q", w.Encoding)
	}
	return nil
}

// Weight binds GGUF tensor name whole: a 1-D tensor as an fp16 vector, a 2-D one as a
// weight matrix in the function's layout (see matrix).
func (fn *Func) Weight(name string) *mil.Value {
	t, ok := fn.tensor(name)
	if !ok {
		return nil
	}
	if len(t.Shape) == 1 {
		return fn.vector(name, []int{int(t.Shape[0])})
	}
	return fn.matrix(name, 0, int(t.Shape[1]))
}

func (fn *Func) tensor(name string) (*gguf.Tensor, bool) {
	if fn.err != nil {
		return nil, false
	}
	t, ok := fn.File.Tensor(name)
	if !ok {
		fn.fail(fmt.Errorf("export: %s: tensor %q not found (architecture %s)", fn.File.Path, name, fn.Config.Arch))
		return nil, false
	}
	if len(t.Shape) != 1 && len(t.Shape) != 2 {
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v; only 1-D and 2-D weights are supported", fn.File.Path, name, t.Shape))
		return nil, false
	}
	return t, true
}

// vector binds 1-D tensor name as fp16 of the given shape (its elements in order; a shape
// such as [1, n, 1, 1] broadcasts it over the ANE layout's channel axis).
func (fn *Func) vector(name string, shape []int) *mil.Value {
	t, ok := fn.tensor(name)
	if !ok {
		return nil
	}
	if len(t.Shape) != 1 {
		fn.fail(fmt.Errorf("export: %s: tensor %q has shape %v, want a vector", fn.File.Path, name, t.Shape))
		return nil
	}
	key := name
	if len(shape) != 1 {
		key += "#" + fmt.Sprint(len(shape))
	}
	return fn.F.Weight(key, mil.FP16, shape, fn.track(key, fp16Source(fn.File, t, 0, int(t.Shape[0]))))
}

// vectorRows binds elements [r0, r1) of 1-D tensor name (the bias of a fused projection).
func (fn *Func) vectorRows(name string, r0, r1 int) *mil.Value {
	t, ok := fn.tensor(name)
	if !ok {
		return nil
	}
	n := int(t.Shape[0])
	if len(t.Shape) != 1 || r0 < 0 || r1 > n || r0 >= r1 {
		fn.fail(fmt.Errorf("export: %s: tensor %q (shape %v): elements [%d, %d) out of range", fn.File.Path, name, t.Shape, r0, r1))
		return nil
	}
	key := name
	if r0 != 0 || r1 != n {
		key = fmt.Sprintf("%s#rows%d_%d", name, r0, r1)
	}
	return fn.F.Weight(key, mil.FP16, []int{r1 - r0}, fn.track(key, fp16Source(fn.File, t, r0, r1)))
}

// matrix binds rows [r0, r1) of 2-D tensor name as a weight matrix: [rows, in] in the
// Standard layout (linear, gather), [rows, in, 1, 1] in the ANE layout (1×1 conv). This is
// the one place that decides how a weight is stored: through the constexpr op of its
// compressed form when fn.Weights holds it, as fp16 otherwise. The decompressed weight
// feeds linear, conv or gather directly, so runtimes can fuse the dequantization.
func (fn *Func) matrix(name string, r0, r1 int) *mil.Value {
	t, ok := fn.tensor(name)
	if !ok {
		return nil
	}
	out, in := int(t.Rows()), int(t.Shape[0])
	if len(t.Shape) != 2 || r0 < 0 || r1 > out || r0 >= r1 {
		fn.fail(fmt.Errorf("export: %s: tensor %q (shape %v): rows [%d, %d) out of range", fn.File.Path, name, t.Shape, r0, r1))
		return nil
	}
	key := name
	if r0 != 0 || r1 != out {
		key = fmt.Sprintf("%s#rows%d_%d", name, r0, r1)
	}
	shape := []int{r1 - r0, in}
	if fn.Layout == ANE {
		shape = append(shape, 1, 1)
	}
	if fn.Weights != nil {
		w, ok, err := fn.Weights.Compressed(name, r0, r1)
		if err == nil && ok {
			if err = w.check(); err == nil && (w.Out != r1-r0 || w.In != in) {
				err = fmt.Errorf("shape [%d %d], the model has [%d %d]", w.Out, w.In, r1-r0, in)
			}
		}
		if err != nil {
			fn.fail(fmt.Errorf("export: %s: compressed tensor %q rows [%d, %d): %w", fn.File.Path, name, r0, r1, err))
			return nil
		}
		if ok {
			return fn.constexpr(key, shape, w)
		}
	}
	return fn.F.Weight(key, mil.FP16, shape, fn.track(key, fp16Source(fn.File, t, r0, r1)))
}

// constexpr emits the decompression op of w with output shape (the weight's [out, in],
// with trailing 1s in the ANE layout). Its operands are named after key, so the prefill
// and decode functions share one copy of each in weight.bin.
func (fn *Func) constexpr(key string, shape []int, w *Compressed) *mil.Value {
	// Operand shapes follow the output's rank: blocks run along axes 0 and 1 only
	// (coremltools' rule for linear [out, in] and conv [out, in, 1, 1]).
	like := func(a, b int) []int { return append([]int{a, b}, shape[2:]...) }
	f := fn.F
	switch w.Encoding {
	case Blockwise, LUTBlockwise:
		sshape := like(w.Out, w.In/w.BlockSize)
		data, scale, factor, offset := mil.Bytes(w.Data), mil.Bytes(w.Scale), mil.Bytes(w.ScaleFactor), mil.Bytes(w.Offset)
		var fill mil.WeightFill
		if w.Load != nil {
			data, fill, scale, factor, offset = w.lazy()
		}
		data, fill = fn.tracked(key, data, fill)
		var off *mil.WeightTensor
		if w.Offset != nil || (w.Load != nil && w.OffsetDType != mil.InvalidDType) {
			off = &mil.WeightTensor{Name: key + "_offset", DType: w.OffsetDType, Shape: sshape, Data: offset}
		}
		scales := mil.WeightTensor{Name: key + "_scale", DType: mil.FP16, Shape: sshape, Data: scale}
		if w.Encoding == LUTBlockwise {
			table := mil.WeightTensor{Name: key + "_table", DType: mil.Int8, Shape: append(like(1, 1), len(w.Palette), 1), Data: mil.Bytes(w.Palette)}
			if w.GroupSize > 0 {
				table.DType, table.Shape = mil.FP16, append(like(w.Out/w.GroupSize, 1), 1<<w.DType.Bits(), 1)
			}
			indices := mil.WeightTensor{Name: key + "_indices", DType: w.DType, Shape: shape, Data: data, Fill: fill}
			if w.ScaleGroup > 0 {
				scales.DType = mil.Int8
				return f.LUTBlockwiseFactored(key, indices, table, scales, mil.WeightTensor{Name: key + "_scale_factor",
					DType: mil.FP16, Shape: like(w.Out, w.In/w.BlockSize/w.ScaleGroup), Data: factor}, off)
			}
			return f.LUTBlockwise(key, indices, table, scales, off)
		}
		values := mil.WeightTensor{Name: key + "_data", DType: w.DType, Shape: shape, Data: data, Fill: fill}
		if w.ScaleGroup > 0 {
			scales.DType = mil.Int8
			return f.BlockwiseShiftScaleFactored(key, values, scales, mil.WeightTensor{Name: key + "_scale_factor",
				DType: mil.FP16, Shape: like(w.Out, w.In/w.BlockSize/w.ScaleGroup), Data: factor}, off)
		}
		return f.BlockwiseShiftScale(key, values, scales, off)
	default: // LUT, checked
		lshape := append(like(w.Out/w.GroupSize, 1), 1<<w.DType.Bits(), 1)
		return f.LUTToDense(key,
			mil.WeightTensor{Name: key + "_indices", DType: w.DType, Shape: shape, Data: fn.track(key, mil.Bytes(w.Data))},
			mil.WeightTensor{Name: key + "_lut", DType: mil.FP16, Shape: lshape, Data: mil.Bytes(w.Palette)},
			-1)
	}
}

// lazy returns the sources of w's arrays for a weight with Load, and fill, which writes
// the data in place: the first one written calls Load and checks the arrays against w's
// shape; each source hands its array out and forgets it, so that no array outlives its
// write (a source asked again loads again). The data, which the next Load may overwrite,
// is kept only to be handed out at once.
func (w *Compressed) lazy() (data mil.WeightSource, fill mil.WeightFill, scale, factor, offset mil.WeightSource) {
	var arrays [4][]byte
	dataBytes, scaleBytes, factorBytes, offsetBytes := w.loadedSizes()
	scaled := false // LoadScales made the factored scales
	load := func(dst []byte) error {
		a, err := w.Load(dst, w.ScaleGroup > 0 && !scaled)
		if err != nil {
			return err
		}
		l := *w
		l.Load, l.Data, l.Scale, l.ScaleFactor, l.Offset = nil, a.Data, a.Scale, a.ScaleFactor, a.Offset
		if scaled { // LoadScales checked them
			err = l.checkSizes(len(a.Data), scaleBytes, factorBytes, len(a.Offset), a.Offset != nil)
		} else {
			err = l.check()
		}
		if err != nil {
			return err
		}
		if dst != nil && (len(a.Data) == 0 || &a.Data[0] != &dst[0]) {
			return fmt.Errorf("data not loaded in place")
		}
		arrays[0], arrays[3] = a.Data, a.Offset
		if !scaled {
			arrays[1], arrays[2] = a.Scale, a.ScaleFactor
		}
		return nil
	}
	scales := func() error {
		scaled = true
		codes, factors, err := w.LoadScales()
		if err != nil {
			return err
		}
		if err := w.checkSizes(dataBytes, len(codes), len(factors), offsetBytes, w.OffsetDType != mil.InvalidDType); err != nil {
			return err
		}
		arrays[1], arrays[2] = codes, factors
		return nil
	}
	part := func(i int) mil.WeightSource {
		return func() ([]byte, error) {
			if arrays[i] == nil {
				get := load
				if w.ScaleGroup > 0 && (i == 1 || i == 2) {
					get = func([]byte) error { return scales() }
				}
				if err := get(nil); err != nil {
					return nil, err
				}
			}
			b := arrays[i]
			arrays[i] = nil
			if i != 0 {
				arrays[0] = nil // may be overwritten before it is asked for
			}
			return b, nil
		}
	}
	fill = func(dst []byte) error {
		err := load(dst)
		arrays[0] = nil // written
		return err
	}
	return part(0), fill, part(1), part(2), part(3)
}

// fp16Source reads rows [r0, r1) of tensor t (for a 1-D tensor: its elements) lazily as
// fp16 bytes: Build calls it once, when it writes the weight, so only one tensor is
// dequantized at a time. Any ggml type goes through DequantizeRows (K-quants included);
// conversion to fp16 rounds to nearest even.
func fp16Source(f *gguf.File, t *gguf.Tensor, r0, r1 int) mil.WeightSource {
	return func() ([]byte, error) {
		// The result is a new buffer, which the blob writer's release cannot trace back to
		// the mapping: the pages read are released here.
		defer f.Release(f.Data(t))
		if len(t.Shape) == 1 {
			all, err := f.Float32s(t)
			if err != nil {
				return nil, err
			}
			return halves(nil, all[r0:r1]), nil
		}
		ne0 := int(t.Shape[0])
		out := make([]byte, 0, 2*(r1-r0)*ne0)
		const batch = 64
		buf := make([]float32, batch*ne0)
		for r := r0; r < r1; r += batch {
			k := min(batch, r1-r)
			if err := f.DequantizeRows(t, int64(r), int64(k), buf[:k*ne0]); err != nil {
				return nil, err
			}
			out = halves(out, buf[:k*ne0])
		}
		return out, nil
	}
}

// halves appends v as little-endian fp16.
func halves(dst []byte, v []float32) []byte {
	for _, x := range v {
		dst = binary.LittleEndian.AppendUint16(dst, float16.Fromfloat32(x).Bits())
	}
	return dst
}
