package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	llamacpp "github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/coreml"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// The tolerances verify holds each compute-unit setting to: the project's numerics contract
// against llama.cpp (testdata/oracle/README.md, "Tolerances the project must meet"), max
// |Δp| ≤ 0.005 for fp16 weights and ≤ 0.05 for quantized ones, and the same top-1 token
// wherever the reference's top-1 and top-2 probabilities differ by more than 0.02.
const (
	verifyToleranceFP16      = 0.005
	verifyToleranceQuantized = 0.05
	verifyTop1Margin         = llamacpp.ArgmaxMargin
	verifyToleranceSource    = "testdata/oracle/README.md: the numerics contract (0.005 fp16 / 0.05 quantized)"
)

// allUnits is every compute-unit setting, in the order verify runs them.
var allUnits = []string{"cpu_only", "cpu_and_gpu", "cpu_and_ne", "all"}

func newVerifyCmd() *cobra.Command {
	var (
		pf      pipelineFlags
		units   string
		asJSON  bool
		emulate bool
		single  bool
	)
	cmd := &cobra.Command{
		Use:   "verify MODEL.gguf|PIPELINE.yaml|PACKAGE [--units all|cpu_only,cpu_and_gpu,cpu_and_ne,all] [--json]",
		Short: "Check Core ML against the reference runtime, for every compute-unit setting",
		Long: `Run fixed token sequences through Core ML with each compute-unit setting and through
the pure-Go reference runtime (fp32), and print per setting: max |Δp| and top-1 agreement
against the reference, prompt and generation tokens/s, compile (or cache) and load time, and
resident memory (with --decode-only, of a model whose weights are loaded once: see
docs/mac.md). One sequence prefills a prompt and then decodes 16 tokens: a KV state that
did not carry over from the prefill function to the decode function shows there.

Exit 1 when a setting disagrees beyond the export's tolerance: max |Δp| ≤ 0.005 for fp16
weights, ≤ 0.05 for quantized ones, and the same top-1 token wherever the reference's top-1
and top-2 probabilities differ by more than 0.02 (the project's numerics contract,
testdata/oracle/README.md).

--units all (the default) runs every setting; a comma list runs those, where "all" names
Core ML's MLComputeUnitsAll. On macOS 15+ Core ML runs; elsewhere (or with --emulate) the
same code path runs with every Core ML call answered by the reference runtime, and the
output says so: that checks lilims's side of the Core ML path, not Core ML.

MODEL and PIPELINE are built first (through the cache); PACKAGE is an .mlpackage or the
directory of a chunked export. --json prints the report for a bug report (docs/mac.md).`,
		Example: `  lilims verify pipelines/stories.yaml
  lilims verify model.gguf --units cpu_and_ne,all
  lilims verify out/model.mlpackage --json > verify.json`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			settings, err := parseUnitsList(units)
			if err != nil {
				return usageError{err}
			}
			ctx := cmd.Context()
			pkg, seed := a[0], ""
			if !isPackagePath(a[0]) {
				plan, err := loadPlan(a[0], pf.sets)
				if err != nil {
					return err
				}
				b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
				if err != nil {
					return err
				}
				defer b.cleanup()
				if pkg, seed, err = exportedPackage(b.artifacts); err != nil {
					return fmt.Errorf("%s: %w", a[0], err)
				}
			}
			v := verifier{open: coremlOpener(coreml.OpenOptions), emulated: emulate || goruntime.GOOS != "darwin", decodeOnly: single}
			if v.emulated {
				v.open = coremlOpener(coreml.OpenEmulated)
			}
			if v.cacheDir, err = compiledCacheDir(&pf); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "lilims: verify: no compiled-model cache: %v\n", err)
			}
			rep, err := v.run(ctx, pkg, seed, settings)
			if err != nil {
				return err
			}
			rep.Machine = diagnose(systemProbe(ctx)) // for a bug report: macOS version, chip, tools
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				rep.writeText(cmd.OutOrStdout())
			}
			return rep.err()
		},
	}
	cmd.Flags().StringVar(&units, "units", "all", "compute-unit settings: all (every setting) or a comma list of cpu_only, cpu_and_gpu, cpu_and_ne, all")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (for a bug report)")
	pf.register(cmd)
	cmd.Flags().BoolVar(&emulate, "emulate", false, "answer the Core ML calls with the reference runtime even on macOS")
	cmd.Flags().BoolVar(&single, "decode-only", false, "load the decode function only and run prompts through it (weights held once; compare rss_mb)")
	return cmd
}

