// Package quantize is the quantize/int4 build stage: it turns the 2-D weights of a GGUF
// model into INT4 (or INT8) block-wise affine data or 2- to 8-bit palettes, the forms Core ML's
// constexpr_blockwise_shift_scale and constexpr_lut_to_dense ops (iOS18) decode, and writes
// them to weights.safetensors with a manifest.json naming every tensor's encoding, bits per
// weight and error (docs/quantization.md).
//
// Schemes: block (int4 per block along the input dimension), channel (int4 per output
// channel), lut (2^lut_bits fp16 values per group of output channels, weighted k-means;
// lut4 is lut with 4 bits), gguf
// (ggml blocks transcoded without a second rounding: transcode.go; the artifact then
// refers to the GGUF's blocks, which package qweights reads), auto (gguf, keeping fp16
// what it cannot transcode) and none (everything fp16). Norms,
// biases and small tensors stay fp16; the manifest lists them too, so nothing is left fp16
// silently. The package does not build MIL ops (the exporter does, reading the artifact
// through Open) nor measure perplexity.
//
// Arrays are laid out exactly as MIL blobs want them: a tensor with GGUF ne = [in, out] is
// the row-major [out, in] matrix, quantized along in; 4-bit values are packed LSB-first.
package quantize

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// Stage is the quantize/int4 build stage.
type Stage struct {
	// Calibrate measures activations for the calibration parameter (package calibrate's
	// File); nil makes a calibration an error.
	Calibrate Calibrator
}

// Build quantizes the GGUF of the loader stage into req.OutDir. The artifact is of kind
// "quantized", its Path the directory holding ManifestFile and WeightsFile, and
// Meta["source"] the GGUF path. With scheme none the manifest lists every tensor as fp16
// and the weights file holds no tensor: the exporter then writes the plain fp16 program.
func (s Stage) Build(ctx context.Context, req stage.BuildRequest) (stage.Artifact, error) {
	cfg, err := ParseConfig(req.Params)
	if err != nil {
		return stage.Artifact{}, err
	}
	in, ok := req.Input("gguf")
	if !ok {
		return stage.Artifact{}, fmt.Errorf("quantize/int4 needs a GGUF model from a loader stage")
	}
	f, err := gguf.Open(in.Path)
	if err != nil {
		return stage.Artifact{}, err
	}
	defer f.Close()
	report := req.Report
	if report == nil {
		report = func(stage.Event) {}
	}
	// Scheme none keeps fp16 and transcoding keeps the GGUF's blocks: no activations to measure.
	if cfg.Calibration != "" && cfg.needsActivations(f) {
		if s.Calibrate == nil {
			return stage.Artifact{}, fmt.Errorf("quantize/int4: calibration %s: this build of the stage has no calibrator", cfg.Calibration)
		}
		start := time.Now()
		if cfg.Activations, err = s.Calibrate(ctx, f, cfg.Calibration); err != nil {
			return stage.Artifact{}, fmt.Errorf("quantize/int4: %w", err)
		}
		report(stage.Event{Stage: req.ID, Event: "log", Msg: fmt.Sprintf("calibration: %d tokens of %s in %.1fs",
			cfg.Activations.Tokens, cfg.Calibration, time.Since(start).Seconds())})
	}
	m, err := Quantize(ctx, f, cfg, req.OutDir, func(ev stage.Event) {
		ev.Stage = req.ID
		report(ev)
	})
	if err != nil {
		return stage.Artifact{}, err
	}
	return stage.Artifact{Kind: "quantized", Path: req.OutDir, Meta: map[string]string{
		"source":          in.Path,
		"scheme":          m.Scheme,
		"bits_per_weight": fmt.Sprintf("%.3f", m.BitsPerWeight),
		"weights":         m.Summary,
	}}, nil
}

