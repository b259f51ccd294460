package reference

import "slices"

// weightMatrix is a constant 2-D weight [rows, cols] (an N-D weight is viewed as
// [shape[0], prod(shape[1:])]) that kernels read row by row without materialising it.
type weightMatrix interface {
	dims() (rows, cols int)
	// dotRow returns Σ_c W[r,c]·x[c].
	dotRow(r int, x []float32) float32
	// row writes W[r,:] into dst (len cols).
	row(r int, dst []float32)
}

// denseWeight is a float32 weight.
type denseWeight struct {
	w          []float32
	rows, cols int
}

func (w *denseWeight) dims() (int, int) { return w.rows, w.cols }
func (w *denseWeight) dotRow(r int, x []float32) float32 {
	return linearDot(w.w[r*w.cols:(r+1)*w.cols], x)
}
func (w *denseWeight) row(r int, dst []float32) { copy(dst, w.w[r*w.cols:(r+1)*w.cols]) }

// halfWeight is an fp16 weight read straight from the mapped blob.
type halfWeight struct {
	w          []uint16
	rows, cols int
	lut        *[1 << 16]float32
}

func (w *halfWeight) dims() (int, int) { return w.rows, w.cols }
func (w *halfWeight) dotRow(r int, x []float32) float32 {
	return linearDotHalf(w.w[r*w.cols:(r+1)*w.cols], x, w.lut)
}
func (w *halfWeight) row(r int, dst []float32) { halfsToFloats(dst, w.w[r*w.cols:(r+1)*w.cols]) }

// weightOf views a constant tensor as a weight matrix, keeping fp16 data in place.
func weightOf(t *Tensor) weightMatrix {
	rows := 1
	if len(t.Shape) > 0 {
		rows = t.Shape[0]
	}
	cols := 0
	if rows > 0 {
		cols = t.Len() / rows
	}
	if t.f32 == nil && t.half != nil {
		return &halfWeight{w: t.half, rows: rows, cols: cols, lut: halfLUT()}
	}
	return &denseWeight{w: t.Float32s(), rows: rows, cols: cols}
}

// blockwiseWeight is constexpr_blockwise_shift_scale over integer data (coremltools mil/ops/defs/iOS18/compression.py):
// W[r,c] = scale[r/rb, c/cb]·(data[r,c] − offset[r/rb, c/cb]).
// The fused dot computes, per block, s·(Σ x·q − o·Σ x), never forming W. It is exact in real
// arithmetic; Core ML rounds the materialised W to fp16 first, a difference far below the
// fp16 rounding of the op's result.
//
// An fp16 scale stays fp16 (scaleH, read from the mapped blob) so that the runtime's memory
// is the package's size: widened to float32 it would add 1 bit per weight at block 32.
type blockwiseWeight struct {
	data       *Tensor   // Int4, Uint4, Int8 or Uint8
	scale      []float32 // nil when scaleH holds the scales
	scaleH     []uint16
	offset     []float32 // nil when absent
	rows, cols int
	rb, cb     int // block sizes
	sc         int // scale columns
}

func (w *blockwiseWeight) dims() (int, int) { return w.rows, w.cols }

// scaleAt returns scale i (row-major over the scale tensor).
func (w *blockwiseWeight) scaleAt(i int) float32 {
	if w.scale != nil {
		return w.scale[i]
	}
	return halfLUT()[w.scaleH[i]]
}

// fused reports whether rows go through the fused int4 kernel (dotInt4): 4-bit codes
// without offset, fp16 scales, one scale per row (rb 1) per block of a multiple of 32.
func (w *blockwiseWeight) fused() bool { return w.fusable() && hasInt4Kernel() }

// fusable reports whether the weight has the layout of the int4 kernels (dotInt4, rowInt4).
func (w *blockwiseWeight) fusable() bool {
	return (w.data.DType == Int4 || w.data.DType == Uint4) && w.offset == nil && w.scaleH != nil &&
		w.rb == 1 && w.cb%32 == 0
}