// parseUnitsList reads --units: "all" alone is every setting.
func parseUnitsList(s string) ([]string, error) {
	if s == "all" || s == "" {
		return allUnits, nil
	}
	var out []string
	for _, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if _, err := coreml.ParseComputeUnits(u); err != nil || u == "" {
			return nil, fmt.Errorf("--units: %q is not a compute-unit setting; valid: %s", u, strings.Join(allUnits, ", "))
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// isPackagePath tells an exported package (or chunked export) from a model or pipeline.
func isPackagePath(p string) bool {
	ext := strings.ToLower(filepath.Ext(strings.TrimRight(p, "/")))
	return ext == ".mlpackage" || mlpackage.IsChunked(p)
}

// exportedPackage finds the exported package among a build's artifacts, and the compiled
// model made from it, if any.
func exportedPackage(arts []pipeline.Built) (pkg, compiled string, err error) {
	for _, a := range arts {
		switch a.Artifact.Kind {
		case "mlpackage":
			pkg, compiled = a.Artifact.Path, ""
		case "mlmodelc":
			pkg, compiled = a.Artifact.Meta["package"], a.Artifact.Path
		}
	}
	if pkg == "" {
		return "", "", errors.New("the pipeline exports no .mlpackage")
	}
	return pkg, compiled, nil
}

// compiledCacheDir is the lilims cache directory the flags select: compiled models are
// kept there (coreml.CompiledCacheDir). Empty with --no-cache.
func compiledCacheDir(pf *pipelineFlags) (string, error) {
	if pf.noCache {
		return "", nil
	}
	if pf.cacheDir != "" {
		return pf.cacheDir, nil
	}
	return pipeline.DefaultCacheDir()
}

// err is the command's result: exit 1 when a setting failed.
func (r *verifyReport) err() error {
	if r.Pass {
		return nil
	}
	return fmt.Errorf("verify: %s", r.Verdict)
}

// verifier runs the comparison.
type verifier struct {
	open       func(string, coreml.Options) (*openedSession, error)
	emulated   bool
	cacheDir   string
	decodeOnly bool // coreml.Options.PrefillThroughDecode
}

// openedSession is a Core ML session as verify drives it.
type openedSession struct {
	session
	close  func() error
	report coreml.OpenReport
}

func coremlOpener(open func(string, coreml.Options) (*coreml.Session, error)) func(string, coreml.Options) (*openedSession, error) {
	return func(path string, opts coreml.Options) (*openedSession, error) {
		s, err := open(path, opts)
		if err != nil {
			return nil, err
		}
		return &openedSession{session: s, close: s.Close, report: s.Report}, nil
	}
}

// sequence is one fixed input: a prompt, then decode steps fed with the reference's greedy
// tokens (so both runtimes see the same inputs even where they would diverge).
type sequence struct {
	Name   string `json:"name"`
	Prompt int    `json:"prompt_tokens"`
	Decode int    `json:"decode_steps"`
	Why    string `json:"why"`
	tokens []int32
}

// reference rows of one sequence: probabilities after each prompt token and decode step.
type refRows struct {
	probs  [][]float64
	decode []int32 // the greedy tokens fed to the decode steps
}

type verifyReport struct {
	Package         string           `json:"package"`
	Backend         string           `json:"backend"` // what answered the Core ML calls
	BackendNote     string           `json:"backend_note"`
	Reference       string           `json:"reference"`
	OS              string           `json:"os"`
	Machine         doctorReport     `json:"machine"` // what lilims doctor reports
	Chunks          int              `json:"chunks"`
	DecodeOnly      bool             `json:"decode_only"` // prompts ran through the decode function (--decode-only)
	Quantized       bool             `json:"quantized"`
	Tolerance       float64          `json:"tolerance"`
	ToleranceSource string           `json:"tolerance_source"`
	Top1Margin      float64          `json:"top1_margin"`
	Sequences       []sequence       `json:"sequences"`
	Settings        []verifySetting  `json:"settings"`
	Pass            bool             `json:"pass"`
	Verdict         string           `json:"verdict"`
	Static          []string         `json:"static_ane_checks,omitempty"` // not a measurement
	ReferenceRun    verifyThroughput `json:"reference_run"`
}

type verifyThroughput struct {
	PromptTokensPerSecond float64 `json:"prompt_tokens_per_second"`
	GenTokensPerSecond    float64 `json:"gen_tokens_per_second"`
}

type verifySetting struct {
	Units            string             `json:"units"`
	Pass             bool               `json:"pass"`
	Error            string             `json:"error,omitempty"`
	MaxDeltaP        float64            `json:"max_delta_p"`
	MaxDeltaPBySeq   map[string]float64 `json:"max_delta_p_by_sequence"`
	Top1Agreement    float64            `json:"top1_agreement"`                 // fraction of compared rows
	Top1Disagreement int                `json:"top1_disagreements_over_margin"` // rows that fail
	Rows             int                `json:"rows"`
	verifyThroughput
	CompileSeconds float64 `json:"compile_seconds"`
	CompileCached  bool    `json:"compile_cached"` // the compiled model came from the cache
	LoadSeconds    float64 `json:"load_seconds"`   // both functions loaded and checked once
	RSSMB          float64 `json:"rss_mb"`
	RSSKind        string  `json:"rss_kind"` // "current" (Linux VmRSS), "footprint" (macOS phys_footprint) or "peak" (getrusage)
}

// verifySequences are the fixed inputs for a package of context c, prefill chunk n and
// vocabulary v: token ids from a fixed stride over the vocabulary, so that they exist in
// any model.
func verifySequences(meta runtime.Meta) []sequence {
	c, n := meta.ContextLength, meta.PrefillChunk
	toks := func(seed, k int) []int32 {
		out := make([]int32, k)
		for i := range out {
			out[i] = int32((seed*7919 + i*104729 + 1) % meta.VocabSize)
		}
		return out
	}
	fit := func(want int) int { return max(1, min(want, c-1)) }
	long := fit(n + n/2 + 1)
	decodeAfter := fit(n)
	steps := max(0, min(16, c-decodeAfter))
	return []sequence{
		{Name: "short prompt", Prompt: fit(5), Why: "one padded prefill call", tokens: toks(1, fit(5))},
		{Name: "long prompt", Prompt: long, Why: "a full prefill chunk then a padded one", tokens: toks(2, long)},
		{Name: "prefill then decode", Prompt: decodeAfter, Decode: steps,
			Why: "the KV state written by the prefill function must be read by the decode function", tokens: toks(3, decodeAfter)},
		{Name: "decode only", Prompt: 1, Decode: min(8, c-1), Why: "the decode function alone from position 0", tokens: toks(4, 1)},
	}
}

func (v *verifier) run(ctx context.Context, pkg, seed string, settings []string) (*verifyReport, error) {
	ref, err := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP32})
	if err != nil {
		return nil, err
	}
	// The reference runs first and is closed before any Core ML session opens, so that
	// each setting's memory figure is Core ML's, not the reference runtime's.
	closeRef := sync.OnceValue(ref.Close)
	defer closeRef()
	static, err := coreml.CheckStatic(pkg)
	if err != nil {
		return nil, err
	}
	pkgs, err := mlpackage.PackagesAt(pkg)
	if err != nil {
		return nil, err
	}
	rep := &verifyReport{Package: pkg, Reference: "lilims reference runtime, fp32", OS: goruntime.GOOS + "/" + goruntime.GOARCH,
		Chunks: len(pkgs), DecodeOnly: v.decodeOnly, Quantized: static.Quantized, Tolerance: verifyToleranceFP16, ToleranceSource: verifyToleranceSource,
		Top1Margin: verifyTop1Margin, Pass: true}
	if static.Quantized {
		rep.Tolerance = verifyToleranceQuantized
	}
	if v.emulated {
		rep.Backend = "emulated"
		rep.BackendNote = "no Core ML ran: lilims's Core ML path (inputs, outputs, states, chunks, compile cache) with every Core ML call answered by the reference runtime"
	} else {
		rep.Backend = "coreml"
		rep.BackendNote = "Apple Core ML framework"
	}
	rep.Static = static.Lines()
	rep.Sequences = verifySequences(ref.Meta())
	want := make([]refRows, len(rep.Sequences))
	var refT throughput
	for i, sq := range rep.Sequences {
		if want[i], err = runSequence(ctx, ref, sq, nil, &refT); err != nil {
			return nil, fmt.Errorf("reference runtime: %s: %w", sq.Name, err)
		}
	}
	rep.ReferenceRun = refT.rates()
	closeRef()
	var failed []string
	for _, u := range settings {
		s, err := v.runSetting(ctx, pkg, seed, u, rep, want)
		if err != nil {
			return nil, err // Core ML cannot run here at all: one line, not a table of errors
		}
		if !s.Pass {
			rep.Pass = false
			failed = append(failed, u)
		}
		rep.Settings = append(rep.Settings, s)
	}
	if rep.Pass {
		rep.Verdict = fmt.Sprintf("every setting within max |Δp| %g of the reference", rep.Tolerance)
	} else {
		rep.Verdict = fmt.Sprintf("%s disagree with the reference runtime beyond max |Δp| %g or on a clear top-1 (or failed)", strings.Join(failed, ", "), rep.Tolerance)
	}
	return rep, nil
}

