// Package qweights is the quantized-weights artifact format that quantize stages write and
// the exporter reads: a directory holding manifest.json (the scheme, and every tensor of the
// source model with its encoding, bits per weight and error) and weights.safetensors (the
// arrays of each quantized tensor, laid out as MIL blobs want them: a tensor with GGUF
// ne = [in, out] is the row-major [out, in] matrix; 4-bit values are packed LSB-first).
//
// Built-in schemes and plugins write it through Create and Writer; consumers read it
// through Open and Set. The package holds the format, not a quantizer: it neither chooses
// encodings nor computes them.
package qweights

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/safetensors"
)

// Names of the two files of a quantized artifact directory.
const (
	ManifestFile = "manifest.json"
	WeightsFile  = "weights.safetensors"
)

// StoredSource marks a tensor whose arrays are its ggml blocks in the source GGUF (TensorInfo.Stored).
const StoredSource = "source"

// Encodings of a tensor.
const (
	Blockwise = "blockwise" // constexpr_blockwise_shift_scale: scale·(data − offset) per block
	LUT       = "lut"       // constexpr_lut_to_dense: 2^bits fp16 values per group of output channels
	// LUTBlockwise: constexpr_lut_to_dense of int8 codes feeding constexpr_blockwise_shift_scale's
	// data: scale·(codes[index] − offset) per block, with 1- to 8-bit indices (lutcodes.go).
	LUTBlockwise = "lut+blockwise"
	FP16         = "fp16" // kept unquantized: the consumer takes it from the GGUF as fp16
)

// Manifest describes a quantized artifact: how it was made and every tensor of the source
// model, quantized or not, so that nothing is left fp16 silently.
type Manifest struct {
	Scheme string         `json:"scheme"`
	Params map[string]any `json:"params"`
	Source string         `json:"source"` // the GGUF file quantized
	// SourceSize is the GGUF's size in bytes, checked before tensors stored as its blocks
	// (StoredSource) are read from it.
	SourceSize int64        `json:"source_size,omitempty"`
	Tensors    []TensorInfo `json:"tensors"`
	// BitsPerWeight is the size of the quantized tensors (data, scales, offsets, palettes)
	// in bits over their element count; fp16 tensors are not included.
	BitsPerWeight float64  `json:"bits_per_weight"`
	Warnings      []string `json:"warnings,omitempty"`
	// Summary says in one line what happened to the weights, by source type, e.g.
	// "weights: 14 Q4_K → blockwise int4/32 (…), 2 Q6_K → lut+blockwise uint6/16 (…); kept fp16: 9 F32 1-D".
	Summary string `json:"summary,omitempty"`
}

// TensorInfo describes one tensor of the source model.
type TensorInfo struct {
	Name          string  `json:"name"`                 // GGUF tensor name
	Encoding      string  `json:"encoding"`             // Blockwise, LUT or FP16
	Shape         []int   `json:"shape"`                // [out, in] (1-D tensors: [n])
	DType         string  `json:"dtype,omitempty"`      // blockwise: int4|uint4|int8|uint8; lut, lut+blockwise indices: uint1…uint8
	BlockSize     int     `json:"block_size,omitempty"` // blockwise: along in (= in for per-channel)
	Offset        string  `json:"offset,omitempty"`     // "" symmetric, else the data dtype or "fp16"
	GroupSize     int     `json:"group_size,omitempty"` // lut: output channels sharing one palette
	BitsPerWeight float64 `json:"bits_per_weight"`      // stored bits over elements (16 for fp16)
	RelRMSE       float64 `json:"rel_rmse"`             // ‖w − ŵ‖ / ‖w‖ against the GGUF's own values
	Note          string  `json:"note,omitempty"`       // why this encoding, e.g. a block-size fallback
	// Transcoded tensors (scheme gguf): the ggml type read, the largest deviation from
	// ggml's own dequantization the encoding allows, and the largest one measured.
	SourceType string  `json:"source_type,omitempty"`
	Bound      string  `json:"bound,omitempty"`
	MaxAbsErr  float64 `json:"max_abs_err,omitempty"`
	// ScaleGroup > 0: the scales are stored factored, as the sub-block scale codes of a
	// ggml K-quant (int8, one per block) times one fp16 factor, its super-block's d, per
	// ScaleGroup of them along in: a constexpr_blockwise_shift_scale of the codes feeds
	// the scale of the weight's own (coremltools' iOS18 compression.py materializes a
	// scale made by a constexpr op), so the scales cost ggml's bytes, not 16 bits each.
	ScaleGroup int `json:"scale_group,omitempty"`
	// Stored is where the arrays are: "" in WeightsFile, StoredSource as the tensor's
	// ggml blocks in the source GGUF, which the reader transcodes when the arrays are
	// wanted (Transcoding): conversion then writes the weights once, into the package.
	Stored string `json:"stored,omitempty"`
}