// prepare fills xd (x deinterleaved, see deinterleave16) and corr (per block: Σ x for int4,
// 0 for uint4) for dotFused; both are shared by every row of one product.
func (w *blockwiseWeight) prepare(x, xd, corr []float32) {
	deinterleave16(xd, x[:w.cols])
	w.blockSums(x, corr)
}

// prepareWide is prepare for dotInt4Wide: x deinterleaved per 32 elements.
func (w *blockwiseWeight) prepareWide(x, xd, corr []float32) {
	deinterleave32(xd, x[:w.cols])
	w.blockSums(x, corr)
}

// blockSums sets corr[b] to Σ x over block b for int4 codes, 0 for uint4 (see dotInt4Generic).
func (w *blockwiseWeight) blockSums(x, corr []float32) {
	for b := range w.sc {
		var s float32
		if w.data.DType == Int4 {
			for _, v := range x[b*w.cb : (b+1)*w.cb] {
				s += v
			}
		}
		corr[b] = s
	}
}

// dotFused is dotRow through the fused kernel, on inputs made by prepare, or by
// prepareWide when wide is set (the AVX-512 kernel's layout).
func (w *blockwiseWeight) dotFused(r int, xd, corr []float32, wide bool) float32 {
	flip := byte(0)
	if w.data.DType == Int4 {
		flip = 0x88 // int4 nibble n → n+8 in 0..15 (two's complement, MILBlob's sub-byte packing)
	}
	q, s := w.data.raw[r*w.cols/2:(r+1)*w.cols/2], w.scaleH[r*w.sc:(r+1)*w.sc]
	if wide {
		return dotInt4Wide(q, s, xd, corr, w.cb/32, flip)
	}
	return dotInt4(q, s, xd, corr, w.cb/32, flip)
}

func (w *blockwiseWeight) dotRow(r int, x []float32) float32 {
	srow := (r / w.rb) * w.sc
	var sum float32
	base := r * w.cols
	for b := 0; b < w.sc; b++ {
		lo := b * w.cb
		xs := x[lo : lo+w.cb]
		var dq, sx float32
		switch w.data.DType {
		case Int4, Uint4:
			if (base+lo)%2 == 0 && w.cb%2 == 0 {
				bytes := w.data.raw[(base+lo)/2 : (base+lo+w.cb)/2]
				if w.data.DType == Int4 {
					for k, v := range bytes {
						dq += float32(int8(v<<4)>>4)*xs[2*k] + float32(int8(v)>>4)*xs[2*k+1]
					}
				} else {
					for k, v := range bytes {
						dq += float32(v&15)*xs[2*k] + float32(v>>4)*xs[2*k+1]
					}
				}
			} else {
				for k := range xs {
					dq += float32(w.data.intAt(base+lo+k)) * xs[k]
				}
			}
		case Int8:
			for k, v := range w.data.raw[base+lo : base+lo+w.cb] {
				dq += float32(int8(v)) * xs[k]
			}
		default:
			for k, v := range w.data.raw[base+lo : base+lo+w.cb] {
				dq += float32(v) * xs[k]
			}
		}
		if w.offset != nil {
			for _, v := range xs {
				sx += v
			}
			dq -= w.offset[srow+b] * sx
		}
		sum += w.scaleAt(srow+b) * dq
	}
	return sum
}

