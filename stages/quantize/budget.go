package quantize

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// Mixed precision under a bit budget. Every re-quantized tensor starts on the stage's
// scheme and may climb a ladder of dearer encodings: grouped scales (a 4-bit channel row
// split into two scale groups) or wider palettes (up to 6 bits), and then int8 per channel.
// Which tensors climb is decided by their sensitivity on the calibration text: the relative output error
// ‖(W − Ŵ)·X‖² / ‖W·X‖² that each encoding leaves (measured by quantizing the tensor with
// the same GPTQ codecs the stage then uses). A greedy allocation takes, step by step, the
// upgrade that removes the most relative output error per added bit until the mean bits per
// quantized weight would exceed the budget. Summing relative errors weighs every linear
// layer alike, as a layer's noise reaches the loss through the residual stream whatever the
// layer's size.

// rung is one encoding a tensor may take.
type rung struct {
	info  TensorInfo
	block *blockCodec
	lut   *lutCodec
	bits  float64 // stored bits over elements
	err   float64 // relative output error on the calibration text
}

// ladder lists the encodings a re-quantized job may climb to, cheapest first; the first is
// the job's own.
func (c *Config) ladder(j *job) []rung {
	out := []rung{{info: j.info, block: j.block, lut: j.lut}}
	in := j.info.Shape[1]
	if b := j.block; b != nil && b.block == in && (b.dtype == "int4" || b.dtype == "uint4") && !c.ActOrder {
		// Two scale groups per row: the cheapest step up from one scale per channel
		// (16 or 20 bits more per row).
		if g := nearestDivisor(in, in/2); g < in && g >= 16 {
			r := rung{info: j.info, block: &blockCodec{dtype: b.dtype, symmetric: b.symmetric, block: g, search: b.search}}
			r.info.BlockSize = g
			out = append(out, r)
		}
	}
	if l := j.lut; l != nil {
		// Wider palettes, up to 6 bits: past them int8 per channel costs about what an 8-bit
		// palette does.
		for _, b := range LUTWidths {
			if b <= l.bits || b > 6 {
				continue
			}
			g := l.group
			if c.GroupSize == 0 {
				g = paletteGroup(j.info.Shape[0], in, b)
			}
			r := rung{info: j.info}
			r.lut = c.palettize(&r.info, b, g)
			out = append(out, r)
		}
	}
	if j.block == nil || j.block.dtype != "int8" {
		r := rung{info: j.info, block: &blockCodec{dtype: "int8", symmetric: true, block: in}}
		r.info.Encoding, r.info.DType, r.info.BlockSize, r.info.Offset, r.info.GroupSize = Blockwise, "int8", in, "", 0
		out = append(out, r)
	}
	return out
}

// allot spends the bit budget (c.BitsBudget bits per quantized weight, on average) on the
// tensors whose output error falls most per added bit, noting each upgrade on its tensor.
// It needs the calibration's activations (Hessians) to rank tensors.
func (c *Config) allot(f *gguf.File, jobs []*job) error {
	if c.Activations == nil {
		return fmt.Errorf("bits_budget %.2f needs a calibration text to rank the tensors by sensitivity", c.BitsBudget)
	}
	type cand struct {
		j      *job
		rungs  []rung
		at     int
		elems  float64
		closed []bool // rungs the budget cannot afford
		g      *gptqState
		imp    []float32 // per input feature
	}
	var cands []*cand
	var total, spent float64
	factors := map[*InputStats]*gptqState{}
	for _, j := range jobs {
		if !j.quantized() {
			continue
		}
		n := float64(j.src.Elements())
		total += n
		bits, err := j.info.StoredBits()
		if err != nil {
			return fmt.Errorf("tensor %q: %w", j.info.Name, err)
		}
		spent += float64(bits)
		if j.block == nil && j.lut == nil {
			continue // transcoded: not ours to change
		}
		si := c.Activations.Inputs[j.info.Name]
		if si == nil || si.Dim != j.info.Shape[1] || si.Hessian == nil {
			continue // no sensitivity to rank it by: it keeps the scheme
		}
		g, ok := factors[si]
		if !ok {
			if g, err = newGPTQState(si, c.ActOrder); err != nil {
				return fmt.Errorf("tensor %q: %w", j.info.Name, err)
			}
			factors[si] = g
		}
		cd := &cand{j: j, rungs: c.ladder(j), elems: n, g: g,
			imp: importanceFor(si.SecondMoment, j.info.Shape[1], &job{})}
		cd.closed = make([]bool, len(cd.rungs))
		for k := range cd.rungs {
			r := &cd.rungs[k]
			b, err := r.info.StoredBits()
			if err != nil {
				return fmt.Errorf("tensor %q: %w", j.info.Name, err)
			}
			r.bits = float64(b) / n
		}
		cands = append(cands, cd)
	}
	// Measuring costs about what quantizing does, once per rung: spread it over the workers.
	type task struct {
		cd *cand
		r  *rung
	}
	tasks := make(chan task)
	errs := make([]error, max(1, c.Threads))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			ws := new(workspace)
			for t := range tasks {
				if errs[w] == nil {
					t.r.err, errs[w] = rungError(f, t.cd.j, t.r, t.cd.imp, t.cd.g, ws)
				}
			}
		})
	}
	for _, cd := range cands {
		for k := range cd.rungs {
			tasks <- task{cd, &cd.rungs[k]}
		}
	}
	close(tasks)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	budget := c.BitsBudget * total
	for {
		best, bestK, bestGain := (*cand)(nil), 0, 0.0
		for _, cd := range cands {
			cur := cd.rungs[cd.at]
			for k := cd.at + 1; k < len(cd.rungs); k++ {
				r := cd.rungs[k]
				extra := (r.bits - cur.bits) * cd.elems
				if cd.closed[k] || extra <= 0 || r.err >= cur.err {
					continue
				}
				if spent+extra > budget {
					cd.closed[k] = true
					continue
				}
				if gain := (cur.err - r.err) / extra; gain > bestGain {
					best, bestK, bestGain = cd, k, gain
				}
			}
		}
		if best == nil {
			break
		}
		spent += (best.rungs[bestK].bits - best.rungs[best.at].bits) * best.elems
		best.at = bestK
	}
	for _, cd := range cands {
		if cd.at == 0 {
			continue
		}
		r, j := cd.rungs[cd.at], cd.j
		j.info, j.block, j.lut = r.info, r.block, r.lut
		j.info.Note = joinNote(j.info.Note, fmt.Sprintf("bits_budget: %s (output error %.2g%% → %.2g%%)",
			describe(r.info), 100*cd.rungs[0].err, 100*r.err))
	}
	return nil
}

