package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lilims/lilims/pipeline"
	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/runtime/reference"
)

func newBenchCmd() *cobra.Command {
	var (
		pf               pipelineFlags
		nPrompt, nGen    int
		reps, threads    int
		asJSON           bool
		llamaPP, llamaTG float64
		llamaQuant       float64
		contexts         []int
	)
	cmd := &cobra.Command{
		Use:   "bench MODEL.gguf|PIPELINE.yaml [-p 64] [-n 32] [-r 5] [-t THREADS] [--ctx C1,C2,…] [--json]",
		Short: "Measure prompt processing and generation speed, build time and peak memory",
		Long: `Build the pipeline (timing each build stage), open its runtime and measure, like
llama-bench, prompt processing (pp: -p tokens into an empty context, one Prefill call) and
text generation (tg: -n tokens decoded one by one from an empty context), each repeated -r
times after one warm-up. Speeds are tokens per second, reported as mean ± standard deviation.

Peak RSS is the process's high-water mark (VmHWM on Linux): once for the whole run
(peak_rss_mb, which includes the build stages when they run in-process) and once for the
runtime alone (runtime_peak_rss_mb, measured from after the build where the kernel can
reset the mark). With --llama-pp/--llama-tg (llama.cpp's tokens/s on the same machine) the
ratios are printed too, and with --llama-quantize (llama-quantize's seconds for the same
conversion) the build's time over it (≤ 1: lilims converts faster). Use --no-cache for a
build figure. internal/tools/llamacpp-bench measures llama.cpp's figures.

--ctx 256,2048,8192 builds the pipeline once per exported context (the export stage's
context parameter) and prints pp, tg and the runtime's peak RSS side by side (with --json:
{"contexts": [one object per context]}): a long exported context should cost neither speed
nor memory while few positions are filled. Peak RSS is measured one context at a time; the
speeds with every context open and their repetitions interleaved, so that other processes
slowing the machine for a while slow every context alike. CPU milliseconds per token (all
threads, spin-waits included) are printed too.`,
		Example: `  lilims bench model.gguf --set quantize.scheme=block -t 2
  lilims bench pipelines/stories.yaml -p 64 -n 32 -r 3 --json
  lilims bench model.gguf --set quantize.scheme=gguf --ctx 256,2048,8192 -t 2 -r 3
  lilims bench model.gguf --set quantize.scheme=block --llama-pp 52 --llama-tg 18.3
  lilims bench model.gguf --set quantize.scheme=block --no-cache --llama-quantize 10.9 -p 0 -n 0`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if nPrompt < 0 || nGen < 0 {
				return usagef("-p and -n must be ≥ 0 (both 0: build and open only)")
			}
			if reps < 1 {
				return usagef("-r must be at least 1")
			}
			sets := pf.sets
			plan, err := loadPlan(a[0], sets)
			if err != nil {
				return err
			}
			if threads > 0 {
				rt := plan.Step(stage.KindRuntime)
				if rt == nil {
					return fmt.Errorf("%s: the pipeline has no runtime stage", a[0])
				}
				sets = append(slices.Clone(sets), rt.ID+".threads="+strconv.Itoa(threads))
				if plan, err = loadPlan(a[0], sets); err != nil {
					return err
				}
			}
			if len(contexts) > 0 {
				return benchContexts(cmd, a[0], sets, plan, pf, contexts, benchResult{Prompt: nPrompt, Gen: nGen, Reps: reps, Threads: threads}, asJSON)
			}
			r, err := benchPlan(cmd.Context(), plan, pf, benchResult{Prompt: nPrompt, Gen: nGen, Reps: reps, Threads: threads})
			if err != nil {
				return err
			}
			if llamaPP > 0 && r.PP.Mean > 0 {
				r.PPRatio = r.PP.Mean / llamaPP
			}
			if llamaTG > 0 && r.TG.Mean > 0 {
				r.TGRatio = r.TG.Mean / llamaTG
			}
			if llamaQuant > 0 {
				r.LlamaQuantize, r.BuildRatio = llamaQuant, r.BuildSeconds/llamaQuant
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r.jsonObject())
			}
			r.writeText(cmd.OutOrStdout(), llamaPP, llamaTG)
			return nil
		},
	}
	cmd.Flags().IntVarP(&nPrompt, "prompt", "p", 64, "prompt tokens processed in one Prefill (0: skip pp)")
	cmd.Flags().IntVarP(&nGen, "gen", "n", 32, "tokens generated one by one (0: skip tg)")
	cmd.Flags().IntVarP(&reps, "reps", "r", 5, "repetitions of each test (after one warm-up)")
	cmd.Flags().IntSliceVar(&contexts, "ctx", nil, "export contexts to measure side by side, e.g. 256,2048,8192 (sets EXPORT.context for each; pp, tg and runtime peak RSS per context)")
	cmd.Flags().IntVarP(&threads, "threads", "t", 0, "runtime threads (sets RUNTIME.threads; 0: the pipeline's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print one JSON object {"pp_tps", "tg_tps", "build_seconds", "peak_rss_mb", …}`)
	cmd.Flags().Float64Var(&llamaPP, "llama-pp", 0, "llama.cpp's prompt tokens/s on this machine, to print the ratio")
	cmd.Flags().Float64Var(&llamaTG, "llama-tg", 0, "llama.cpp's generation tokens/s on this machine, to print the ratio")
	cmd.Flags().Float64Var(&llamaQuant, "llama-quantize", 0, "llama-quantize's seconds for the same conversion on this machine, to print the build's ratio")
	pf.register(cmd)
	return cmd
}

