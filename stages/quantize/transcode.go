package quantize

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// ggufChoice decides a 2-D weight's encoding under scheme gguf (or auto): a transcodable
// type is transcoded; an F32/F16/BF16 one stays fp16 (no blocks to transcode) unless a
// fallback is set; any other quantized type needs the fallback, which re-quantizes its
// dequantized values. done reports that j is fully decided (transcoded or fp16);
// otherwise choice names the fallback scheme for Config.choose.
func (c *Config) ggufChoice(j *job) (choice string, done bool, err error) {
	t := j.src
	if tr, ok := qweights.TranscodingOf(t.Type); ok && t.Shape[0]%int64(tr.Block) == 0 {
		// The arrays stay in the GGUF as its blocks: the exporter reads them through
		// qweights, so the weights are written once, into the package.
		j.trans = true
		j.info.Encoding, j.info.DType, j.info.Offset, j.info.BlockSize = tr.Encoding, tr.DType, tr.Offset, tr.Block
		j.info.ScaleGroup = tr.ScaleGroup(t.Type)
		j.info.SourceType, j.info.Bound, j.info.Stored = t.Type.String(), tr.Bound, qweights.StoredSource
		j.info.Note = t.Type.String() + " transcoded"
		return "", true, nil
	}
	fallback := c.Fallback
	switch t.Type {
	case ggml.F32, ggml.F16, ggml.BF16:
		if fallback == "" {
			j.info.Note = t.Type.String() + " source: kept fp16 (no blocks to transcode; set fallback to quantize it)"
			return "", true, nil
		}
	default:
		if fallback == "" && c.Scheme == "auto" {
			// auto never fails a model: what it cannot transcode stays fp16 (ggml's values).
			fallback = "fp16"
		}
		if fallback == "" {
			return "", false, fmt.Errorf("tensor %q: scheme gguf cannot transcode %v without loss beyond fp16 rounding "+
				"(Core ML's constexpr ops have no form for its blocks); set fallback: fp16 (ggml's values, 16 bits), "+
				"int8, block, channel or lut4 (re-quantized)", t.Name, t.Type)
		}
	}
	j.info.Note = t.Type.String() + ": fallback " + fallback
	if fallback == "fp16" {
		return "", true, nil
	}
	return fallback, false, nil
}

// measureEvery: the error of a transcoded tensor is measured on one chunk of rows in
// measureEvery (the first always). Measuring a chunk costs several times its transcoding
// (the int32 levels, ggml's dequantization and the error of every element), so measuring
// every chunk would make the figure, whose bound holds by construction (TestTranscodeBound
// checks every element of every fixture), the conversion's main cost; one chunk of 256K
// weights in 128 samples about 1% of a model (every matrix's first chunk, and one more in
// each Phi-2 FFN matrix).
const measureEvery = 128

// transcode checks and measures one chunk of a transcoded tensor, writing nothing: its
// arrays are read from the GGUF's blocks when the exporter wants them (qweights.Set.Rows),
// so that conversion writes the weights once. Every block's fp16 fields are checked: one
// that is not finite (a corrupt d or dmin) is refused, naming the tensor, row and block.
// On the chunks measured (measureEvery), the blocks are transcoded as the reader will and
// compared with ggml's own dequantization of the same rows (ggml.DequantizeRow) for the
// manifest's error, and a scale or offset that would overflow fp16 is refused (a fallback
// then handles the tensor; elsewhere the export refuses it, naming it the same way). Q4_0
// is exact by construction (its d is the scale, q − 8 the data): only its scales are
// checked.
func (ws *workspace) transcode(f *gguf.File, c chunk) (errSum, sigSum float64, err error) {
	j := c.j
	t := j.src
	tr, _ := qweights.TranscodingOf(t.Type)
	in, rows := j.info.Shape[1], c.r1-c.r0
	rowBytes, err := t.Type.RowBytes(int64(in))
	if err != nil {
		return 0, 0, err
	}
	raw := f.Data(t)[int64(c.r0)*rowBytes : int64(c.r1)*rowBytes]
	f.Prefetch(raw)
	if j.info.ScaleGroup > 0 && !tr.Factorable(t.Type, raw) {
		c.state.noteUnfactorable()
	}
	if tr.FiniteScales(t.Type, raw) && (t.Type == ggml.Q4_0 || c.k%measureEvery != 0) {
		return 0, 0, nil
	}
	n := rows * in
	ws.q = grow(ws.q, n)
	ws.scale = grow(ws.scale, n/tr.Block)
	var off []uint16
	if tr.Offset != "" {
		off = make([]uint16, n/tr.Block)
	}
	if err := tr.Rows(t.Type, raw, in, ws.q, ws.scale, off); err != nil {
		var be *qweights.BlockError
		if !errors.As(err, &be) {
			return 0, 0, err
		}
		where := fmt.Sprintf("tensor %q (%v) row %d block %d", t.Name, t.Type, c.r0+be.Row, be.Block)
		if be.NonFinite {
			// The loader's error names the element too, when the scale reaches one.
			lerr := f.DequantizeRows(t, int64(c.r0+be.Row), 1, make([]float32, in))
			if lerr == nil {
				lerr = errors.New("corrupt data")
			}
			return 0, 0, fmt.Errorf("%s: %s: %w", where, be.Msg, lerr)
		}
		return 0, 0, fmt.Errorf("%s: %s; set fallback: fp16 (or int8) to re-encode the tensor", where, be.Msg)
	}
	ws.x = grow(ws.x, n)
	if err := ggml.DequantizeRow(t.Type, raw, ws.x); err != nil {
		return 0, 0, err
	}
	var maxErr float64
	for k := range n / tr.Block {
		sc := f16Table[ws.scale[k]]
		var o float32
		if off != nil {
			o = f16Table[off[k]]
		}
		var es, ss float32 // float32 within a sub-block, float64 across them
		for e := k * tr.Block; e < (k+1)*tr.Block; e++ {
			r := ws.x[e]
			d := r - float32(sc*(float32(ws.q[e])-o)) // unfused, as in quantizeRow
			es += float32(d * d)
			ss += float32(r * r)
			maxErr = max(maxErr, math.Abs(float64(d)))
		}
		errSum += float64(es)
		sigSum += float64(ss)
	}
	c.state.noteMaxErr(maxErr)
	return errSum, sigSum, nil
}