// Quantize writes the quantized weights of f into dir (ManifestFile and WeightsFile) and
// returns the manifest. Every tensor's encoding is decided, and every configuration error
// reported, before any tensor is touched. Tensors stream through cfg.Threads workers in
// chunks of rows, so memory stays bounded whatever the model size. report (may be nil)
// receives "log" events for notes and warnings and "progress" events in tensors.
func Quantize(ctx context.Context, f *gguf.File, cfg *Config, dir string, report stage.Reporter) (*Manifest, error) {
	if report == nil {
		report = func(stage.Event) {}
	}
	jobs, warnings, err := cfg.plan(f)
	if err != nil {
		return nil, fmt.Errorf("quantize/int4: %s: %w", f.Path, err)
	}
	for _, w := range warnings {
		report(stage.Event{Event: "log", Msg: "warning: " + w})
	}
	// Activation statistics from a calibration text weight every error the codecs minimise
	// (importance per input feature) and drive GPTQ; without a text they are uniform.
	stats := cfg.Activations
	if cfg.Calibration != "" && stats == nil && requantizes(jobs) {
		return nil, fmt.Errorf("quantize/int4: calibration %s was not measured (Config.Activations is nil)", cfg.Calibration)
	}

	var work []*job
	tensors := make([]TensorInfo, len(jobs))
	for i, j := range jobs {
		tensors[i] = j.info
		if !j.quantized() {
			continue
		}
		work = append(work, j)
		if j.info.Note != "" {
			report(stage.Event{Event: "log", Msg: j.info.Name + ": " + j.info.Note})
		}
	}
	summary := weightsSummary(cfg.Scheme, jobs)
	report(stage.Event{Event: "log", Msg: summary})
	w, err := qweights.Create(dir, cfg.Scheme, tensors)
	if err != nil {
		return nil, fmt.Errorf("quantize/int4: %w", err)
	}
	if err := run(ctx, f, cfg, work, stats, w, report); err != nil {
		w.Abort()
		return nil, err
	}
	src, err := filepath.Abs(f.Path) // transcoded tensors are read from it
	if err != nil {
		return nil, fmt.Errorf("quantize/int4: %w", err)
	}
	m := &Manifest{Scheme: cfg.Scheme, Params: cfg.params(), Source: src, SourceSize: f.FileSize(), Warnings: warnings, Summary: summary}
	for _, j := range jobs {
		m.Tensors = append(m.Tensors, j.info)
	}
	if err := w.Commit(m); err != nil {
		return nil, fmt.Errorf("quantize/int4: %w", err)
	}
	return m, nil
}

// chunk is rows [r0, r1) of one tensor, the unit of parallel work.
type chunk struct {
	j      *job
	r0, r1 int
	k      int // index among the tensor's chunks
	state  *tensorState
}

// tensorState gathers a tensor's error over its chunks. Each chunk's sums are kept in its
// slot and added in chunk order once all are in, so that the manifest's rel_rmse does not
// depend on which worker finished first (float64 addition is not associative).
type tensorState struct {
	mu         sync.Mutex
	left       int
	errs, sigs []float64  // per chunk (index r0/chunkRows)
	imp        []float32  // importance per element of a row (LUT: of a group of rows)
	uniform    bool       // every imp is 1 (no calibration)
	gptq       *gptqState // GPTQ error feedback; nil: none
	maxErr     float64    // transcoding: largest |Δ| from ggml's dequantization
	// unfactorable: transcoding with factored scales met a sub-block they cannot hold.
	unfactorable bool
}

// chunkRows picks how many rows a chunk holds: about 256K elements (a 1 MiB float32
// buffer per worker, and writes large enough that their system calls cost little), a
// multiple of the palette group and of 8/gcd(8, bits) rows (even for 4 bits), so that every
// packed array of a chunk starts on a byte; blockwise chunks are a multiple of 8 rows, the
// strips of int4Strip.
func chunkRows(j *job) int {
	in := j.info.Shape[1]
	unit := 8
	if j.lut != nil {
		unit = lcm(8/gcd(8, j.lut.bits), j.lut.group)
	}
	n := max(1, (1<<18)/(in*unit)) * unit
	return n
}