// benchPlan builds plan, opens its runtime and measures it: r brings the test's sizes and
// gets the figures.
func benchPlan(ctx context.Context, plan *pipeline.Plan, pf pipelineFlags, r benchResult) (benchResult, error) {
	start := time.Now()
	b, err := buildPlan(ctx, plan, pf.workDir, pf.verbose)
	if err != nil {
		return r, err
	}
	defer b.cleanup()
	r.Model, r.BuildSeconds, r.Kernels = b.model(), time.Since(start).Seconds(), reference.Kernels()
	for _, s := range b.artifacts {
		r.Stages = append(r.Stages, benchStage{ID: s.ID, Seconds: s.Seconds, Cached: s.Cached})
	}
	if len(b.artifacts) > 0 {
		if n, err := dirSize(b.artifacts[len(b.artifacts)-1].Artifact.Path); err == nil {
			r.PackageMB = float64(n) / (1 << 20)
		}
	}
	r.BuildPeakRSSMB = peakRSSMB()
	// What the build stages freed goes back to the system before the runtime's peak is
	// measured from here.
	goruntime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	start = time.Now()
	sess, err := plan.OpenSession(ctx, b.artifacts)
	if err != nil {
		return r, err
	}
	defer sess.Close()
	r.OpenSeconds = time.Since(start).Seconds()
	r.Context = sess.ContextLength()
	if r.Prompt > r.Context || r.Gen > r.Context {
		return r, usagef("-p %d / -n %d exceed the exported context of %d (--set export.context=N)", r.Prompt, r.Gen, r.Context)
	}
	r.RSSAfterOpenMB = rssMB()
	if err := runBench(ctx, sess, &r); err != nil {
		return r, err
	}
	r.RuntimePeakRSSMB = peakRSSMB()
	r.PeakRSSMB = max(r.BuildPeakRSSMB, r.RuntimePeakRSSMB)
	return r, nil
}