// describe names an encoding for a note: "int8 per channel", "uint4 block 86".
func describe(ti TensorInfo) string {
	switch {
	case ti.Encoding == LUT:
		return fmt.Sprintf("%s palette per %d channels", ti.DType, ti.GroupSize)
	case ti.Encoding == LUTBlockwise && ti.GroupSize > 0:
		return fmt.Sprintf("%s palette per %d channels, scale per channel", ti.DType, ti.GroupSize)
	case ti.BlockSize == ti.Shape[1]:
		return ti.DType + " per channel"
	}
	return fmt.Sprintf("%s block %d", ti.DType, ti.BlockSize)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// rungError quantizes every row of j's tensor with rung r as the stage would (GPTQ on g),
// streaming it in chunks of rows, and returns the relative output error
// Σ (x − x̂)ᵀ·H·(x − x̂) / Σ xᵀ·H·x over the rows.
func rungError(f *gguf.File, j *job, r *rung, imp []float32, g *gptqState, ws *workspace) (float64, error) {
	out, in := r.info.Shape[0], r.info.Shape[1]
	unit := 1
	if r.lut != nil {
		unit = r.lut.group
	}
	step := max(1, (1<<18)/(in*unit)) * unit
	x := make([]float32, min(step, out)*in)
	var e, s float64
	for r0 := 0; r0 < out; r0 += step {
		rows := min(step, out-r0)
		xs := x[:rows*in]
		if err := decodeRows(f, j.src, r0, rows, xs); err != nil {
			return 0, err
		}
		ce, cs := outputErrors(r, xs, imp, g, ws)
		e += ce
		s += cs
	}
	if s == 0 {
		return 0, nil
	}
	return math.Max(e/s, 0), nil
}

// outputErrors quantizes the rows x (row-major, whole palette groups) with rung r and
// returns Σ (x − x̂)ᵀ·H·(x − x̂) and Σ xᵀ·H·x over them.
func outputErrors(r *rung, x, imp []float32, g *gptqState, ws *workspace) (e, s float64) {
	in := r.info.Shape[1]
	out := len(x) / in
	deq := make([]float32, len(x))
	ws.q = grow(ws.q, len(x))
	ws.w = grow(ws.w, in)
	switch {
	case r.lut != nil:
		gs := r.lut.group
		lut := make([]uint16, r.lut.entries())
		groupImp := make([]float32, gs*in)
		for i := range groupImp {
			groupImp[i] = imp[i%in]
		}
		// With a scale per channel the rows are palettized divided by it, the weights
		// times its square (as lutChannel does).
		xn, scale := x, []float32(nil)
		if r.lut.channelScale {
			xn, scale = make([]float32, len(x)), make([]float32, out)
			for row := range out {
				scale[row] = rowScale(x[row*in:(row+1)*in], xn[row*in:(row+1)*in])
			}
		}
		wt := groupImp
		if scale != nil {
			wt = make([]float32, gs*in)
		}
		for k := 0; k < out/gs; k++ {
			if scale != nil {
				channelWeights(wt, groupImp, gs, in, func(r int) float32 { return scale[k*gs+r] })
			}
			xs, qs := xn[k*gs*in:(k+1)*gs*in], ws.q[k*gs*in:(k+1)*gs*in]
			r.lut.groupGPTQ(xs, wt, gs, g, ws, qs, lut)
			for i, q := range qs {
				v := f16Table[lut[q]]
				if scale != nil {
					v *= scale[k*gs+i/in]
				}
				deq[k*gs*in+i] = v
			}
		}
	default:
		b := r.block
		nb := in / b.block
		scale, zero := make([]uint16, nb), make([]int32, nb)
		for row := 0; row < out; row++ {
			xs, qs := x[row*in:(row+1)*in], ws.q[row*in:(row+1)*in]
			clear(zero)
			if b.block == in {
				b.channelRowGPTQ(xs, imp, g, ws, qs, scale, zero)
			} else {
				b.quantizeRowGPTQ(xs, imp, g.u, ws.w, qs, scale, zero)
			}
			for i, q := range qs {
				blk := i / b.block
				z := int32(0)
				if !b.symmetric {
					z = zero[blk]
				}
				deq[row*in+i] = f16Table[scale[blk]] * float32(q-z)
			}
		}
	}
	zeros := make([]float32, in)
	ws.diff = grow(ws.diff, in)
	for row := 0; row < out; row++ {
		xs := x[row*in : (row+1)*in]
		e += outputError(g.h, xs, deq[row*in:(row+1)*in], ws.diff)
		s += outputError(g.h, xs, zeros, ws.diff)
	}
	return e, s
}