// noteUnfactorable records that a chunk has a sub-block factored scales cannot hold
// (qweights.Transcoding.Factorable): the tensor keeps fp16 scales.
func (st *tensorState) noteUnfactorable() {
	st.mu.Lock()
	st.unfactorable = true
	st.mu.Unlock()
}

// noteMaxErr records a chunk's largest |Δ| in the tensor's.
func (st *tensorState) noteMaxErr(e float64) {
	st.mu.Lock()
	st.maxErr = max(st.maxErr, e)
	st.mu.Unlock()
}

// weightsSummary says in one line what happened to the model's weights, by source type:
// "weights: 14 Q4_K → blockwise int4/32 (within fp16 rounding of scales and offsets), …;
// kept fp16: 9 F32, 2 Q6_K (fallback fp16)". The count of a group is of tensors.
//
// Under scheme gguf, float weights kept as they are get a note saying so: they have no
// blocks to transcode, and a fallback would quantize them.
func weightsSummary(scheme string, jobs []*job) string {
	type group struct {
		key string
		n   int
	}
	var done, kept []*group
	add := func(gs *[]*group, key string) {
		for _, g := range *gs {
			if g.key == key {
				g.n++
				return
			}
		}
		*gs = append(*gs, &group{key, 1})
	}
	floats := 0 // 2-D float weights kept fp16
	for _, j := range jobs {
		src := j.src.Type.String()
		ti := &j.info
		if !j.quantized() && len(ti.Shape) == 2 && isWeight(j.src) &&
			(j.src.Type == ggml.F32 || j.src.Type == ggml.F16 || j.src.Type == ggml.BF16) {
			floats++
		}
		switch {
		case j.trans:
			how := "exact"
			switch ti.Bound {
			case qweights.BoundScale:
				how = "within fp16 rounding of the scales"
			case qweights.BoundOffset:
				how = "within fp16 rounding of the offsets"
			case qweights.BoundScaleMin:
				how = "within fp16 rounding of scales and offsets"
			}
			add(&done, fmt.Sprintf("%s → %s %s/%d (%s)", src, ti.Encoding, ti.DType, ti.BlockSize, how))
		case ti.Encoding == Blockwise:
			add(&done, fmt.Sprintf("%s → blockwise %s/%d (re-quantized)", src, ti.DType, ti.BlockSize))
		case ti.Encoding == LUT:
			add(&done, fmt.Sprintf("%s → lut %s (re-quantized)", src, ti.DType))
		case ti.Encoding == LUTBlockwise: // palettes with per-channel scales (lut_scale)
			add(&done, fmt.Sprintf("%s → lut+blockwise %s (re-quantized)", src, ti.DType))
		case len(ti.Shape) < 2:
			add(&kept, src+" 1-D")
		default:
			add(&kept, src)
		}
	}
	join := func(gs []*group) string {
		var s string
		for i, g := range gs {
			if i > 0 {
				s += ", "
			}
			s += fmt.Sprintf("%d %s", g.n, g.key)
		}
		return s
	}
	out := "weights: " + join(done)
	switch {
	case len(done) == 0:
		out += "all kept fp16: " + join(kept)
	case len(kept) > 0:
		out += "; kept fp16: " + join(kept)
	}
	if floats > 0 && scheme == "gguf" {
		out += fmt.Sprintf(" (scheme %s transcodes ggml blocks: the %d float weights have none and stay fp16; "+
			"fallback: block, channel or lut4, or that scheme, quantizes them)", scheme, floats)
	}
	return out
}

// unfactor gives a transcoded tensor fp16 scales instead of factored ones: it has a
// sub-block whose scale rounds to zero while its min does not (all of its values the
// constant −m), which only an fp16 scale of its own can hold.
func unfactor(ti *TensorInfo) {
	ti.ScaleGroup = 0
	setBits(ti) // fp16 scales store what factored ones did and more: no new error
	ti.Note += "; fp16 scales: a sub-block is constant (scale 0, min not)"
}

// Describe says in one line what scheme (auto: the default pipeline's) would make of f's
// weights — what a build prints, by source type — without reading any tensor data; the
// error is the one the build would stop with.
func Describe(f *gguf.File, scheme string) (string, error) {
	cfg, err := ParseConfig(stage.Params{"scheme": scheme})
	if err != nil {
		return "", err
	}
	jobs, _, err := cfg.plan(f)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(weightsSummary(cfg.Scheme, jobs), "weights: "), nil
}
