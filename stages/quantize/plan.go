package quantize

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// job says what happens to one GGUF tensor.
type job struct {
	src   *gguf.Tensor
	info  TensorInfo
	trans bool        // transcode the GGUF blocks as they are
	block *blockCodec // re-quantize blockwise
	lut   *lutCodec   // re-quantize to palettes
}

func (j *job) quantized() bool { return j.info.Encoding != FP16 }

// isWeight reports whether a tensor is a weight of a linear layer or an embedding, the
// only tensors quantized: 2-D `.weight` tensors named token_embd, output, attn_* or ffn_*.
func isWeight(t *gguf.Tensor) bool {
	if len(t.Shape) != 2 || !strings.HasSuffix(t.Name, ".weight") {
		return false
	}
	base := strings.TrimSuffix(t.Name, ".weight")
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	return base == "token_embd" || base == "output" || strings.HasPrefix(base, "attn_") || strings.HasPrefix(base, "ffn_")
}

// plan decides every tensor's encoding before any work, collecting every error at once.
func (c *Config) plan(f *gguf.File) ([]*job, []string, error) {
	var errs []error
	var warnings []string
	used := make([]bool, len(c.Overrides))
	jobs := make([]*job, 0, len(f.Tensors))
	unread := map[ggml.Type][]string{} // tensors of types neither transcoded nor decoded
	var unreadTypes []ggml.Type
	for _, t := range f.Tensors {
		j := &job{src: t, info: TensorInfo{Name: t.Name, Encoding: FP16, BitsPerWeight: 16}}
		for i := len(t.Shape) - 1; i >= 0; i-- {
			j.info.Shape = append(j.info.Shape, int(t.Shape[i]))
		}
		jobs = append(jobs, j)
		if !Readable(t.Type) {
			if len(unread[t.Type]) == 0 {
				unreadTypes = append(unreadTypes, t.Type)
			}
			unread[t.Type] = append(unread[t.Type], t.Name)
			continue
		}
		if !isWeight(t) {
			if len(t.Shape) < 2 {
				j.info.Note = "1-D: norms and biases stay fp16"
			} else {
				j.info.Note = "not a linear or embedding weight"
			}
			continue
		}
		choice, explicit := c.Scheme, false
		for i, o := range c.Overrides {
			if ok, _ := path.Match(o.Pattern, t.Name); ok {
				used[i], explicit = true, true
				choice = o.Choice
				j.info.Note = "override " + o.Pattern + "=" + o.Choice
				break
			}
		}
		if choice == "4" {
			choice = c.Scheme
			if choice == "none" || choice == "gguf" || choice == "auto" {
				choice = "block"
			}
		}
		if choice == "none" {
			j.info.Note = "scheme none"
			continue
		}
		if !explicit && t.Elements() < int64(c.MinElements) {
			j.info.Note = fmt.Sprintf("%d elements < min_elements %d", t.Elements(), c.MinElements)
			continue
		}
		if choice == "gguf" || choice == "auto" {
			var done bool
			var err error
			if choice, done, err = c.ggufChoice(j); err != nil || done {
				if err != nil {
					errs = append(errs, err)
				}
				continue
			}
		}
		if choice == "fp16" {
			continue
		}
		if err := c.choose(j, choice); err != nil {
			errs = append(errs, fmt.Errorf("tensor %q: %w", t.Name, err))
		}
	}
	for _, typ := range unreadTypes {
		errs = append(errs, unreadable(typ, unread[typ]))
	}
	for i, o := range c.Overrides {
		if !used[i] {
			warnings = append(warnings, fmt.Sprintf("override %s=%s matches no tensor", o.Pattern, o.Choice))
		}
	}
	if c.BitsBudget > 0 && len(errs) == 0 && requantizes(jobs) {
		if err := c.allot(f, jobs); err != nil {
			errs = append(errs, err)
		}
	}
	for _, j := range jobs {
		if j.quantized() {
			if err := setBits(&j.info); err != nil {
				errs = append(errs, fmt.Errorf("tensor %q: %w", j.info.Name, err))
			}
		}
	}
	return jobs, warnings, errors.Join(errs...)
}

// setBits sets a quantized tensor's bits per weight from its encoding's stored arrays.
func setBits(ti *TensorInfo) error {
	bits, err := ti.StoredBits()
	if err != nil {
		return err
	}
	ti.BitsPerWeight = float64(bits) / float64(ti.Shape[0]*ti.Shape[1])
	return nil
}