func (w *blockwiseWeight) row(r int, dst []float32) {
	srow := (r / w.rb) * w.sc
	base := r * w.cols
	if w.fusable() {
		// One scale per row and block of a multiple of 32, no offset: the vector kernel.
		rowInt4(dst, w.data.raw[base/2:(base+w.cols)/2], w.scaleH[srow:srow+w.sc], w.cb/32, w.data.DType == Int4)
		return
	}
	if (w.data.DType == Int4 || w.data.DType == Uint4) && base%2 == 0 && w.cb%2 == 0 {
		// Two codes per byte, element 2k in the low nibble: a byte at a time.
		tab := &nibbleValues[0]
		if w.data.DType == Int4 {
			tab = &nibbleValues[1]
		}
		// The 16 values a block's codes can take are computed once per block (the same
		// products as element by element), so each code costs a table read.
		var vals [16]float32
		for b := range w.sc {
			s := w.scaleAt(srow + b)
			var o float32
			if w.offset != nil {
				o = w.offset[srow+b]
			}
			for n, q := range tab {
				vals[n] = s * (q - o)
			}
			d := dst[b*w.cb : (b+1)*w.cb]
			src := w.data.raw[(base+b*w.cb)/2 : (base+(b+1)*w.cb)/2]
			d = d[:2*len(src)]
			for k, v := range src {
				d[2*k] = vals[v&15]
				d[2*k+1] = vals[v>>4]
			}
		}
		return
	}
	for c := 0; c < w.cols; c++ {
		b := srow + c/w.cb
		q := float32(w.data.intAt(base + c))
		if w.offset != nil {
			q -= w.offset[b]
		}
		dst[c] = w.scaleAt(b) * q
	}
}

// nibbleValues maps a 4-bit code to its value: [0] as uint4, [1] as int4 (two's complement).
var nibbleValues = func() (t [2][16]float32) {
	for n := range 16 {
		t[0][n] = float32(n)
		t[1][n] = float32(int8(n<<4) >> 4)
	}
	return t
}()

// lutWeight is constexpr_lut_to_dense (iOS18) with VECTOR_SIZE 1 (coremltools mil/ops/defs/iOS18/compression.py):
// W[r,c] = lut[r/rg, c/cg, indices[r,c]].
type lutWeight struct {
	idx        *Tensor // Uint4 or Uint8 indices of the weight's logical shape
	lut        []float32
	rows, cols int
	rg, cg     int // group sizes
	lc         int // LUT groups along columns
	pal        int // palette size
}

func (w *lutWeight) dims() (int, int) { return w.rows, w.cols }

// packed4 returns the bytes of group g of row r when they can go through the LUT4
// kernels (dotLUT4, rowLUT4): uint4 indices with a 16-entry palette, the group starting on
// a byte (element 2k is the low nibble of byte k, blob v2) and spanning whole bytes.
func (w *lutWeight) packed4(r, g int) ([]byte, bool) {
	start := r*w.cols + g*w.cg
	if w.idx.DType != Uint4 || w.pal != 16 || start%2 != 0 || w.cg%2 != 0 {
		return nil, false
	}
	return w.idx.raw[start/2 : (start+w.cg)/2], true
}

// palette returns the palette of group g of row r.
func (w *lutWeight) palette(r, g int) []float32 {
	return w.lut[((r/w.rg)*w.lc+g)*w.pal:][:w.pal]
}

// dotRow sums group by group. With one group along the columns (per-tensor or per-row
// palettes, the common exports), dotLUT4 gives dot over row's output bit for bit, so decode
// (dotRow) and prefill (row, then dot3x4) agree exactly — except where the 512-bit linear
// kernels run prefill (wideKernels), which sum in 16 lanes: there the two agree to float32
// rounding, as the fused int4 dot and its prefill always have.
func (w *lutWeight) dotRow(r int, x []float32) float32 {
	base := r * w.cols
	var sum float32
	for g := 0; g < w.lc; g++ {
		p := w.palette(r, g)
		lo := g * w.cg
		xs := x[lo : lo+w.cg]
		if idx, ok := w.packed4(r, g); ok {
			sum += dotLUT4(idx, (*[16]float32)(p), xs)
			continue
		}
		for k := range xs {
			sum += p[w.idx.intAt(base+lo+k)] * xs[k]
		}
	}
	return sum
}

func (w *lutWeight) row(r int, dst []float32) {
	base := r * w.cols
	for g := 0; g < w.lc; g++ {
		p := w.palette(r, g)
		lo := g * w.cg
		d := dst[lo : lo+w.cg]
		if idx, ok := w.packed4(r, g); ok {
			rowLUT4(d, idx, (*[16]float32)(p))
			continue
		}
		for k := range d {
			d[k] = p[w.idx.intAt(base+lo+k)]
		}
	}
}