// benchContexts measures the pipeline at each exported context (EXPORT.context=C) and
// prints the figures side by side. Memory first, one context at a time: build, open, one
// warm-up and one repetition, close, the memory returned to the system in between, so
// each runtime peak RSS is that context's alone. Speed then with every context's session
// open, the repetitions interleaved (each round runs every context once), so that a change
// in the machine's load between contexts does not pass for a change in speed.
func benchContexts(cmd *cobra.Command, arg string, sets []string, plan *pipeline.Plan, pf pipelineFlags, contexts []int, base benchResult, asJSON bool) error {
	ex := plan.Step(stage.KindExport)
	if ex == nil {
		return fmt.Errorf("%s: the pipeline has no export stage to set the context of", arg)
	}
	ctx := cmd.Context()
	plans := make([]*pipeline.Plan, len(contexts))
	rs := make([]benchResult, len(contexts))
	for i, c := range contexts {
		if c < 1 {
			return usagef("--ctx %d: contexts must be positive", c)
		}
		p, err := loadPlan(arg, append(slices.Clone(sets), ex.ID+".context="+strconv.Itoa(c)))
		if err != nil {
			return err
		}
		goruntime.GC()
		debug.FreeOSMemory()
		once := base
		once.Reps = 1
		if rs[i], err = benchPlan(ctx, p, pf, once); err != nil {
			return fmt.Errorf("context %d: %w", c, err)
		}
		plans[i] = p
	}
	sessions := make([]stage.Session, len(plans))
	for i, p := range plans {
		b, err := buildPlan(ctx, p, pf.workDir, pf.verbose) // cached by the first pass
		if err != nil {
			return err
		}
		defer b.cleanup()
		if sessions[i], err = p.OpenSession(ctx, b.artifacts); err != nil {
			return err
		}
		defer sessions[i].Close()
	}
	samples := make([]benchSamples, len(sessions))
	for rep := -1; rep < base.Reps; rep++ {
		for i, sess := range sessions {
			if err := samples[i].rep(ctx, sess, &rs[i], rep >= 0); err != nil {
				return fmt.Errorf("context %d: %w", contexts[i], err)
			}
		}
	}
	for i := range rs {
		rs[i].Reps = base.Reps
		samples[i].result(&rs[i])
	}
	if asJSON {
		var objs []map[string]any
		for i := range rs {
			objs = append(objs, rs[i].jsonObject())
		}
		return writeJSON(cmd.OutOrStdout(), map[string]any{"model": rs[0].Model, "kernels": rs[0].Kernels, "contexts": objs})
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "model: %s (reference kernels: %s, threads %s)\n", rs[0].Model, rs[0].Kernels, threadsString(base.Threads))
	fmt.Fprintf(w, "%8s %20s %20s %14s %14s %18s %14s\n", "context", fmt.Sprintf("pp%d t/s", base.Prompt), fmt.Sprintf("tg%d t/s", base.Gen),
		"pp CPU ms/t", "tg CPU ms/t", "runtime peak RSS", "package")
	for _, r := range rs {
		fmt.Fprintf(w, "%8d %20s %20s %14.3f %14.3f %15.0f MB %11.1f MB\n", r.Context,
			fmt.Sprintf("%.2f ± %.2f", r.PP.Mean, r.PP.Std), fmt.Sprintf("%.2f ± %.2f", r.TG.Mean, r.TG.Std),
			r.PPCPUms, r.TGCPUms, r.RuntimePeakRSSMB, r.PackageMB)
	}
	return nil
}

// speed is a tokens/s figure over repetitions.
type speed struct {
	Mean, Std float64
	Samples   []float64
}

func newSpeed(samples []float64) speed {
	s := speed{Samples: samples}
	if len(samples) == 0 {
		return s
	}
	for _, v := range samples {
		s.Mean += v
	}
	s.Mean /= float64(len(samples))
	if len(samples) > 1 {
		var ss float64
		for _, v := range samples {
			ss += (v - s.Mean) * (v - s.Mean)
		}
		s.Std = math.Sqrt(ss / float64(len(samples)-1))
	}
	return s
}

type benchStage struct {
	ID      string  `json:"id"`
	Seconds float64 `json:"seconds"`
	Cached  bool    `json:"cached,omitempty"`
}