// Part is one stored array of a quantized tensor: the safetensors tensor named
// "<tensor name>.<Key>".
type Part struct {
	Key   string // data, scale, offset or lut
	DType string // safetensors dtype
	Shape []int
}

func packedBytes(n int) int { return (n + 1) / 2 }

// maxTensorElements bounds out·in of a manifest tensor.
const maxTensorElements = 1 << 48

// Parts lists the arrays a tensor is stored as in the safetensors file. 4-bit arrays are
// stored as U8 byte streams in MIL's sub-byte packing (safetensors has no 4-bit dtype).
func (ti *TensorInfo) Parts() ([]Part, error) {
	if len(ti.Shape) != 2 || ti.Shape[0] <= 0 || ti.Shape[1] <= 0 {
		return nil, fmt.Errorf("shape %v is not a 2-D [out, in]", ti.Shape)
	}
	out, in := ti.Shape[0], ti.Shape[1]
	// The element count must not overflow: an out·in that wraps to a small number would
	// pass the array-size checks below, and Rows/Dequantize would then index far past the
	// arrays (found by FuzzOpen). 2^48 elements is far beyond any weight matrix and leaves
	// room for the byte-offset arithmetic (·2 for fp16, ·32 per palette) in an int.
	if in > maxTensorElements/out {
		return nil, fmt.Errorf("shape %v has more than 2^48 elements", ti.Shape)
	}
	switch ti.Encoding {
	case Blockwise:
		if ti.BlockSize <= 0 || in%ti.BlockSize != 0 {
			return nil, fmt.Errorf("block size %d does not divide in = %d", ti.BlockSize, in)
		}
		nb := in / ti.BlockSize
		var data, off Part
		switch ti.DType {
		case "int4", "uint4":
			data = Part{"data", "U8", []int{packedBytes(out * in)}}
			off = Part{"offset", "U8", []int{packedBytes(out * nb)}}
		case "int8":
			data = Part{"data", "I8", []int{out, in}}
			off = Part{"offset", "I8", []int{out, nb}}
		case "uint8":
			data = Part{"data", "U8", []int{out, in}}
			off = Part{"offset", "U8", []int{out, nb}}
		default:
			return nil, fmt.Errorf("blockwise dtype %q is not int4, uint4, int8 or uint8", ti.DType)
		}
		ps := []Part{data, {"scale", "F16", []int{out, nb}}}
		if g := ti.ScaleGroup; g > 0 {
			if nb%g != 0 {
				return nil, fmt.Errorf("scale group %d does not divide the %d scales of a row", g, nb)
			}
			ps = []Part{data, {"scale", "I8", []int{out, nb}}, {"scale_factor", "F16", []int{out, nb / g}}}
		}
		switch ti.Offset {
		case "":
		case ti.DType:
			ps = append(ps, off)
		case "fp16":
			ps = append(ps, Part{"offset", "F16", []int{out, nb}})
		default:
			return nil, fmt.Errorf("offset dtype %q must be empty, fp16 or the data dtype %s", ti.Offset, ti.DType)
		}
		return ps, nil
	case LUTBlockwise:
		return ti.lutBlockwiseParts(out, in)
	case LUT:
		bits := indexBits(ti.DType)
		if bits == 0 {
			return nil, fmt.Errorf("lut index dtype %q is not uint1, uint2, uint3, uint4, uint6 or uint8", ti.DType)
		}
		if ti.GroupSize <= 0 || out%ti.GroupSize != 0 {
			return nil, fmt.Errorf("group size %d does not divide out = %d", ti.GroupSize, out)
		}
		return []Part{
			{"data", "U8", []int{(out*in*bits + 7) / 8}},
			{"lut", "F16", []int{out / ti.GroupSize, 1, 1 << bits, 1}},
		}, nil
	}
	return nil, fmt.Errorf("encoding %q has no stored arrays", ti.Encoding)
}