// runSetting runs every sequence with one compute-unit setting. A failure of that setting
// is recorded in the result; the error is for Core ML being unavailable altogether.
func (v *verifier) runSetting(ctx context.Context, pkg, seed, units string, rep *verifyReport, want []refRows) (verifySetting, error) {
	s := verifySetting{Units: units, MaxDeltaPBySeq: map[string]float64{}}
	debug.FreeOSMemory() // what earlier settings left behind is not this one's
	resetPeakRSS()
	opts := coreml.Options{ComputeUnits: units, CacheDir: v.cacheDir, PrefillThroughDecode: v.decodeOnly}
	path := pkg
	if seed != "" {
		path, opts.Package = seed, pkg
	}
	sess, err := v.open(path, opts)
	if errors.Is(err, coreml.ErrUnavailable) {
		return s, err
	}
	if err != nil {
		s.Error = err.Error()
		return s, nil
	}
	defer sess.close()
	s.CompileSeconds, s.CompileCached = sess.report.Compile.Seconds(), sess.report.CacheHit
	s.LoadSeconds = sess.report.Load.Seconds()
	s.RSSMB, s.RSSKind = residentMB()
	var agree int
	var t throughput
	for i, sq := range rep.Sequences {
		got, err := runSequence(ctx, sess, sq, want[i].decode, &t)
		if err != nil {
			s.Error = fmt.Sprintf("%s: %v", sq.Name, err)
			return s, nil
		}
		var worst float64
		for r, p := range got.probs {
			q := want[i].probs[r]
			worst = math.Max(worst, maxAbsDiff(p, q))
			if llamacpp.Argmax(p) == llamacpp.Argmax(q) {
				agree++
			} else if llamacpp.TopMargin(q) > verifyTop1Margin {
				s.Top1Disagreement++
			}
			s.Rows++
		}
		s.MaxDeltaPBySeq[sq.Name] = worst
		s.MaxDeltaP = math.Max(s.MaxDeltaP, worst)
	}
	s.verifyThroughput = t.rates()
	s.Top1Agreement = float64(agree) / float64(max(1, s.Rows))
	s.Pass = s.MaxDeltaP <= rep.Tolerance && s.Top1Disagreement == 0
	return s, nil
}