// constexprOps evaluate weight decompression ops at Open. Their result stays a weightMatrix
// until a consumer needs a plain tensor (see compiler.materialise).
var constexprOps = map[string]func(o *opCtx) error{
	"constexpr_blockwise_shift_scale": compileBlockwise,
	"constexpr_lut_to_dense":          compileLUT,
	"constexpr_affine_dequantize":     compileAffine,
}

func (o *opCtx) defineWeight(w weightMatrix) error {
	outs := o.op.GetOutputs()
	if len(outs) != 1 {
		return o.errf("must have one output")
	}
	tt := outs[0].GetType().GetTensorType()
	dt, shape, err := tensorTypeOf(tt)
	if err != nil || !dt.IsFloat() || slices.Contains(shape, -1) {
		return o.errf("output must be a fixed-shape fp16/fp32 tensor (%v)", err)
	}
	rows, cols := w.dims()
	if rows*cols != numElements(shape) || (len(shape) > 0 && shape[0] != rows) {
		return o.errf("output declared %v, the operands give [%d, %d]", shape, rows, cols)
	}
	if _, half := w.(*halfWeight); o.c.m.opts.HalfWeights && dt == Float16 && !half {
		w = halfMatrix(w)
	}
	o.c.vals[outs[0].GetName()] = &value{w: w, wType: tt, isConst: true}
	return nil
}

// halfMatrix computes w as Options.HalfWeights states: each value rounded to fp16, and for
// a blockwise weight with an offset, data − offset rounded to fp16 first.
func halfMatrix(w weightMatrix) *halfWeight {
	rows, cols := w.dims()
	h := make([]uint16, rows*cols)
	buf := make([]float32, cols)
	bw, _ := w.(*blockwiseWeight)
	for r := range rows {
		if bw != nil && bw.offset != nil {
			bw.rowHalfShift(r, buf)
		} else {
			w.row(r, buf)
		}
		for c, v := range buf {
			h[r*cols+c] = floatToHalf(v)
		}
	}
	return &halfWeight{w: h, rows: rows, cols: cols, lut: halfLUT()}
}

// rowHalfShift is row with each data − offset rounded to fp16 (see halfMatrix); the
// product by the fp16 scale is then exact in float32.
func (w *blockwiseWeight) rowHalfShift(r int, dst []float32) {
	srow := (r / w.rb) * w.sc
	base := r * w.cols
	for c := range dst[:w.cols] {
		b := srow + c/w.cb
		dst[c] = w.scaleAt(b) * roundFP16(float32(w.data.intAt(base+c))-w.offset[b])
	}
}