func lcm(a, b int) int { return a / gcd(a, b) * b }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func run(ctx context.Context, f *gguf.File, cfg *Config, work []*job, stats *Activations, w *qweights.Writer, report stage.Reporter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk)
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	var doneMu sync.Mutex
	done := 0
	total := int64(len(work))
	report(stage.Event{Event: "progress", Done: 0, Total: total, Unit: "tensors"})

	// Every source byte is read once, so a chunk's rows are handed back to the kernel as
	// soon as they are quantized: the resident set stays at the workers' buffers, not the
	// model's size.
	var wg sync.WaitGroup
	for range max(1, cfg.Threads) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf workspace
			// Source pages go back in batches: one madvise per chunk would cost a TLB
			// shootdown per 100 KB.
			released := pending{f: f}
			defer released.flush()
			for c := range chunks {
				if ctx.Err() != nil {
					continue
				}
				e, s, err := buf.do(f, c, w)
				released.add(chunkBytes(f, c))
				if err != nil {
					fail(fmt.Errorf("quantize/int4: tensor %q rows [%d, %d): %w", c.j.info.Name, c.r0, c.r1, err))
					continue
				}
				st := c.state
				st.mu.Lock()
				st.errs[c.k], st.sigs[c.k] = e, s
				st.left--
				last := st.left == 0
				st.mu.Unlock()
				if last {
					var errSum, sigSum float64
					for k := range st.errs {
						errSum += st.errs[k]
						sigSum += st.sigs[k]
					}
					if sigSum > 0 {
						c.j.info.RelRMSE = math.Sqrt(errSum / sigSum)
					}
					if c.j.trans {
						c.j.info.MaxAbsErr = st.maxErr
						if st.unfactorable {
							unfactor(&c.j.info)
						}
					}
					doneMu.Lock()
					done++
					report(stage.Event{Event: "progress", Done: int64(done), Total: total, Unit: "tensors", Msg: c.j.info.Name})
					doneMu.Unlock()
				}
			}
		}()
	}
	factors := map[*InputStats]*gptqState{} // tensors reading one activation share U
