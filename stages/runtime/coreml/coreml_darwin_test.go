//go:build darwin

package coreml

// These tests drive the real Core ML framework: `go test ./stages/runtime/coreml` on a Mac
// with macOS 15 or later runs the fixtures through Core ML with every compute-unit setting
// and compares them with the reference runtime. Nothing here has run on hardware yet
// (docs/mac.md says what has); they compile everywhere
// (GOOS=darwin go test -c ./stages/runtime/coreml).

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

// requireCoreML skips on a Mac that cannot run lilims packages (macOS < 15), saying why.
func requireCoreML(t *testing.T) {
	t.Helper()
	if err := loadFramework(); err != nil {
		if errors.Is(err, ErrUnavailable) {
			t.Skipf("Core ML cannot run lilims packages here: %v", err)
		}
		t.Fatal(err)
	}
}

var everyUnits = []string{"cpu_only", "cpu_and_gpu", "cpu_and_ne", "all"}

// Core ML against the reference runtime (fp32) on the oracle prompts of tiny-phi2 (fp16):
// max |Δp| ≤ 0.005 (testdata/oracle/README.md, fp16 tolerance) over every prompt position
// and 8 teacher-forced decode steps after the prompt — the steps where a KV state written by
// prefill and not seen by decode would show — and the same top-1 wherever the reference's
// margin exceeds 0.02; for each compute-unit setting, single package and chunked.
func TestCoreMLMatchesReference(t *testing.T) {
	requireCoreML(t)
	const file = "tiny-phi2-f16.gguf"
	for _, tc := range []struct {
		name string
		path string
	}{
		{"package", exportPackage(t, file, 64, 16)},
		{"3 chunks", exportChunks(t, file, 3)},
	} {
		ref, err := runtime.OpenReferenceOptions(tc.path, reference.Options{Precision: reference.FP32})
		if err != nil {
			t.Fatal(err)
		}
		for _, units := range everyUnits {
			s, err := OpenOptions(tc.path, Options{ComputeUnits: units, CacheDir: t.TempDir()})
			if err != nil {
				t.Fatalf("%s %s: %v", tc.name, units, err)
			}
			var worst float64
			for _, pr := range oraclePrompts(t, file) {
				want, greedy := generate(t, ref, pr.Tokens, 8)
				got := teacherForced(t, s, pr.Tokens, greedy)
				for i := range want {
					p, q := oracle.Softmax(got[i]), oracle.Softmax(want[i])
					for j := range p {
						worst = math.Max(worst, math.Abs(p[j]-q[j]))
					}
					if oracle.Argmax(got[i]) != oracle.Argmax(want[i]) && oracle.TopMargin(q) > 0.02 {
						t.Errorf("%s %s %q row %d: top-1 %d, reference %d (margin %.3f)", tc.name, units, pr.Prompt, i,
							oracle.Argmax(got[i]), oracle.Argmax(want[i]), oracle.TopMargin(q))
					}
				}
			}
			t.Logf("%s %s: max |Δp| %.5f against the reference runtime", tc.name, units, worst)
			if worst > 0.005 {
				t.Errorf("%s %s: max |Δp| %.5f > 0.005", tc.name, units, worst)
			}
			s.Close()
		}
		ref.Close()
	}
}

// teacherForced prefills prompt and decodes the given tokens, returning every logit row.
func teacherForced(t *testing.T, s *Session, prompt, feed []int32) [][]float32 {
	t.Helper()
	ctx := t.Context()
	s.Reset()
	rows, err := s.Prefill(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range feed {
		l, err := s.Decode(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, slices.Clone(l))
	}
	return rows
}

// The second open of a package loads the compiled model from the same cache path without
// compiling (so Core ML's device-specialisation cache, keyed by path, can hit).
func TestCoreMLCompiledCache(t *testing.T) {
	requireCoreML(t)
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	cache := t.TempDir()
	a, err := OpenOptions(pkg, Options{ComputeUnits: "cpu_and_ne", CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := OpenOptions(pkg, Options{ComputeUnits: "cpu_and_ne", CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Report.CacheHit || !b.Report.CacheHit || !slices.Equal(a.Report.Compiled, b.Report.Compiled) {
		t.Errorf("first open %+v, second %+v: want a compile, then the same path from the cache", a.Report, b.Report)
	}
	t.Logf("compile %v then %v; load %v then %v", a.Report.Compile, b.Report.Compile, a.Report.Load, b.Report.Load)
}

// MLComputePlan describes every op of both functions with a device and a cost.
func TestCoreMLComputePlan(t *testing.T) {
	requireCoreML(t)
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	plan, err := LoadComputePlan(pkg, Options{ComputeUnits: "all", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]int{}
	for _, o := range plan.Ops {
		if o.Device != DeviceNone {
			placed[o.Function]++
		}
		if o.Cost < 0 || o.Cost > 1 {
			t.Errorf("%s %s: cost %g outside [0, 1]", o.Function, o.Op, o.Cost)
		}
	}
	if placed["prefill"] == 0 || placed["decode"] == 0 {
		t.Errorf("ops placed per function: %v", placed)
	}
	for _, s := range plan.ByLayer() {
		t.Logf("%s %s: %d ops %v cost %.3f", s.Function, s.Key, s.Ops, s.ByDevice, s.Cost)
	}
}
