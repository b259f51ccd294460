package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/eval"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
)

// baseScheme is the quantize stage's scheme that leaves the weights alone (fp16 export): the
// base every other scheme is measured against.
const (
	baseScheme = "none"
	baseLabel  = "fp16"
)

// schemeArgs names the parameter that the number after "SCHEME:" sets, per built-in scheme
// (stages/quantize: block's block size, lut's palette width, lut4's palette group size).
var schemeArgs = map[string]string{"block": "block_size", "lut": "lut_bits", "lut4": "group_size"}

// defaultSchemes are the rows of a comparison when neither --schemes nor the pipeline's
// sweep names any: the three plain schemes and the best calibrated 4-bit scheme measured
// on stories260K (docs/quantization-quality.md), which needs a calibration text.
var defaultSchemes = []string{"block:32", "channel", "lut4", bestScheme}

// bestScheme: per-channel uint4 with GPTQ, tensors upgraded to two scale groups or int8
// by their calibration error while the mean stays ≤ 4.45 bits per quantized weight (≤ 4.5
// over every weight, norms included).
const bestScheme = "channel+symmetric=false+bits_budget=4.45"

// schemeChoice is one entry of --schemes.
type schemeChoice struct {
	label string
	sets  []string // overrides of the quantize stage, "quantize.scheme=block"
	model string   // gguf:FILE: the model to build instead of the argument's
	// calibrated: the scheme needs quantize.calibration (bits_budget ranks tensors by it).
	calibrated bool
}

// parseSchemes reads "block:32,channel,lut4,gguf,channel+symmetric=false,gguf:FILE" into
// per-scheme overrides of the quantize stage whose id is qid: SCHEME[:N] sets the scheme
// (and its block or group size), each "+PARAM=VALUE" another parameter of the stage, and
// gguf:FILE builds FILE, a GGUF quantized by llama.cpp, with its blocks transcoded.
func parseSchemes(list []string, qid string) ([]schemeChoice, error) {
	var out []schemeChoice
	seen := map[string]bool{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if file, ok := strings.CutPrefix(s, "gguf:"); ok {
			if seen[s] {
				return nil, usagef("--schemes: %q is listed twice", s)
			}
			seen[s] = true
			if _, err := os.Stat(file); err != nil {
				return nil, usagef("--schemes: %s: %v", s, err)
			}
			// fallback fp16: a type the transcoder does not take is dequantized exactly
			// (ggml's own dequantization, rounded to fp16), never quantized a second time.
			out = append(out, schemeChoice{label: "gguf:" + filepath.Base(file), model: file,
				sets: []string{qid + ".scheme=gguf", qid + ".fallback=fp16"}})
			continue
		}
		if strings.HasPrefix(s, "plugin:") {
			// A quantization plugin replaces the stage (with its own defaults).
			if seen[s] {
				return nil, usagef("--schemes: %q is listed twice", s)
			}
			seen[s] = true
			out = append(out, schemeChoice{label: s, sets: []string{qid + ".uses=" + s}})
			continue
		}
		s, params, _ := strings.Cut(s, "+")
		name, arg, hasArg := strings.Cut(s, ":")
		if name == "" {
			return nil, usagef("--schemes: %q has no scheme name", s)
		}
		label := s
		if params != "" {
			label += "+" + params
		}
		if seen[label] {
			return nil, usagef("--schemes: %q is listed twice", label)
		}
		seen[label] = true
		c := schemeChoice{label: label, sets: []string{qid + ".scheme=" + name}}
		for _, p := range strings.Split(params, "+") {
			if p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" || v == "" {
				return nil, usagef("--schemes: %q: %q is not PARAM=VALUE", label, p)
			}
			c.sets = append(c.sets, qid+"."+k+"="+v)
			c.calibrated = c.calibrated || k == "bits_budget"
		}
		if hasArg {
			param, ok := schemeArgs[name]
			if !ok {
				return nil, usagef("--schemes: scheme %q takes no :N argument (only block:BLOCK_SIZE, lut:BITS and lut4:GROUP_SIZE do)", name)
			}
			if n, err := strconv.Atoi(arg); err != nil || n <= 0 {
				return nil, usagef("--schemes: %q: %q is not a positive %s", s, arg, param)
			}
			c.sets = append(c.sets, qid+"."+param+"="+arg)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, usagef("--schemes lists no scheme")
	}
	return out, nil
}