feed:
	for _, j := range work {
		out, in := j.info.Shape[0], j.info.Shape[1]
		n := chunkRows(j)
		nc := (out + n - 1) / n
		st := &tensorState{left: nc, errs: make([]float64, nc), sigs: make([]float64, nc)}
		var col []float64
		if stats != nil {
			if si := stats.Inputs[j.info.Name]; si != nil && si.Dim == in {
				col = si.SecondMoment
				if cfg.GPTQ && si.Hessian != nil && !j.trans {
					g, ok := factors[si]
					if !ok {
						var err error
						if g, err = newGPTQState(si, cfg.ActOrder); err != nil {
							report(stage.Event{Event: "log", Msg: fmt.Sprintf("warning: %s: no GPTQ: %v", j.info.Name, err)})
						}
						factors[si] = g
					}
					st.gptq = g
				}
			}
		}
		st.imp = importanceFor(col, in, j)
		st.uniform = isUniform(st.imp)
		for r0 := 0; r0 < out; r0 += n {
			select {
			case chunks <- chunk{j, r0, min(out, r0+n), r0 / n, st}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(chunks)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// pending gathers the source bytes a worker has finished with into one span of f's
// mapping, released once it reaches pendingBytes. The span may cover chunks another worker
// is still reading; releasing a read-only file mapping under a reader only makes it fault
// the pages in again.
type pending struct {
	f  *gguf.File
	lo unsafe.Pointer // start of the span (nil: empty)
	n  uintptr        // its length
}

const pendingBytes = 32 << 20

func (p *pending) add(b []byte) {
	if len(b) == 0 {
		return
	}
	lo := unsafe.Pointer(unsafe.SliceData(b))
	hi := uintptr(lo) + uintptr(len(b))
	if p.lo == nil {
		p.lo, p.n = lo, uintptr(len(b))
	} else {
		hi = max(hi, uintptr(p.lo)+p.n)
		if uintptr(lo) < uintptr(p.lo) {
			p.lo = lo
		}
		p.n = hi - uintptr(p.lo)
	}
	if p.n >= pendingBytes {
		p.flush()
	}
}

func (p *pending) flush() {
	if p.lo != nil {
		p.f.Release(unsafe.Slice((*byte)(p.lo), p.n))
	}
	p.lo, p.n = nil, 0
}

// chunkBytes is the source bytes of a chunk's rows (nil if the row size is invalid, which
// plan has ruled out).
func chunkBytes(f *gguf.File, c chunk) []byte {
	t := c.j.src
	rb, err := t.Type.RowBytes(int64(c.j.info.Shape[1]))
	if err != nil {
		return nil
	}
	return f.Data(t)[int64(c.r0)*rb : int64(c.r1)*rb]
}

// importanceFor expands per-input-channel importance (nil: uniform) to the element
// weights a codec takes: one row's worth for blockwise, one group's for LUT. It is scaled
// to mean 1, which leaves every argmin unchanged.
func importanceFor(col []float64, in int, j *job) []float32 {
	w := make([]float32, in)
	if len(col) == in {
		var sum float64
		for _, v := range col {
			sum += float64(v)
		}
		mean := sum / float64(in)
		for i, v := range col {
			if mean > 0 {
				// A floor keeps features the text never excites from being ignored.
				w[i] = float32(max(v/mean, 1e-3))
			} else {
				w[i] = 1
			}
		}
	} else {
		for i := range w {
			w[i] = 1
		}
	}
	if j.lut == nil {
		return w
	}
	g := make([]float32, 0, in*j.lut.group)
	for range j.lut.group {
		g = append(g, w...)
	}
	return g
}

// workspace holds one worker's buffers, reused across chunks.
type workspace struct {
	x, ref []float32
	w      []float32 // GPTQ: the row being compensated
	// GPTQ per-channel scratch: dequantized candidate, its difference, its levels.
	deq, diff []float32
	qp        []int32
	q, z      []int32
	scale     []uint16
	bytes     []byte
	// Strip kernel (stripF16): packed levels, per-row sums, the kernel's buffers.
	packed []byte
	rowErr []float64
	strip  int4Rows
	lut    *lutScratch // palettization buffers, made on first use
}

// palettes returns the worker's palettization buffers.
func (ws *workspace) palettes() *lutScratch {
	if ws.lut == nil {
		ws.lut = new(lutScratch)
	}
	return ws.lut
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// do quantizes one chunk and writes its part of every array.
func (ws *workspace) do(f *gguf.File, c chunk, w *qweights.Writer) (errSum, sigSum float64, err error) {
	j := c.j
	in := j.info.Shape[1]
	rows := c.r1 - c.r0
	n := rows * in
	ws.q = grow(ws.q, n)
	if j.trans {
		return ws.transcode(f, c)
	}
	if j.block != nil && c.state.gptq == nil && j.src.Type == ggml.F16 && j.block.canStrip() {
		if e, s, ok, err := ws.stripF16(f, c, w); ok || err != nil {
			return e, s, err
		}
		// A non-finite weight: the portable path below reports it as the loader does.
	}
	if j.lut != nil && !j.lut.channelScale && c.state.gptq == nil && j.src.Type == ggml.F16 && lutFromF16 {
		if e, s, ok, err := ws.lutF16(f, c, w); ok || err != nil {
			return e, s, err
		}
		// A non-finite weight, as above.
	}
	ws.x = grow(ws.x, n)
	if err := decodeRows(f, j.src, c.r0, rows, ws.x); err != nil {
		return 0, 0, err
	}
	name := j.info.Name
	switch {
	case j.lut != nil && j.lut.channelScale:
		return ws.lutChannel(j, c.state.imp, c.state.gptq, c.r0, rows, w)
	case j.lut != nil:
		g, K := j.lut.group, j.lut.entries()
		groups := rows / g
		ws.scale = grow(ws.scale, groups*K)
		for k := 0; k < groups; k++ {
			xs, qs, lut := ws.x[k*g*in:(k+1)*g*in], ws.q[k*g*in:(k+1)*g*in], ws.scale[k*K:(k+1)*K]
			if c.state.gptq == nil {
				e, s := j.lut.quantizeGroup(ws.palettes(), xs, c.state.imp, qs, lut)
				errSum += e
				sigSum += s
				continue
			}
			e, s := j.lut.groupGPTQ(xs, c.state.imp, g, c.state.gptq, ws, qs, lut)
			errSum += e
			sigSum += s
		}
		if err := ws.writeIndices(w, name+".data", c.r0*in, ws.q[:n], j.lut.bits); err != nil {
			return 0, 0, err
		}
		return errSum, sigSum, ws.writeF16(w, name+".lut", c.r0/g*K, ws.scale[:groups*K])
	default:
		b := j.block
		nb := in / b.block
		ws.scale = grow(ws.scale, rows*nb)
		ws.z = grow(ws.z, rows*nb)
		ws.w = grow(ws.w, in)
		for r := 0; r < rows; r++ {
			x, q, sc, z := ws.x[r*in:(r+1)*in], ws.q[r*in:(r+1)*in], ws.scale[r*nb:(r+1)*nb], ws.z[r*nb:(r+1)*nb]
			var e, s float64
			switch g := c.state.gptq; {
			case g != nil && b.block == in:
				e, s = b.channelRowGPTQ(x, c.state.imp, g, ws, q, sc, z)
			case g != nil:
				e, s = b.quantizeRowGPTQ(x, c.state.imp, g.u, ws.w, q, sc, z)
			default:
				e, s = b.quantizeRow(x, c.state.imp, q, sc, z)
			}
			errSum += e
			sigSum += s
		}
		return errSum, sigSum, ws.writeBlockwise(w, j, c.r0, rows, nil)
	}
}

// stripF16 quantizes an F16 chunk to symmetric int4 straight from the mapped fp16 bytes
// (blockCodec.quantizeF16: the strip kernel, same output as decodeRows + quantizeRow) and
// writes its data and scales. ok is false, with nothing written, when the chunk holds a
// non-finite weight.
func (ws *workspace) stripF16(f *gguf.File, c chunk, w *qweights.Writer) (errSum, sigSum float64, ok bool, err error) {
	j := c.j
	in, rows := j.info.Shape[1], c.r1-c.r0
	nb := in / j.block.block
	src, ok := f16Rows(f, c)
	if !ok {
		return 0, 0, false, nil
	}
	ws.packed = grow(ws.packed, rows*in/2)
	ws.scale = grow(ws.scale, rows*nb)
	ws.rowErr = grow(ws.rowErr, 2*rows)
	rowErr, rowSig := ws.rowErr[:rows], ws.rowErr[rows:]
	if !j.block.quantizeF16(&ws.strip, src, in, c.state.imp, ws.packed, ws.scale, rowErr, rowSig) {
		return 0, 0, false, nil
	}
	for r := range rowErr { // in row order, as do sums quantizeRow's results
		errSum += rowErr[r]
		sigSum += rowSig[r]
	}
	if err := w.WriteTensorAt(j.info.Name+".data", int64(c.r0*in/2), ws.packed); err != nil {
		return 0, 0, true, err
	}
	return errSum, sigSum, true, ws.writeF16(w, j.info.Name+".scale", c.r0*nb, ws.scale)
}

// f16Rows returns the mapped fp16 bytes of chunk c's rows; ok is false if the tensor's
// data is shorter than its shape says (the plan has ruled this out; decodeRows then says
// what is wrong).
func f16Rows(f *gguf.File, c chunk) (src []byte, ok bool) {
	in := c.j.info.Shape[1]
	src = f.Data(c.j.src)
	if int64(len(src)) < 2*int64(c.r1)*int64(in) {
		return nil, false
	}
	return src[2*c.r0*in : 2*c.r1*in], true
}

// lutFromF16 turns on lutF16 for F16 sources; tests turn it off to compare it with the
// portable path (decodeRows + quantizeGroup).
var lutFromF16 = true

// lutF16 palettizes an F16 chunk straight from the mapped fp16 bytes
// (lutCodec.quantizeGroupF16: same output as decodeRows + quantizeGroup) and writes its
// indices and palettes. ok is false, with nothing written, when the chunk holds a
// non-finite weight.
func (ws *workspace) lutF16(f *gguf.File, c chunk, w *qweights.Writer) (errSum, sigSum float64, ok bool, err error) {
	j := c.j
	in, rows, g, K := j.info.Shape[1], c.r1-c.r0, j.lut.group, j.lut.entries()
	src, ok := f16Rows(f, c)
	if !ok {
		return 0, 0, false, nil
	}
	n, groups := rows*in, rows/g
	ws.q = grow(ws.q, n)
	ws.scale = grow(ws.scale, groups*K)
	s := ws.palettes()
	imp := c.state.imp
	if c.state.uniform {
		imp = nil
	}
	for k := range groups {
		ge := g * in // elements of a group
		e, ss, ok := j.lut.quantizeGroupF16(s, src[2*k*ge:2*(k+1)*ge], imp, ws.q[k*ge:(k+1)*ge], ws.scale[k*K:(k+1)*K])
		if !ok {
			return 0, 0, false, nil
		}
		errSum += e
		sigSum += ss
	}
	if err := ws.writeIndices(w, j.info.Name+".data", c.r0*in, ws.q[:n], j.lut.bits); err != nil {
		return 0, 0, true, err
	}
	return errSum, sigSum, true, ws.writeF16(w, j.info.Name+".lut", c.r0/g*K, ws.scale[:groups*K])
}

// decodeRows widens rows [r0, r0+n) of t into dst, as f.DequantizeRows does. F16, the
// usual source of a quantization, takes a fast path: a table lookup per element and a
// non-finite test on the bits (exponent all ones, IEEE 754 binary16) folded into one OR per
// row; a row that fails it goes to f.DequantizeRows for the loader's error, which names the
// tensor, row and element.
func decodeRows(f *gguf.File, t *gguf.Tensor, r0, n int, dst []float32) error {
	if t.Type != ggml.F16 || len(t.Shape) == 0 || int64(len(dst)) != int64(n)*t.Shape[0] || r0 < 0 || int64(r0+n) > t.Rows() {
		return f.DequantizeRows(t, int64(r0), int64(n), dst)
	}
	in := int(t.Shape[0])
	src := f.Data(t)[2*r0*in : 2*(r0+n)*in]
	for r := 0; r < n; r++ {
		row, out := src[2*r*in:2*(r+1)*in], dst[r*in:(r+1)*in]
		var inf uint16
		for i := range out {
			h := binary.LittleEndian.Uint16(row[2*i:])
			// Non-finite iff h&0x7c00 == 0x7c00; (h&0x7c00)+0x0400 carries into bit 15
			// exactly then, so OR-ing it over the row tests every element at once.
			inf |= (h & 0x7c00) + 0x0400
			out[i] = f16Table[h]
		}
		if inf&0x8000 != 0 {
			return f.DequantizeRows(t, int64(r0+r), 1, out)
		}
	}
	return nil
}

// writeBlockwise writes data (ws.q), scales (ws.scale) and offsets (ws.z, or fp16 offsets
// when given) of rows [r0, r0+rows).
func (ws *workspace) writeBlockwise(w *qweights.Writer, j *job, r0, rows int, f16off []uint16) error {
	in, nb := j.info.Shape[1], j.info.Shape[1]/j.info.BlockSize
	name := j.info.Name
	n := rows * in
	var err error
	if j.info.DType == "int4" || j.info.DType == "uint4" {
		err = ws.write4(w, name+".data", r0*in, ws.q[:n])
	} else {
		err = ws.write8(w, name+".data", r0*in, ws.q[:n])
	}
	if err != nil {
		return err
	}
	if err := ws.writeF16(w, name+".scale", r0*nb, ws.scale[:rows*nb]); err != nil {
		return err
	}
	switch j.info.Offset {
	case "":
		return nil
	case "fp16":
		return ws.writeF16(w, name+".offset", r0*nb, f16off)
	case "int4", "uint4":
		return ws.write4(w, name+".offset", r0*nb, ws.z[:rows*nb])
	default:
		return ws.write8(w, name+".offset", r0*nb, ws.z[:rows*nb])
	}
}

// write4 packs vals, which start at element e0 (even) of the array.
func (ws *workspace) write4(w *qweights.Writer, name string, e0 int, vals []int32) error {
	ws.bytes = grow(ws.bytes, packedBytes(len(vals)))
	pack4(ws.bytes, vals)
	return w.WriteTensorAt(name, int64(e0/2), ws.bytes)
}

// writeIndices writes palette indices of the given width packed LSB-first (MIL's sub-byte
// packing, as write4 packs 4-bit values), element e0 on; e0·bits falls on a byte
// (chunkRows).
func (ws *workspace) writeIndices(w *qweights.Writer, name string, e0 int, vals []int32, bits int) error {
	if bits == 4 {
		return ws.write4(w, name, e0, vals)
	}
	ws.bytes = grow(ws.bytes, (len(vals)*bits+7)/8)
	packIndices(ws.bytes, vals, bits)
	return w.WriteTensorAt(name, int64(e0*bits/8), ws.bytes)
}

// packIndices packs vals, each < 2^bits, into dst as bits-wide fields LSB-first (MIL's
// sub-byte packing: element 0 in the low bits of byte 0).
func packIndices(dst []byte, vals []int32, bits int) {
	var acc uint32
	var n, o int
	for _, v := range vals {
		acc |= uint32(v) << n
		if n += bits; n >= 8 {
			dst[o] = byte(acc)
			o, acc, n = o+1, acc>>8, n-8
		}
	}
	if n > 0 {
		dst[o] = byte(acc)
	}
}

func (ws *workspace) write8(w *qweights.Writer, name string, e0 int, vals []int32) error {
	ws.bytes = grow(ws.bytes, len(vals))
	for i, v := range vals {
		ws.bytes[i] = byte(v)
	}
	return w.WriteTensorAt(name, int64(e0), ws.bytes)
}

func (ws *workspace) writeF16(w *qweights.Writer, name string, e0 int, vals []uint16) error {
	ws.bytes = grow(ws.bytes, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(ws.bytes[2*i:], v)
	}
	return w.WriteTensorAt(name, int64(2*e0), ws.bytes)
}