// choose fills in a re-quantizing job's encoding.
func (c *Config) choose(j *job, choice string) error {
	out, in := j.info.Shape[0], j.info.Shape[1]
	note := func(s string) {
		if j.info.Note != "" {
			j.info.Note += "; "
		}
		j.info.Note += s
	}
	switch choice {
	case "int8":
		// 8 bits keep sensitive tensors close to fp16; per-block scales when the stage is
		// block-wise anyway, else per-channel ones (ANE friendly).
		bs := in
		if c.Scheme == "block" && in%c.BlockSize == 0 {
			bs = c.BlockSize
		}
		j.info.Encoding, j.info.DType, j.info.BlockSize = Blockwise, "int8", bs
		j.block = &blockCodec{dtype: "int8", symmetric: true, block: bs}
	case "block", "channel":
		bs := in
		if choice == "block" {
			bs = c.BlockSize
			if in%bs != 0 {
				if c.Strict {
					return fmt.Errorf("block_size %d does not divide its input dimension %d (strict)", bs, in)
				}
				bs = nearestDivisor(in, c.BlockSize)
				if bs == in {
					note(fmt.Sprintf("block %d does not divide %d: per-channel", c.BlockSize, in))
				} else {
					note(fmt.Sprintf("block %d does not divide %d: block %d", c.BlockSize, in, bs))
				}
			}
		}
		if c.ActOrder && bs != in {
			return fmt.Errorf("act_order needs per-channel scales, and this override gives it blocks of %d", bs)
		}
		j.info.Encoding, j.info.BlockSize = Blockwise, bs
		j.block = &blockCodec{block: bs, symmetric: c.Symmetric, search: c.Search}
		if c.Symmetric {
			j.info.DType, j.block.dtype = "int4", "int4"
		} else {
			j.info.DType, j.info.Offset, j.block.dtype = "uint4", "uint4", "uint4"
		}
	default:
		bits, ok := c.lutChoice(choice)
		if !ok {
			return fmt.Errorf("unknown choice %q", choice)
		}
		g := c.GroupSize
		if g == 0 {
			g = paletteGroup(out, in, bits)
		} else if out%g != 0 {
			if c.Strict {
				return fmt.Errorf("group_size %d does not divide its output dimension %d (strict)", g, out)
			}
			d := g
			for out%d != 0 {
				d--
			}
			note(fmt.Sprintf("group %d does not divide %d: group %d", g, out, d))
			g = d
		}
		j.lut = c.palettize(&j.info, bits, g)
	}
	return nil
}

// paletteGroup is group_size 0's choice for a tensor [out, in]: the fewest rows (a divisor
// of out) whose palette, 2^bits fp16 values, costs ≤ 0.25 bit per weight — a group of
// ≥ 64·2^bits weights — or every row when no divisor is enough.
func paletteGroup(out, in, bits int) int {
	for d := 1; d <= out; d++ {
		if out%d == 0 && d*in >= 64<<bits {
			return d
		}
	}
	return out
}

// palettize sets ti's encoding to palettes of 2^bits fp16 values, one per g rows (with an
// fp16 scale per row after it under lut_scale channel), and returns their codec.
func (c *Config) palettize(ti *TensorInfo, bits, g int) *lutCodec {
	ti.Encoding, ti.DType, ti.GroupSize = LUT, fmt.Sprintf("uint%d", bits), g
	l := &lutCodec{bits: bits, group: g, iters: 200} // 1-D Lloyd from quantiles converges slowly; iterations are cheap
	if c.LUTScale == "channel" {
		ti.Encoding, ti.BlockSize = LUTBlockwise, ti.Shape[1]
		l.channelScale = true
	}
	return l
}

// nearestDivisor returns the divisor of n within a factor 2 of want that is nearest to it
// on a log scale (the smaller on ties), or n itself (per-channel) when there is none.
func nearestDivisor(n, want int) int {
	best, bestDist := n, math.Inf(1)
	for d := (want + 1) / 2; d <= 2*want && d <= n; d++ {
		if n%d != 0 {
			continue
		}
		if dist := math.Abs(math.Log(float64(d) / float64(want))); dist < bestDist {
			best, bestDist = d, dist
		}
	}
	return best
}

// needsActivations reports whether the plan for f re-quantizes any tensor, the work a
// calibration informs. A plan that fails also answers true: Quantize then reports its errors.
func (c *Config) needsActivations(f *gguf.File) bool {
	plain := *c
	plain.BitsBudget = 0 // the budget itself needs the activations to plan
	jobs, _, err := plain.plan(f)
	return err != nil || requantizes(jobs)
}

// requantizes reports whether a job rounds weights anew, the only work that calibration
// statistics inform: with scheme none (the fp16 base of a comparison) or pure transcoding
// a calibration text has nothing to weigh.
func requantizes(jobs []*job) bool {
	for _, j := range jobs {
		if j.block != nil || j.lut != nil {
			return true
		}
	}
	return false
}

// Readable reports whether lilims reads weights of ggml type t: it transcodes them or
// decodes them (to keep or re-encode). The IQ1–IQ3 grids, TQ1_0, TQ2_0 and MXFP4 are neither:
// Core ML's constexpr ops have no form for their blocks, and lilims has no decoder for them.
func Readable(t ggml.Type) bool {
	_, ok := qweights.TranscodingOf(t)
	return ok || ggml.CanDequantize(t)
}

// ReadableTypes lists the ggml types a model file may hold that lilims reads (Readable; Q8_1
// and Q8_K, which only ggml's dot products use, are left out).
func ReadableTypes() []string {
	var names []string
	for _, t := range ggml.Types() {
		if Readable(t) && t != ggml.Q8_1 && t != ggml.Q8_K {
			names = append(names, t.String())
		}
	}
	return names
}

// unreadable is the error for the tensors names, of a type lilims does not read (Readable):
// one error per type, naming the first tensor.
func unreadable(typ ggml.Type, names []string) error {
	more := ""
	if len(names) > 1 {
		more = fmt.Sprintf(" and %d more", len(names)-1)
	}
	return fmt.Errorf("tensor %q%s: lilims cannot read %v weights: Core ML's constexpr ops have no form for its "+
		"blocks, and lilims does not decode them to re-encode them; use a GGUF quantized to one of %s "+
		"(e.g. Q4_K_M: lilims pull OWNER/REPO:Q4_K_M)", names[0], more, typ, strings.Join(ReadableTypes(), ", "))
}