func compileBlockwise(o *opCtx) error {
	data, err := o.tensor("data")
	if err != nil {
		return err
	}
	// An fp16 scale constant is taken as it is stored (tensor would widen it to float32).
	var scale *Tensor
	if v, err := o.arg("scale"); err == nil && v.t != nil && v.t.DType == Float16 && v.t.f32 == nil && v.t.half != nil {
		scale = v.t
	} else if scale, err = o.floatTensor("scale"); err != nil {
		return err
	}
	var offset *Tensor
	if o.has("offset") {
		if offset, err = o.tensor("offset"); err != nil {
			return err
		}
		if !sameShape(offset.Shape, scale.Shape) {
			return o.errf("offset shape %v differs from scale shape %v", offset.Shape, scale.Shape)
		}
	}
	if len(data.Shape) == 0 || len(scale.Shape) != len(data.Shape) {
		return o.errf("scale rank %d must equal data rank %d (≥1)", len(scale.Shape), len(data.Shape))
	}
	for d := range data.Shape {
		if scale.Shape[d] == 0 || data.Shape[d]%scale.Shape[d] != 0 {
			return o.errf("scale shape %v does not divide data shape %v", scale.Shape, data.Shape)
		}
	}
	// The fused 2-D view needs blocks only along axes 0 and 1 with trailing axes of size 1
	// (linear [out, in], conv [out, in, 1, 1]); anything else is materialised element-wise.
	rows := data.Shape[0]
	cols := data.Len() / max(rows, 1)
	twoD := len(data.Shape) <= 2 || numElements(data.Shape[2:]) == 1
	var sc int
	if len(data.Shape) == 1 {
		sc = 1
	} else {
		sc = scale.Shape[1]
	}
	var off []float32
	if offset != nil {
		off = make([]float32, offset.Len())
		for i := range off {
			off[i] = float32(offset.Float64At(i))
		}
	}
	var sv []float32
	var svH []uint16
	if scale.f32 == nil && scale.half != nil && twoD {
		svH = scale.half
	} else {
		sv = scale.Float32s()
	}
	switch data.DType {
	case Int4, Uint4, Int8, Uint8:
	default:
		twoD = false
	}
	if !twoD {
		// Materialise generally: out[i] = scale[j]·(data[i] − offset[j]) with j the block index.
		dt, shape, err := tensorTypeOf(o.op.GetOutputs()[0].GetType().GetTensorType())
		if err != nil || !dt.IsFloat() {
			return o.errf("output must be fp16/fp32 (%v)", err)
		}
		if !sameShape(shape, data.Shape) {
			return o.errf("output declared %v, data is %v", shape, data.Shape)
		}
		if sv == nil {
			sv = scale.Float32s()
		}
		t := NewTensor(dt, shape...)
		dv := data
		if dv.DType.IsFloat() {
			dv.widen()
		}
		idx := make([]int, len(shape))
		for i := range t.f32 {
			j := 0
			for d := range shape {
				j = j*scale.Shape[d] + idx[d]/(shape[d]/scale.Shape[d])
			}
			q := float32(dv.Float64At(i))
			if off != nil {
				q -= off[j]
			}
			t.f32[i] = sv[j] * q
			for d := len(idx) - 1; d >= 0; d-- {
				if idx[d]++; idx[d] < shape[d] {
					break
				}
				idx[d] = 0
			}
		}
		if dt == Float16 {
			roundSliceFP16(t.f32)
		}
		o.c.vals[o.op.GetOutputs()[0].GetName()] = &value{t: t, isConst: true}
		return nil
	}
	w := &blockwiseWeight{data: data, scale: sv, scaleH: svH, offset: off, rows: rows, cols: cols,
		rb: rows / scale.Shape[0], cb: cols / sc, sc: sc}
	return o.defineWeight(w)
}

func compileLUT(o *opCtx) error {
	if !o.has("indices") {
		return compileLUT16(o)
	}
	if done, err := compileLUTCodes(o); done {
		return err
	}
	idx, err := o.tensor("indices")
	if err != nil {
		return err
	}
	lut, err := o.floatTensor("lut")
	if err != nil {
		return err
	}
	if idx.DType != Uint4 && idx.DType != Uint8 {
		return o.errf("indices dtype %v is not supported (uint4, uint8)", idx.DType)
	}
	pal := 16
	if idx.DType == Uint8 {
		pal = 256
	}
	return defineLUT(o, idx, lut, pal)
}

// defineLUT defines the weight W[r,c] = lut[r/rg, c/cg, idx[r,c]] of pal-entry tables:
// idx uint4, or uint8 holding indices of pal entries (unpacked from 1, 2, 3 or 6 bits).
func defineLUT(o *opCtx, idx, lut *Tensor, pal int) error {
	k := len(idx.Shape)
	if len(lut.Shape) != k+2 || lut.Shape[k+1] != 1 {
		return o.errf("lut shape %v: want rank %d with VECTOR_SIZE 1 (vector LUTs are not supported)", lut.Shape, k+2)
	}
	for d := 0; d < k; d++ {
		if lut.Shape[d] == 0 || idx.Shape[d]%lut.Shape[d] != 0 {
			return o.errf("lut groups %v do not divide indices shape %v", lut.Shape[:k], idx.Shape)
		}
		if d >= 2 && lut.Shape[d] != 1 {
			return o.errf("lut grouped along axis %d is not supported", d)
		}
	}
	if lut.Shape[k] != pal {
		return o.errf("lut has %d entries, the indices need %d", lut.Shape[k], pal)
	}
	rows := idx.Shape[0]
	cols := idx.Len() / max(rows, 1)
	lc := 1
	if k >= 2 {
		lc = lut.Shape[1]
	}
	w := &lutWeight{idx: idx, lut: lut.Float32s(), rows: rows, cols: cols,
		rg: rows / lut.Shape[0], cg: cols / lc, lc: lc, pal: pal}
	return o.defineWeight(w)
}