// throughput sums the tokens and time of prompt and decode calls.
type throughput struct {
	promptTokens, genTokens int
	promptTime, genTime     time.Duration
}

func (t throughput) rates() verifyThroughput {
	rate := func(n int, d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(n) / d.Seconds()
	}
	return verifyThroughput{rate(t.promptTokens, t.promptTime), rate(t.genTokens, t.genTime)}
}

// session is what verify drives: the reference session and the Core ML one alike.
type session interface {
	Prefill(context.Context, []int32) ([][]float32, error)
	Decode(context.Context, int32) ([]float32, error)
	Reset()
}

// runSequence runs sq from position 0: the prompt through Prefill, then sq.Decode steps fed
// with feed (the reference's tokens) or, when feed is nil, with its own greedy tokens.
func runSequence(ctx context.Context, s session, sq sequence, feed []int32, t *throughput) (refRows, error) {
	s.Reset()
	var out refRows
	start := time.Now()
	rows, err := s.Prefill(ctx, sq.tokens)
	if err != nil {
		return out, err
	}
	t.promptTime += time.Since(start)
	t.promptTokens += len(sq.tokens)
	for _, r := range rows {
		out.probs = append(out.probs, llamacpp.Softmax(r))
	}
	last := out.probs[len(out.probs)-1]
	for i := 0; i < sq.Decode; i++ {
		tok := llamacpp.Argmax(last)
		if feed != nil {
			tok = feed[i]
		}
		out.decode = append(out.decode, tok)
		start = time.Now()
		l, err := s.Decode(ctx, tok)
		if err != nil {
			return out, err
		}
		t.genTime += time.Since(start)
		t.genTokens++
		last = llamacpp.Softmax(l)
		out.probs = append(out.probs, last)
	}
	return out, nil
}