// StoredBits is the size of the tensor's arrays in bits.
func (ti *TensorInfo) StoredBits() (int64, error) {
	ps, err := ti.Parts()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range ps {
		e := safetensors.Entry{DType: p.DType, Shape: p.Shape}
		s, err := e.Size()
		if err != nil {
			return 0, err
		}
		n += 8 * s
	}
	return n, nil
}

// Set is an opened quantized artifact.
type Set struct {
	dir        string
	manifest   Manifest
	st         *safetensors.File
	tensors    map[string]*Tensor
	source     *gguf.File // the GGUF, when tensors are stored as its blocks
	sourcePath string
	derived    map[string]*TensorInfo // those tensors
}

// Open reads dir's manifest and maps its safetensors file, checking that every quantized
// tensor of the manifest is stored with the dtypes and sizes its encoding implies.
func Open(dir string) (*Set, error) { return OpenSource(dir, "") }

// OpenSource is Open with the GGUF that tensors stored as its blocks are read from given
// (a consumer that has the model, possibly moved since it was quantized); "" means the
// manifest's Source. Its size must be the manifest's SourceSize.
func OpenSource(dir, source string) (*Set, error) {
	mpath := filepath.Join(dir, ManifestFile)
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("qweights: %w", err)
	}
	s := &Set{dir: dir, tensors: map[string]*Tensor{}}
	if err := json.Unmarshal(raw, &s.manifest); err != nil {
		return nil, fmt.Errorf("qweights: %s: %w", mpath, err)
	}
	s.sourcePath = s.manifest.Source
	if source != "" {
		s.sourcePath = source
	}
	st, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("qweights: %w", err)
	}
	s.st = st
	for i, ti := range s.manifest.Tensors {
		if ti.Encoding == FP16 {
			continue
		}
		if ti.Stored == StoredSource {
			if err := s.openSource(&s.manifest.Tensors[i]); err != nil {
				s.Close()
				return nil, fmt.Errorf("qweights: %s: tensor %q: %w", mpath, ti.Name, err)
			}
			continue
		} else if ti.Stored != "" {
			st.Close()
			return nil, fmt.Errorf("qweights: %s: tensor %q: stored %q is not %q or empty", mpath, ti.Name, ti.Stored, StoredSource)
		}
		t, err := s.load(ti)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("qweights: %s: tensor %q: %w", mpath, ti.Name, err)
		}
		if _, dup := s.tensors[ti.Name]; dup {
			st.Close()
			return nil, fmt.Errorf("qweights: %s: tensor %q listed twice", mpath, ti.Name)
		}
		s.tensors[ti.Name] = t
	}
	return s, nil
}

func (s *Set) load(ti TensorInfo) (*Tensor, error) {
	ps, err := ti.Parts()
	if err != nil {
		return nil, err
	}
	t := &Tensor{Info: ti}
	for _, p := range ps {
		name := ti.Name + "." + p.Key
		e, ok := s.st.Entry(name)
		if !ok {
			return nil, fmt.Errorf("%s has no array %q", WeightsFile, name)
		}
		if e.DType != p.DType || !slices.Equal(e.Shape, p.Shape) {
			return nil, fmt.Errorf("array %q is %s%v, want %s%v", name, e.DType, e.Shape, p.DType, p.Shape)
		}
		b, _ := s.st.Data(name)
		switch p.Key {
		case "data":
			t.Data = b
		case "scale":
			t.Scale = b
		case "scale_factor":
			t.ScaleFactor = b
		case "offset":
			t.Offset = b
		case "lut":
			t.LUT = b
		}
	}
	return t, nil
}