type benchResult struct {
	Model             string
	Context           int // the exported context the session holds
	Prompt, Gen, Reps int
	Threads           int
	BuildSeconds      float64
	Stages            []benchStage
	PackageMB         float64
	OpenSeconds       float64
	PP, TG            speed
	// CPU milliseconds per token (all threads): unlike tokens/s, barely moved by other
	// processes competing for the cores, so contexts compare on a busy machine too.
	PPCPUms, TGCPUms float64
	PPRatio, TGRatio float64
	Kernels          string  // the reference runtime's kernel set
	LlamaQuantize    float64 // llama-quantize's seconds, when given
	BuildRatio       float64 // BuildSeconds / LlamaQuantize
	BuildPeakRSSMB   float64
	RuntimePeakRSSMB float64
	PeakRSSMB        float64
	RSSAfterOpenMB   float64
}

// benchTokens returns n ordinary token ids (no BOS, none of the low byte ids) below vocab.
func benchTokens(n, vocab int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32((300 + 37*i) % max(vocab, 1))
	}
	return t
}

// runBench runs one warm-up and r.Reps timed repetitions of pp and tg.
func runBench(ctx context.Context, sess stage.Session, r *benchResult) error {
	var s benchSamples
	for rep := -1; rep < r.Reps; rep++ {
		if err := s.rep(ctx, sess, r, rep >= 0); err != nil {
			return err
		}
	}
	s.result(r)
	return nil
}

// benchSamples accumulates the timed repetitions of one session.
type benchSamples struct {
	pp, tg       []float64 // tokens/s
	ppCPU, tgCPU float64   // CPU seconds
}

// rep runs one repetition of pp (r.Prompt tokens into an empty context) and tg (r.Gen
// tokens decoded one by one), recorded when timed.
func (s *benchSamples) rep(ctx context.Context, sess stage.Session, r *benchResult, timed bool) error {
	if r.Prompt > 0 {
		prompt := benchTokens(r.Prompt, sess.VocabSize())
		sess.Reset()
		t0, c0 := time.Now(), cpuSeconds()
		if _, err := sess.Prefill(ctx, prompt); err != nil {
			return err
		}
		if timed {
			s.pp = append(s.pp, float64(r.Prompt)/time.Since(t0).Seconds())
			s.ppCPU += cpuSeconds() - c0
		}
	}
	if r.Gen > 0 {
		sess.Reset()
		tok := int32(300 % max(sess.VocabSize(), 1))
		t0, c0 := time.Now(), cpuSeconds()
		for range r.Gen {
			logits, err := sess.Decode(ctx, tok)
			if err != nil {
				return err
			}
			tok = argmaxLogit(logits)
		}
		if timed {
			s.tg = append(s.tg, float64(r.Gen)/time.Since(t0).Seconds())
			s.tgCPU += cpuSeconds() - c0
		}
	}
	return ctx.Err()
}

// result sets r's speeds from the samples.
func (s *benchSamples) result(r *benchResult) {
	r.PP, r.TG = newSpeed(s.pp), newSpeed(s.tg)
	r.PPCPUms, r.TGCPUms = 0, 0
	if len(s.pp) > 0 {
		r.PPCPUms = 1000 * s.ppCPU / float64(len(s.pp)*r.Prompt)
	}
	if len(s.tg) > 0 {
		r.TGCPUms = 1000 * s.tgCPU / float64(len(s.tg)*r.Gen)
	}
}