func maxAbsDiff(p, q []float64) float64 {
	var d float64
	for i := range p {
		d = math.Max(d, math.Abs(p[i]-q[i]))
	}
	return d
}

// residentMB is the process's memory now — the resident set on Linux, the physical
// footprint on macOS (which counts Core ML's IOSurface and Neural Engine buffers) — or the
// peak resident set where neither is readable, and which of these it is.
func residentMB() (float64, string) {
	if v, ok := procStatusMB("VmRSS"); ok {
		return v, "current"
	}
	if v, ok := footprintMB(); ok {
		return v, "footprint"
	}
	return maxRSSMB(), "peak"
}

func (r *verifyReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "package:    %s (%d package(s), %s)\n", r.Package, r.Chunks, map[bool]string{true: "quantized", false: "fp16"}[r.Quantized])
	fmt.Fprintf(w, "backend:    %s — %s\n", r.Backend, r.BackendNote)
	machine := strings.TrimSpace(r.Machine.OS + " " + r.Machine.OSVersion)
	if r.Machine.Machine != "" {
		machine += ", " + r.Machine.Machine
	}
	fmt.Fprintf(w, "machine:    %s (%s)\n", machine, r.OS)
	fmt.Fprintf(w, "reference:  %s (%.1f prompt tok/s, %.1f gen tok/s)\n", r.Reference, r.ReferenceRun.PromptTokensPerSecond, r.ReferenceRun.GenTokensPerSecond)
	fmt.Fprintf(w, "tolerance:  max |Δp| ≤ %g; same top-1 where the reference's margin > %g (%s)\n", r.Tolerance, r.Top1Margin, r.ToleranceSource)
	for _, sq := range r.Sequences {
		fmt.Fprintf(w, "sequence:   %s: %d prompt tokens, %d decode steps (%s)\n", sq.Name, sq.Prompt, sq.Decode, sq.Why)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "units\tresult\tmax |Δp|\tprefill→decode |Δp|\ttop-1\tprompt tok/s\tgen tok/s\tcompile s\tload s\tRSS MB")
	for _, s := range r.Settings {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\tERROR\t%s\n", s.Units, s.Error)
			continue
		}
		res := "ok"
		if !s.Pass {
			res = "FAIL"
		}
		compile := fmt.Sprintf("%.2f", s.CompileSeconds)
		if s.CompileCached {
			compile += " (cached)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.5f\t%.5f\t%d/%d\t%.1f\t%.1f\t%s\t%.2f\t%.0f (%s)\n", s.Units, res, s.MaxDeltaP,
			s.MaxDeltaPBySeq["prefill then decode"], int(math.Round(s.Top1Agreement*float64(s.Rows))), s.Rows,
			s.PromptTokensPerSecond, s.GenTokensPerSecond, compile, s.LoadSeconds, s.RSSMB, s.RSSKind)
	}
	tw.Flush()
	if len(r.Static) > 0 {
		fmt.Fprintf(w, "\nstatic ANE checks (from documented limits, not a measurement; lilims plan says more):\n")
		for _, f := range r.Static {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintf(w, "\n%s\n", r.Verdict)
}