// Manifest returns the artifact's manifest.
func (s *Set) Manifest() *Manifest { return &s.manifest }

// Lookup returns a quantized tensor; false means the tensor is not quantized and the
// consumer uses its fp16 values from the GGUF. A tensor stored as its source's blocks is
// transcoded whole, into memory (false if that fails: Rows says why); an exporter streams
// it through Rows instead.
func (s *Set) Lookup(name string) (*Tensor, bool) {
	if ti, ok := s.derived[name]; ok {
		t, err := s.Rows(name, 0, ti.Shape[0])
		return t, err == nil
	}
	t, ok := s.tensors[name]
	return t, ok
}

// Release hands the pages under b, a slice of a tensor's arrays, back to the kernel once a
// streaming reader (the exporter writing weight.bin) is done with them.
func (s *Set) Release(b []byte) { s.st.Release(b) }

// Close releases the mappings; tensors returned by Lookup are invalid afterwards.
func (s *Set) Close() error {
	if s.source != nil {
		s.source.Close()
	}
	return s.st.Close()
}

// openSource checks a tensor stored as ggml blocks against the source GGUF (opened on the
// first such tensor): its type, shape and the transcoding its encoding names.
func (s *Set) openSource(ti *TensorInfo) error {
	if s.source == nil {
		// A regular file only: opening a FIFO or a device a manifest names would block.
		if st, err := os.Stat(s.sourcePath); err != nil {
			return fmt.Errorf("stored as the blocks of its source: %w", err)
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("stored as the blocks of its source %s, which is not a regular file", s.sourcePath)
		}
		f, err := gguf.Open(s.sourcePath)
		if err != nil {
			return fmt.Errorf("stored as the blocks of its source: %w", err)
		}
		if f.FileSize() != s.manifest.SourceSize {
			f.Close()
			return fmt.Errorf("stored as the blocks of %s, which has %d bytes, the model quantized %d", s.sourcePath, f.FileSize(), s.manifest.SourceSize)
		}
		s.source, s.derived = f, map[string]*TensorInfo{}
	}
	t, ok := s.source.Tensor(ti.Name)
	if !ok {
		return fmt.Errorf("not in %s", s.sourcePath)
	}
	tr, ok := TranscodingOf(t.Type)
	if !ok || t.Type.String() != ti.SourceType {
		return fmt.Errorf("is %v in %s, the manifest says %s (transcodable: %v)", t.Type, s.sourcePath, ti.SourceType, ok)
	}
	if len(ti.Shape) != 2 || len(t.Shape) != 2 || int64(ti.Shape[1]) != t.Shape[0] || int64(ti.Shape[0]) != t.Shape[1] {
		return fmt.Errorf("shape %v, the GGUF's ne %v", ti.Shape, t.Shape)
	}
	if ti.Encoding != tr.Encoding || ti.DType != tr.DType || ti.Offset != tr.Offset || ti.BlockSize != tr.Block {
		return fmt.Errorf("%s %s/%d offset %q is not the %v transcoding (%s/%d offset %q)", ti.Encoding, ti.DType, ti.BlockSize, ti.Offset, t.Type, tr.DType, tr.Block, tr.Offset)
	}
	if _, dup := s.derived[ti.Name]; dup {
		return fmt.Errorf("listed twice")
	}
	s.derived[ti.Name] = ti
	return nil
}

// Derived reports whether quantized tensor name is stored as its source's ggml blocks.
func (s *Set) Derived(name string) bool { _, ok := s.derived[name]; return ok }

// Rows returns rows [r0, r1) of quantized tensor name: a view of the weights file, or, for
// a tensor stored as its source's ggml blocks, arrays transcoded from them now (their
// source pages are released once read).
func (s *Set) Rows(name string, r0, r1 int) (*Tensor, error) { return s.RowsInto(name, r0, r1, nil) }

// An Alloc returns a byte slice of length n for array a whose contents do not matter:
// RowsInto writes every byte. nil allocates. For the factored scales (ScaleArray,
// ScaleFactorArray) it may return nil: RowsInto then leaves them to ScaleCodes.
type Alloc func(a Array, n int) []byte