func argmaxLogit(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

func (r *benchResult) jsonObject() map[string]any {
	round := func(f float64) float64 { return math.Round(f*1000) / 1000 }
	o := map[string]any{
		"model": r.Model, "context": r.Context, "n_prompt": r.Prompt, "n_gen": r.Gen, "reps": r.Reps, "threads": r.Threads,
		"pp_tps": round(r.PP.Mean), "pp_tps_std": round(r.PP.Std), "pp_samples": r.PP.Samples,
		"tg_tps": round(r.TG.Mean), "tg_tps_std": round(r.TG.Std), "tg_samples": r.TG.Samples,
		"pp_cpu_ms_per_token": round(r.PPCPUms), "tg_cpu_ms_per_token": round(r.TGCPUms),
		"build_seconds": round(r.BuildSeconds), "stages": r.Stages, "open_seconds": round(r.OpenSeconds),
		"package_mb": round(r.PackageMB), "peak_rss_mb": round(r.PeakRSSMB),
		"build_peak_rss_mb": round(r.BuildPeakRSSMB), "runtime_peak_rss_mb": round(r.RuntimePeakRSSMB),
		"rss_after_open_mb": round(r.RSSAfterOpenMB), "kernels": r.Kernels,
	}
	if r.PPRatio > 0 {
		o["pp_ratio"] = round(r.PPRatio)
	}
	if r.TGRatio > 0 {
		o["tg_ratio"] = round(r.TGRatio)
	}
	if r.BuildRatio > 0 {
		o["llama_quantize_seconds"], o["build_ratio"] = r.LlamaQuantize, round(r.BuildRatio)
	}
	return o
}

func (r *benchResult) writeText(w io.Writer, llamaPP, llamaTG float64) {
	fmt.Fprintf(w, "model: %s (package %.1f MB)\n", r.Model, r.PackageMB)
	fmt.Fprintf(w, "build: %.2f s", r.BuildSeconds)
	for _, s := range r.Stages {
		c := ""
		if s.Cached {
			c = " cached"
		}
		fmt.Fprintf(w, "  %s %.2f s%s", s.ID, s.Seconds, c)
	}
	if r.BuildRatio > 0 {
		fmt.Fprintf(w, "  (llama-quantize %.2f s: %.3f×)", r.LlamaQuantize, r.BuildRatio)
	}
	fmt.Fprintf(w, "\nopen:  %.2f s (reference kernels: %s)\n", r.OpenSeconds, r.Kernels)
	fmt.Fprintf(w, "%-8s %8s %20s %14s\n", "test", "threads", "t/s", "vs llama.cpp")
	row := func(name string, s speed, ref, ratio float64) {
		vs := "-"
		if ref > 0 {
			vs = fmt.Sprintf("%.3f×", ratio)
		}
		fmt.Fprintf(w, "%-8s %8s %20s %14s\n", name, threadsString(r.Threads),
			fmt.Sprintf("%.2f ± %.2f", s.Mean, s.Std), vs)
	}
	if r.Prompt > 0 {
		row(fmt.Sprintf("pp%d", r.Prompt), r.PP, llamaPP, r.PPRatio)
	}
	if r.Gen > 0 {
		row(fmt.Sprintf("tg%d", r.Gen), r.TG, llamaTG, r.TGRatio)
	}
	fmt.Fprintf(w, "peak RSS: %.0f MB (build %.0f MB, runtime %.0f MB; %.0f MB after open)\n",
		r.PeakRSSMB, r.BuildPeakRSSMB, r.RuntimePeakRSSMB, r.RSSAfterOpenMB)
}

func threadsString(n int) string {
	if n <= 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// procStatusMB returns a "Key:  N kB" field of /proc/self/status in MB, ok false when absent.
func procStatusMB(key string) (float64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			fields := strings.Fields(v)
			if len(fields) >= 1 {
				kb, err := strconv.ParseFloat(fields[0], 64)
				if err == nil {
					return kb / 1024, true
				}
			}
		}
	}
	return 0, false
}

// peakRSSMB is the process's peak resident set: VmHWM on Linux, getrusage's maxrss elsewhere.
func peakRSSMB() float64 {
	if v, ok := procStatusMB("VmHWM"); ok {
		return v
	}
	return maxRSSMB()
}

// rssMB is the current resident set (VmRSS), or the peak where it is not available.
func rssMB() float64 {
	if v, ok := procStatusMB("VmRSS"); ok {
		return v
	}
	return maxRSSMB()
}

// resetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0: writing 5 to
// /proc/self/clear_refs), so that the runtime's peak is measured apart from the build's.
// Where it cannot, the runtime's figure includes the build.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