func newCompareCmd() *cobra.Command {
	var (
		pf      pipelineFlags
		ef      evalFlags
		schemes []string
		plot    string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "compare MODEL.gguf|PIPELINE.yaml --schemes block:32,channel,lut4,gguf --file TEXT",
		Short: "Quantize a model with several schemes and compare size, perplexity and divergence from fp16",
		Long: `Run the pipeline once with its quantize stage's scheme set to none (fp16 weights: the base)
and once per scheme of --schemes, each through export and the runtime, and print one table:
bits per weight (over every weight, fp16 tensors included), size of the exported package,
perplexity on --file (llama-perplexity's method, as 'lilims perplexity'), its change from the
base, the mean KL divergence KL(base ‖ scheme) per scored token, the share of scored tokens on
which the scheme's most likely token is the base's, and the time the quantize stage took.

Schemes: block[:BLOCK_SIZE] (INT4 block-wise), channel (INT4 per output channel),
lut[:BITS] (palettes of 2, 3, 4, 6 or 8 bits), lut4[:GROUP_SIZE] (4-bit palettes), gguf
(lossless transcoding of Q4_0/Q4_1 blocks), or any scheme the pipeline's quantize stage accepts; "+PARAM=VALUE" sets another parameter of the
stage for that row (channel+symmetric=false+bits_budget=4.45). gguf:FILE scores FILE, a GGUF
quantized by llama.cpp, in the same table (its blocks transcoded, other types dequantized to
fp16; bits/weight as llama.cpp stores them). Without --schemes: the pipeline's sweep when it
has one, else block:32, channel, lut4 and the best calibrated scheme (which needs
--set quantize.calibration=TEXT and is skipped without it). A row marked * has a note below
the table (a scheme that quantized nothing, a llama.cpp file). --plot draws the comparison
and the weight error per layer as an SVG or PNG chart.`,
		Example: `  lilims compare testdata/oracle/models/stories260K.gguf --file testdata/oracle/eval/little-stories.txt --ctx 128 --set quantize.calibration=stages/quantize/testdata/calibration.txt
  lilims compare stories260K.gguf --schemes channel,channel+act_order=true,gguf:stories260K-q4_k_m.gguf --file little-stories.txt --set quantize.calibration=calib.txt
  lilims compare pipelines/quant-sweep.yaml --file testdata/oracle/eval/little-stories.txt
  lilims compare model.gguf --schemes block:32,block:128,lut4 --file wiki.test.raw --plot schemes.svg --json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := ef.check(); err != nil {
				return err
			}
			if plot != "" {
				if ext := strings.ToLower(filepath.Ext(plot)); ext != ".svg" && ext != ".png" {
					return usagef("--plot %s: the chart is written as .svg or .png", plot)
				}
			}
			plan, err := loadPlan(a[0], pf.sets)
			if err != nil {
				return err
			}
			q := plan.Step(stage.KindQuantize)
			if q == nil {
				return fmt.Errorf("%s has no quantize stage (uses: quantize/int4): compare chooses the scheme through it", a[0])
			}
			choices, err := compareChoices(a[0], plan, q, schemes, cmd.Flags().Changed("schemes"))
			if err != nil {
				return err
			}
			if cal, _ := q.Params["calibration"].(string); cal == "" {
				// bits_budget ranks tensors on a calibration text: without one such a row
				// would only fail.
				kept := choices[:0]
				for _, c := range choices {
					if c.calibrated {
						fmt.Fprintf(cmd.ErrOrStderr(), "lilims: compare: %s skipped: it needs a calibration text (--set %s.calibration=TEXT)\n", c.label, q.ID)
						continue
					}
					kept = append(kept, c)
				}
				if choices = kept; len(choices) == 0 {
					return usagef("--schemes: every scheme needs a calibration text (--set %s.calibration=TEXT)", q.ID)
				}
			}
			// Check every variant before building any: a typo in the last scheme should not
			// cost the builds of the others.
			all := append([]schemeChoice{{label: baseLabel, sets: []string{q.ID + ".scheme=" + baseScheme}}}, choices...)
			for _, c := range all {
				if _, err := loadPlan(c.arg(a[0]), append(append([]string(nil), pf.sets...), c.sets...)); err != nil {
					return fmt.Errorf("scheme %s: %w", c.label, err)
				}
			}
			ws, err := newWorkspace(pf.workDir)
			if err != nil {
				return err
			}
			defer ws.cleanup()
			cmp := &comparison{arg: a[0], sets: pf.sets, quantizeID: q.ID, ef: &ef, ws: ws,
				verbose: pf.verbose, log: cmd.ErrOrStderr()}
			rows, failed := cmp.run(cmd.Context(), all)
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			if len(rows) == 0 {
				return fmt.Errorf("the base (%s) failed: nothing to compare against", baseLabel)
			}
			if plot != "" {
				if err := writePlot(plot, rows); err != nil {
					return err
				}
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), rows); err != nil {
					return err
				}
			} else if err := eval.WriteTable(cmd.OutOrStdout(), rows); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d schemes failed (see above)", failed, len(choices))
			}
			return nil
		},
	}
	ef.register(cmd)
	cmd.Flags().StringSliceVar(&schemes, "schemes", defaultSchemes, "schemes to compare with fp16, comma-separated: block[:N], channel, lut[:BITS], lut4[:N], gguf, "+
		"SCHEME+PARAM=VALUE… (more parameters of the quantize stage), gguf:FILE (a GGUF quantized by llama.cpp); default: the pipeline's sweep if it has one")
	cmd.Flags().StringVar(&plot, "plot", "", "also draw the comparison as a chart: FILE.svg or FILE.png")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON list of {scheme, bits_per_weight, package_bytes, perplexity, delta_ppl_pct, kl, top1_agreement, quantize_seconds}")
	pf.register(cmd)
	return cmd
}

// comparison runs the base and each scheme in turn.
type comparison struct {
	arg        string
	sets       []string
	quantizeID string
	ef         *evalFlags
	ws         *workspace
	verbose    bool
	log        io.Writer
}

// run measures every choice (the first is the base) and returns the rows of those that
// succeeded and how many of the others failed; failures are reported on the log as they
// happen. When the base fails nothing is returned.
func (c *comparison) run(ctx context.Context, choices []schemeChoice) ([]eval.SchemeResult, int) {
	show := c.verbose || isTerminalWriter(c.log)
	var (
		rows   []eval.SchemeResult
		base   *eval.Result
		tokens []int32
		failed int
	)
	for i, ch := range choices {
		if ctx.Err() != nil {
			return rows, failed
		}
		if show {
			fmt.Fprintf(c.log, "lilims: compare: %s (%d of %d)\n", ch.label, i+1, len(choices))
		}
		row, res, toks, err := c.measure(ctx, ch, i, tokens, base)
		if err != nil {
			fmt.Fprintf(c.log, "lilims: compare: scheme %s: %v\n", ch.label, err)
			if i == 0 {
				return nil, failed
			}
			failed++
			continue
		}
		if i == 0 {
			base, tokens = res, toks
			row.Top1Agreement = 1 // the base against itself: KL 0, every argmax agrees
		} else {
			row.DeltaPPLPct = 100 * (row.Perplexity - base.PPL) / base.PPL
			if row.Note != "" && row.BitsPerWeight == 16 {
				// The same fp16 weights as the base: any difference is summation order.
				row.DeltaPPLPct = 0
			}
			row.KL, row.Top1Agreement = res.KL.Mean, res.KL.Top1
		}
		rows = append(rows, row)
	}
	return rows, failed
}

// measure builds and scores one scheme. The base (base == nil) tokenizes the text and keeps
// its log-probabilities for the others' KL.
func (c *comparison) measure(ctx context.Context, ch schemeChoice, i int, tokens []int32, base *eval.Result) (
	eval.SchemeResult, *eval.Result, []int32, error) {
	row := eval.SchemeResult{Scheme: ch.label}
	sets := append(append([]string(nil), c.sets...), ch.sets...)
	t, err := openEvalTarget(ctx, ch.arg(c.arg), sets, c.ws.dir(fmt.Sprintf("%02d-%s", i, dirName(ch.label))), c.verbose)
	if err != nil {
		return row, nil, nil, err
	}
	defer t.close()
	if tokens == nil {
		if tokens, err = c.ef.tokens(t.tok); err != nil {
			return row, nil, nil, err
		}
	}
	res, err := c.ef.run(ctx, t, tokens, base, base == nil, nil)
	if err != nil {
		return row, nil, nil, err
	}
	row.Perplexity = res.PPL
	for _, b := range t.b.artifacts {
		switch {
		case b.ID == c.quantizeID:
			row.QuantizeSeconds = b.Seconds
			if b.Cached && i > 0 {
				fmt.Fprintf(c.log, "lilims: compare: %s: the quantized weights came from the build cache, so %.2fs is not the quantization time (--no-cache measures it)\n",
					ch.label, b.Seconds)
			}
			tensors, note, err := quantizedTensors(b.Artifact)
			if err != nil {
				return row, nil, nil, err
			}
			if i > 0 {
				row.Note = note
			}
			row.BitsPerWeight = eval.BitsPerWeight(tensors)
			row.LayerRelRMSE = eval.LayerErrors(tensors)
		case b.Artifact.Kind == "mlpackage":
			if row.PackageBytes, err = dirSize(b.Artifact.Path); err != nil {
				return row, nil, nil, err
			}
		}
	}
	if row.BitsPerWeight == 0 {
		row.BitsPerWeight = 16 // nothing quantized: the exporter binds every weight as fp16
	}
	if ch.model != "" {
		// llama.cpp's own storage, what the GGUF costs: its types' bits, F32/F16 tensors
		// counted as the fp16 the export stores.
		if row.BitsPerWeight, row.Note, err = ggufBits(ch.model); err != nil {
			return row, nil, nil, err
		}
	}
	return row, res, tokens, nil
}

// arg is what the choice builds: its GGUF for gguf:FILE, else the command's argument.
func (c schemeChoice) arg(cmdArg string) string {
	if c.model != "" {
		return c.model
	}
	return cmdArg
}

// dirName makes a label usable as a directory name.
func dirName(label string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == '=' || r == '+' || r == ':' {
			return '_'
		}
		return r
	}, label)
}

// compareChoices are the rows after the base: --schemes when given, else the pipeline's
// sweep when it has one, else the default schemes.
func compareChoices(arg string, plan *pipeline.Plan, q *pipeline.Step, schemes []string, given bool) ([]schemeChoice, error) {
	if !given && len(plan.Spec.Sweep) > 0 {
		vs, err := plan.Spec.Variants()
		if err != nil {
			return nil, err
		}
		out := make([]schemeChoice, len(vs))
		for i, v := range vs {
			out[i] = schemeChoice{label: v.Label, sets: v.Sets}
			for _, set := range v.Sets {
				out[i].calibrated = out[i].calibrated || strings.HasPrefix(set, q.ID+".bits_budget=")
			}
		}
		return out, nil
	}
	if !given {
		schemes = defaultSchemes
	}
	choices, err := parseSchemes(schemes, q.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range choices {
		if c.model != "" && isPipelineFile(arg) {
			return nil, usagef("--schemes %s: gguf:FILE rows compare GGUF models; give the model, not the pipeline %s", c.label, arg)
		}
	}
	return choices, nil
}

// ggufBits is the mean storage bits per weight of a GGUF's tensors (quantized types as
// stored, F32/F16 as fp16) and a note listing its tensor types.
func ggufBits(path string) (float64, string, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	var bits, n float64
	count := map[string]int{}
	var types []string
	for _, t := range f.Tensors {
		e := float64(t.Elements())
		b := 16.0
		if t.Type != ggml.F32 && t.Type != ggml.F16 && t.Type != ggml.BF16 {
			rb, err := t.Type.RowBytes(int64(t.Type.BlockElems()))
			if err != nil {
				return 0, "", fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
			b = 8 * float64(rb) / float64(t.Type.BlockElems())
		}
		bits += b * e
		n += e
		if len(t.Shape) == 2 {
			k := t.Type.String()
			if count[k] == 0 {
				types = append(types, k)
			}
			count[k]++
		}
	}
	if n == 0 {
		return 0, "", fmt.Errorf("%s has no tensors", path)
	}
	parts := make([]string, len(types))
	for i, k := range types {
		parts[i] = fmt.Sprintf("%d %s", count[k], k)
	}
	return bits / n, "llama.cpp's 2-D tensors: " + strings.Join(parts, ", ") +
		"; bits/weight as llama.cpp stores them, types the transcoder does not take are exported as fp16", nil
}

// quantizedTensors reads the quantize artifact's manifest: every tensor of the model with its
// encoding's bits per weight and error (16 bits and no error for the ones kept fp16).
// note is empty when some tensor is quantized, else says why none is (a scheme that leaves
// every weight fp16 would otherwise pass for a lossless quantization).
func quantizedTensors(art stage.Artifact) (tensors []eval.TensorError, note string, err error) {
	dir := art.Path
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	set, err := quantize.Open(dir)
	if err != nil {
		return nil, "", err
	}
	defer set.Close()
	m := set.Manifest()
	out := make([]eval.TensorError, 0, len(m.Tensors))
	quantized, why := false, ""
	for _, ti := range m.Tensors {
		quantized = quantized || ti.Encoding != quantize.FP16
		if why == "" && len(ti.Shape) == 2 && ti.Note != "" {
			why = ti.Note
		}
		n := int64(1)
		for _, d := range ti.Shape {
			n *= int64(d)
		}
		out = append(out, eval.TensorError{Name: ti.Name, Elements: n, BitsPerWeight: ti.BitsPerWeight, RelRMSE: ti.RelRMSE})
	}
	if !quantized {
		note = "nothing quantized, every weight stays fp16"
		if why != "" {
			note += " (" + why + ")"
		}
	}
	return out, note, nil
}

// dirSize is the total size of the regular files under path (or of the file itself).
func dirSize(path string) (int64, error) {
	var n int64
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// writePlot draws the chart to path, as SVG or PNG by its extension, removing a partial file
// on failure.
func writePlot(path string, rows []eval.SchemeResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if strings.EqualFold(filepath.Ext(path), ".png") {
		err = eval.WritePNG(f, rows)
	} else {
		err = eval.WriteSVG(f, rows)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--plot %s: %w", path, err)
	}
	return nil
}