// compileLUT16 is the iOS16 form: attributes indices (packed uint8 bytes), lut (1-D), shape.
func compileLUT16(o *opCtx) error {
	iv, err := o.attr("indices")
	if err != nil {
		return err
	}
	lv, err := o.attr("lut")
	if err != nil {
		return err
	}
	sv, err := o.attr("shape")
	if err != nil {
		return err
	}
	lut, err := o.c.materialise(lv)
	if err != nil || lut == nil || !lut.DType.IsFloat() {
		return o.errf("lut must be fp16/fp32")
	}
	pal := lut.Len()
	nbits := 0
	for b := 1; b <= 8; b++ {
		if 1<<b == pal {
			nbits = b
		}
	}
	if nbits != 4 && nbits != 8 {
		return o.errf("lut of %d entries: only 4- and 8-bit palettes are supported", pal)
	}
	shape := make([]int, sv.t.Len())
	for i := range shape {
		shape[i] = int(sv.t.intAt(i))
		if shape[i] <= 0 {
			return o.errf("shape %v is invalid", shape)
		}
	}
	n := numElements(shape)
	if len(iv.t.raw)*8 < n*nbits {
		return o.errf("indices hold %d bytes, shape %v needs %d", len(iv.t.raw), shape, (n*nbits+7)/8)
	}
	dt := Uint4
	if nbits == 8 {
		dt = Uint8
	}
	idx := &Tensor{DType: dt, Shape: shape, raw: iv.t.raw}
	rows := shape[0]
	cols := n / rows
	return o.defineWeight(&lutWeight{idx: idx, lut: lut.Float32s(), rows: rows, cols: cols, rg: rows, cg: cols, lc: 1, pal: pal})
}

// compileAffine is constexpr_affine_dequantize (iOS16; attributes): scale·(q − zero_point)
// with scale/zero_point scalar or per-channel along axis. It is materialised.
func compileAffine(o *opCtx) error {
	get := func(k string) (*Tensor, error) {
		v, err := o.attr(k)
		if err != nil {
			return nil, err
		}
		return o.c.materialise(v)
	}
	q, err := get("quantized_data")
	if err != nil {
		return err
	}
	zp, err := get("zero_point")
	if err != nil {
		return err
	}
	sc, err := get("scale")
	if err != nil {
		return err
	}
	ax, err := get("axis")
	if err != nil {
		return err
	}
	axis := int(ax.intAt(0))
	if axis < 0 {
		axis += len(q.Shape)
	}
	if axis < 0 || axis >= len(q.Shape) {
		return o.errf("axis %d out of range for %v", axis, q.Shape)
	}
	dt, shape, err := tensorTypeOf(o.op.GetOutputs()[0].GetType().GetTensorType())
	if err != nil || !dt.IsFloat() || !sameShape(shape, q.Shape) {
		return o.errf("output must be fp16/fp32 of shape %v", q.Shape)
	}
	for _, p := range []*Tensor{zp, sc} {
		if p.Len() != 1 && p.Len() != q.Shape[axis] {
			return o.errf("scale/zero_point of %d elements for axis size %d", p.Len(), q.Shape[axis])
		}
	}
	inner := numElements(q.Shape[axis+1:])
	t := NewTensor(dt, shape...)
	for i := range t.f32 {
		c := (i / inner) % q.Shape[axis]
		z := zp.Float64At(min(c, zp.Len()-1))
		s := sc.Float64At(min(c, sc.Len()-1))
		t.f32[i] = float32(s * (q.Float64At(i) - z))
	}
	if dt == Float16 {
		roundSliceFP16(t.f32)
	}
	o.c.vals[o.op.GetOutputs()[0].GetName()] = &value{t: t, isConst: true}
	return nil
}