// Array names the array of a Tensor an Alloc is asked for.
type Array int

// The arrays of a Tensor.
const (
	DataArray Array = iota
	ScaleArray
	OffsetArray
	ScaleFactorArray
)

// RowsInto is Rows that, for a tensor stored as its source's blocks, takes the arrays it
// transcodes into from alloc (a streaming consumer reuses buffers).
func (s *Set) RowsInto(name string, r0, r1 int, alloc Alloc) (*Tensor, error) {
	ti, ok := s.derived[name]
	if !ok {
		t, ok := s.tensors[name]
		if !ok {
			return nil, fmt.Errorf("qweights: tensor %q is not quantized", name)
		}
		if r0 == 0 && r1 == t.Info.Shape[0] {
			return t, nil
		}
		return t.Rows(r0, r1)
	}
	t, raw, rb, err := s.sourceRows(name, ti, r0, r1)
	if err != nil {
		return nil, err
	}
	defer s.source.Release(raw)
	in := ti.Shape[1]
	tr := transcodings[t.Type]
	n := (r1 - r0) * in
	info := *ti
	info.Shape = []int{r1 - r0, in}
	res := &Tensor{Info: info}
	if alloc == nil {
		alloc = allocate
	}
	if tr.Encoding == LUTBlockwise {
		res.LUT = codeBytes(tr.Codes)
	}
	// Batches of rows, on every core: the int32 levels of a whole embedding would take 4
	// bytes a weight, and the per-sub-block offsets cost CPU. The common types take their
	// direct path (no int32 levels); Rows the rest, and names a bad block.
	// With factored scales (ti.ScaleGroup) the fp16 scales the transcoding computes (and
	// checks) go to a scratch array, and each batch's codes and factors are read from the
	// blocks while they are mapped (a block that is not Factorable is refused).
	g := ti.ScaleGroup
	var scale, factors []uint16
	if g > 0 {
		scale = make([]uint16, n/tr.Block)
		if res.Scale = alloc(ScaleArray, n/tr.Block); res.Scale != nil {
			res.ScaleFactor = alloc(ScaleFactorArray, 2*(n/tr.Block/g))
			factors = f16View(res.ScaleFactor)
		}
	} else {
		res.Scale = alloc(ScaleArray, 2*(n/tr.Block))
		scale = f16View(res.Scale)
	}
	var off []uint16
	if tr.Offset != "" {
		res.Offset = alloc(OffsetArray, 2*(n/tr.Block))
		off = f16View(res.Offset)
	}
	res.Data = alloc(DataArray, tr.dataBytes(n))
	rows, batch := r1-r0, max(1, (1<<16)/in)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, (rows+batch-1)/batch)
	for range min(runtime.GOMAXPROCS(0), len(errs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var q []int32
			fast := direct[t.Type]
			for k := int(next.Add(1) - 1); k < len(errs); k = int(next.Add(1) - 1) {
				b0, b1 := k*batch, min(rows, (k+1)*batch)
				e0, e1 := b0*in, b1*in
				var o []uint16
				if off != nil {
					o = off[e0/tr.Block : e1/tr.Block]
				}
				braw, bscale := raw[int64(b0)*rb:int64(b1)*rb], scale[e0/tr.Block:e1/tr.Block]
				if factors != nil && !tr.factors(t.Type, braw, res.Scale[e0/tr.Block:e1/tr.Block], factors[e0/tr.Block/g:e1/tr.Block/g]) {
					errs[k] = fmt.Errorf("rows [%d, %d): %w", r0+b0, r0+b1, errUnfactorable)
					continue
				}
				if fast != nil && fast(braw, res.Data[tr.dataBytes(e0):tr.dataBytes(e1)], bscale, o) {
					continue
				}
				// Rows names the block a direct path stopped at.
				if q == nil {
					q = make([]int32, batch*in)
				}
				err := tr.Rows(t.Type, braw, in, q[:e1-e0], bscale, o)
				if be, ok := err.(*BlockError); ok {
					be.Row += r0 + b0
				}
				if errs[k] = err; err == nil {
					tr.pack(res.Data, e0, q[:e1-e0])
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs { // the first bad block in row order
		if err != nil {
			return nil, fmt.Errorf("qweights: tensor %q (%v): %w", name, t.Type, err)
		}
	}
	if g == 0 {
		littleEndian(scale)
	}
	littleEndian(factors)
	littleEndian(off)
	return res, nil
}

// allocate is the Alloc of a nil one.
func allocate(_ Array, n int) []byte { return make([]byte, n) }

// sourceRows returns the source tensor of ti (stored as its ggml blocks), the blocks of its
// rows [r0, r1), prefetched for a read of all of them (the caller releases them), and the
// bytes of one row.
func (s *Set) sourceRows(name string, ti *TensorInfo, r0, r1 int) (t *gguf.Tensor, raw []byte, rowBytes int64, err error) {
	out, in := ti.Shape[0], ti.Shape[1]
	if r0 < 0 || r1 > out || r0 >= r1 {
		return nil, nil, 0, fmt.Errorf("qweights: tensor %q: rows [%d, %d) out of range (%d rows)", name, r0, r1, out)
	}
	t, _ = s.source.Tensor(name)
	rb, err := t.Type.RowBytes(int64(in))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("qweights: tensor %q: %w", name, err)
	}
	data := s.source.Data(t)
	if int64(len(data)) < int64(r1)*rb {
		return nil, nil, 0, fmt.Errorf("qweights: tensor %q: %d bytes of data, %d rows need %d", name, len(data), r1, int64(r1)*rb)
	}
	raw = data[int64(r0)*rb : int64(r1)*rb]
	s.source.Prefetch(raw)
	return t, raw, rb, nil
}

// errUnfactorable is a block that factored scales cannot hold (see Factorable).
var errUnfactorable = errors.New("a sub-block whose scale rounds to zero has a min, which factored scales cannot hold " +
	"(the quantize stage checks every block for this)")

// ScaleCodes returns the factored scales of rows [r0, r1) of a tensor stored as its
// source's blocks with TensorInfo.ScaleGroup: the int8 codes, one per block of BlockSize
// elements, and the fp16 factors, one per ScaleGroup codes, in arrays from alloc. RowsInto
// returns them too; this reads only them, for a consumer that writes them before the data.
func (s *Set) ScaleCodes(name string, r0, r1 int, alloc Alloc) (codes, factors []byte, err error) {
	ti, ok := s.derived[name]
	if !ok || ti.ScaleGroup == 0 {
		return nil, nil, fmt.Errorf("qweights: tensor %q has no factored scales", name)
	}
	t, raw, _, err := s.sourceRows(name, ti, r0, r1)
	if err != nil {
		return nil, nil, err
	}
	defer s.source.Release(raw) // as RowsInto: the resident set stays that of a tensor
	if alloc == nil {
		alloc = allocate
	}
	nb := (r1 - r0) * ti.Shape[1] / ti.BlockSize
	codes, factors = alloc(ScaleArray, nb), alloc(ScaleFactorArray, 2*(nb/ti.ScaleGroup))
	f := f16View(factors)
	if !transcodings[t.Type].factors(t.Type, raw, codes, f) {
		return nil, nil, fmt.Errorf("qweights: tensor %q (%v), rows [%d, %d): %w", name, t.Type, r0, r1, errUnfactorable)
	}
	littleEndian(f)
	return codes, factors, nil
}

// Tensor is one quantized tensor. Its byte slices point into the mapped safetensors file
// and are laid out exactly as MIL blobs expect them.
type Tensor struct {
	Info TensorInfo
	// Data holds the row-major [out, in] elements; 4-bit values are packed LSB-first
	// (element 2k in the low nibble) as in a MIL int4/uint4 blob. For a LUT tensor it holds
	// the palette indices, Info.DType bits each, packed LSB-first the same way.
	Data []byte
	// Scale is fp16 LE, shape [out, in/BlockSize]; with Info.ScaleGroup, int8 scale codes
	// of that shape, and ScaleFactor the fp16 LE factor of each ScaleGroup codes, shape
	// [out, in/BlockSize/ScaleGroup]: scale = fp16(factor·code).
	Scale       []byte
	ScaleFactor []byte
	// Offset is [out, in/BlockSize] in Info.Offset's dtype (4-bit packed like Data); nil
	// when symmetric.
	Offset []byte
	// LUT is fp16 LE with shape [out/GroupSize, 1, 2^bits, 1], the iOS18 per-group palette
	// layout of rank K+2.
	LUT []byte
}

// Rows returns rows [r0, r1) of every array, e.g. to split a fused qkv projection. For a
// LUT tensor r0 and r1 must be multiples of GroupSize. Arrays are sub-slices when their
// rows start on a byte boundary and repacked copies otherwise.
func (t *Tensor) Rows(r0, r1 int) (*Tensor, error) {
	out, in := t.Info.Shape[0], t.Info.Shape[1]
	if r0 < 0 || r1 > out || r0 >= r1 {
		return nil, fmt.Errorf("qweights: tensor %q: rows [%d, %d) out of range (%d rows)", t.Info.Name, r0, r1, out)
	}
	n := &Tensor{Info: t.Info}
	n.Info.Shape = []int{r1 - r0, in}
	switch t.Info.Encoding {
	case LUT:
		g := t.Info.GroupSize
		if r0%g != 0 || r1%g != 0 {
			return nil, fmt.Errorf("qweights: tensor %q: rows [%d, %d) are not multiples of its palette group %d", t.Info.Name, r0, r1, g)
		}
		bits := indexBits(t.Info.DType)
		n.Data = sliceBits(t.Data, r0*in, r1*in, bits)
		n.LUT = t.LUT[r0/g*2<<bits : r1/g*2<<bits]
	case LUTBlockwise:
		bits, nb := indexBits(t.Info.DType), in/t.Info.BlockSize
		n.Data = sliceBits(t.Data, r0*in, r1*in, bits)
		n.LUT = t.LUT
		if g := t.Info.GroupSize; g > 0 {
			if r0%g != 0 || r1%g != 0 {
				return nil, fmt.Errorf("qweights: tensor %q: rows [%d, %d) are not multiples of its palette group %d", t.Info.Name, r0, r1, g)
			}
			n.LUT = t.LUT[r0/g*2<<bits : r1/g*2<<bits]
		}
		t.scaleRows(n, r0, r1, nb)
		if t.Offset != nil {
			n.Offset = t.Offset[r0*nb*2 : r1*nb*2]
		}
	case Blockwise:
		nb := in / t.Info.BlockSize
		w := elemBytes(t.Info.DType)
		if w == 0 {
			n.Data = slice4(t.Data, r0*in, r1*in)
		} else {
			n.Data = t.Data[r0*in*w : r1*in*w]
		}
		t.scaleRows(n, r0, r1, nb)
		switch {
		case t.Offset == nil:
		case t.Info.Offset == "fp16":
			n.Offset = t.Offset[r0*nb*2 : r1*nb*2]
		case w == 0:
			n.Offset = slice4(t.Offset, r0*nb, r1*nb)
		default:
			n.Offset = t.Offset[r0*nb*w : r1*nb*w]
		}
	default:
		return nil, fmt.Errorf("qweights: tensor %q: encoding %q has no rows", t.Info.Name, t.Info.Encoding)
	}
	return n, nil
}

// scaleRows sets n's scale arrays to rows [r0, r1) of t's, nb scales a row: fp16 scales,
// or factored codes (one byte each) and their factors (fp16, one per ScaleGroup codes).
func (t *Tensor) scaleRows(n *Tensor, r0, r1, nb int) {
	if g := t.Info.ScaleGroup; g > 0 {
		n.Scale, n.ScaleFactor = t.Scale[r0*nb:r1*nb], t.ScaleFactor[r0*nb/g*2:r1*nb/g*2]
		return
	}
	n.Scale = t.Scale[r0*nb*2 : r1*nb*2]
}

// elemBytes is the byte width of a dtype, 0 for 4-bit types.
func elemBytes(dtype string) int {
	switch dtype {
	case "int8", "uint8":
		return 1
	case "fp16":
		return 2
	}
	return 0
}

// slice4 returns the packed 4-bit elements [e0, e1) of b, repacking when e0 is odd.
func slice4(b []byte, e0, e1 int) []byte {
	if e0%2 == 0 {
		return b[e0/2 : (e1+1)/2 : (e1+1)/2]
	}
	out := make([]byte, packedBytes(e1-e0))
	for i := e0; i < e1; i++ {
		v := b[i/2] >> (4 * (i % 2)) & 0xF
		out[(i-e0)/2] |= v << (4 * ((i - e0) % 2))
	}
	return out
}

// Dequantize returns the dense [out, in] values the constexpr op produces, computed in
// float32 from the stored fp16 scales, offsets and palettes.
func (t *Tensor) Dequantize() []float32 {
	out, in := t.Info.Shape[0], t.Info.Shape[1]
	dst := make([]float32, out*in)
	f16 := func(b []byte, i int) float32 { return f16ToF32(binary.LittleEndian.Uint16(b[2*i:])) }
	switch t.Info.Encoding {
	case LUT:
		g, bits := t.Info.GroupSize, indexBits(t.Info.DType)
		for r := 0; r < out; r++ {
			for c := 0; c < in; c++ {
				k := unpackIndex(t.Data, r*in+c, bits)
				dst[r*in+c] = f16(t.LUT, (r/g)<<bits+k)
			}
		}
	case LUTBlockwise:
		bs, bits := t.Info.BlockSize, indexBits(t.Info.DType)
		nb := in / bs
		for i := range dst {
			j := i/in*nb + i%in/bs
			var off float32
			if t.Offset != nil {
				off = f16(t.Offset, j)
			}
			k := unpackIndex(t.Data, i, bits)
			code := float32(int8(t.LUT[k%len(t.LUT)]))
			if g := t.Info.GroupSize; g > 0 {
				code = f16(t.LUT, (i/in/g)<<bits+k)
			}
			dst[i] = t.scaleAt(j) * (code - off)
		}
	case Blockwise:
		bs := t.Info.BlockSize
		nb := in / bs
		signed := t.Info.DType == "int4" || t.Info.DType == "int8"
		elem := func(b []byte, i int) float32 {
			switch t.Info.DType {
			case "int8":
				return float32(int8(b[i]))
			case "uint8":
				return float32(b[i])
			}
			return float32(nibble(b, i, signed))
		}
		for r := 0; r < out; r++ {
			for c := 0; c < in; c++ {
				j := r*nb + c/bs
				var off float32
				switch {
				case t.Offset == nil:
				case t.Info.Offset == "fp16":
					off = f16(t.Offset, j)
				default:
					off = elem(t.Offset, j)
				}
				dst[r*in+c] = t.scaleAt(j) * (elem(t.Data, r*in+c) - off)
			}
		}
	}
	return dst
}

// scaleAt is scale j (row-major over [out, in/BlockSize]) as the constexpr ops compute it:
// with factored scales, the fp16 product of the code and its factor.
func (t *Tensor) scaleAt(j int) float32 {
	if g := t.Info.ScaleGroup; g > 0 {
		f := f16ToF32(binary.LittleEndian.Uint16(t.ScaleFactor[2*(j/g):]))
		return f16ToF32(toF16(f * float32(int8(t.Scale[j]))))
	}
	return f16ToF32(binary.LittleEndian.Uint16(t.Scale[2*j:]))
}

// nibble reads 4-bit element i of a packed stream, sign-extended when signed.
func nibble(b []byte, i int, signed bool) int32 {
	v := int32(b[i/2]>>(4*(i%2))) & 0xF
	if signed && v >= 8 {
		v -= 16
	}
	return v
}

// Info returns the manifest's entry for quantized tensor name; false for a tensor that is
// not quantized.
func (s *Set) Info(name string) (TensorInfo, bool) {
	if ti, ok := s.derived[name]; ok {
		return *ti, true
	}
	if t, ok := s.tensors[name]; ok {
		return t.Info, true
	}
	return TensorInfo{}, false
}
