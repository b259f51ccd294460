package coreml

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/runtime"
	"github.com/lilims/lilims/stages/runtime/reference"
)

func oraclePrompts(t *testing.T, file string) []oracle.Prompt {
	t.Helper()
	o, err := oracle.Load(oracleDir)
	if err != nil {
		t.Fatal(err)
	}
	return o.Models[file].Prompts
}

// generate prefills the prompt and decodes greedily, returning every logit row and the
// greedy tokens.
func generate(t *testing.T, s interface {
	Prefill(context.Context, []int32) ([][]float32, error)
	Decode(context.Context, int32) ([]float32, error)
	Reset()
}, prompt []int32, n int) ([][]float32, []int32) {
	t.Helper()
	ctx := context.Background()
	s.Reset()
	rows, err := s.Prefill(ctx, prompt)
	if err != nil {
		t.Fatal(err)
	}
	var greedy []int32
	last := rows[len(rows)-1]
	for len(greedy) < n {
		tok := oracle.Argmax(last)
		greedy = append(greedy, tok)
		if last, err = s.Decode(ctx, tok); err != nil {
			t.Fatal(err)
		}
		// Decode's logits last until the session's next call (the reference session
		// reuses its buffers): keep a copy.
		rows = append(rows, slices.Clone(last))
	}
	return rows, greedy
}

// Through the Core ML backend and a fake Core ML that executes the package with the
// reference runtime, the session must give exactly the reference session's logits (the
// marshalling is lossless: int32 ids, an fp16 mask whose values 0 and −1e4 are exact, fp32
// logits read back through padded strides) and so meet llama.cpp's numbers on tiny-phi2:
// max |Δp| ≤ 0.005 over the listed tokens (testdata/oracle/README.md tolerance for f16
// models) and the same 24 greedy tokens.
func TestSessionMatchesReference(t *testing.T) {
	const file = "tiny-phi2-f16.gguf"
	pkg := exportPackage(t, file, 64, 16)
	fake := &fakeCoreML{pad: 7}
	s, err := openWith(fake, pkg, Options{ComputeUnits: "cpu_and_ne"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fake.lastUnits != CPUAndNeuralEngine || !slices.Equal(fake.lastFunctions, []string{"prefill", "decode"}) {
		t.Errorf("loaded %v with %v, want prefill and decode with cpu_and_ne", fake.lastFunctions, fake.lastUnits)
	}
	ref, err := runtime.OpenReferenceOptions(pkg, reference.Options{Precision: reference.FP32})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	var worst float64
	for _, pr := range oraclePrompts(t, file) {
		got, greedy := generate(t, s, pr.Tokens, len(pr.Greedy))
		want, _ := generate(t, ref, pr.Tokens, len(pr.Greedy))
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("%q: logits row %d differ from the reference session's", pr.Prompt, i)
			}
		}
		if !slices.Equal(greedy, pr.Greedy) {
			t.Errorf("%q: greedy %v, llama.cpp %v", pr.Prompt, greedy, pr.Greedy)
		}
		for i, st := range pr.Steps {
			d, _, _ := st.Check(got[i])
			worst = math.Max(worst, d)
		}
	}
	t.Logf("max |Δp| against llama.cpp: %.5f", worst)
	if worst > 0.005 {
		t.Errorf("max |Δp| %.5f > 0.005", worst)
	}
}

// fp16 logits (as the Neural Engine may return them) are read and widened; they differ
// from the fp32 ones by at most fp16 rounding: half a unit in the last place, 2^-11
// relative.
func TestSessionFP16Logits(t *testing.T) {
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	s32, err := openWith(&fakeCoreML{}, pkg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s32.Close()
	s16, err := openWith(&fakeCoreML{fp16Logits: true, pad: 32}, pkg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s16.Close()
	prompt := []int32{1, 2, 3, 500, 1023}
	a, _ := generate(t, s32, prompt, 4)
	b, _ := generate(t, s16, prompt, 4)
	for i := range a {
		for j := range a[i] {
			if d := math.Abs(float64(a[i][j] - b[i][j])); d > math.Abs(float64(a[i][j]))*0x1p-11+1e-7 {
				t.Fatalf("row %d logit %d: fp16 %v vs fp32 %v", i, j, b[i][j], a[i][j])
			}
		}
	}
}

// Errors from the framework reach the caller naming the call, with the NSError's domain and
// code intact, and everything is released.
func TestOpenErrors(t *testing.T) {
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	other := exportPackage(t, "tiny-phi2-f16.gguf", 32, 8) // same model, other context
	compiled := filepath.Join(t.TempDir(), "model.mlmodelc")
	if err := os.Mkdir(compiled, 0o755); err != nil {
		t.Fatal(err)
	}
	loadErr := nsError("+[MLModel modelWithContentsOfURL:configuration:error:]", "com.apple.CoreML", 0, "Unable to load model")
	for _, tc := range []struct {
		name   string
		fake   *fakeCoreML
		path   string
		opts   Options
		want   string
		nsCode int // the NSError code expected through errors.As, -1: not an NSError
		calls  int // framework calls expected: 0 when the input is refused first
	}{
		{"bad compute units", &fakeCoreML{}, pkg, Options{ComputeUnits: "ane"}, `compute units "ane" is not one of`, -1, 0},
		{"not a model", &fakeCoreML{}, filepath.Join(oracleDir, "models", "stories260K.gguf"), Options{}, "neither an .mlpackage, a compiled .mlmodelc nor a chunked export", -1, 0},
		{"missing package", &fakeCoreML{}, filepath.Join(t.TempDir(), "x.mlpackage"), Options{}, "no such file", -1, 0},
		{"compiled without package", &fakeCoreML{}, compiled, Options{}, "needs its source .mlpackage", -1, 0},
		{"compile fails", &fakeCoreML{compileErr: nsError("+[MLModel compileModelAtURL:error:]", "com.apple.CoreML", 0, "validator error")},
			pkg, Options{}, "compile " + pkg + ": coreml: +[MLModel compileModelAtURL:error:]: validator error (com.apple.CoreML error 0)", 0, 1},
		{"load fails", &fakeCoreML{loadErr: loadErr}, pkg, Options{ComputeUnits: "cpu_only"},
			"load function prefill of", 0, 2},
		{"nil state", &fakeCoreML{nilState: true}, pkg, Options{}, "-[MLModel newState]: returned nil without an NSError", -1, 3},
		{"no logits", &fakeCoreML{nilLogits: true}, pkg, Options{}, `featureValueForName:] for "logits": returned nil`, -1, 3},
		// A compiled model built from another package: Core ML refuses the inputs.
		{"compiled from another package", &fakeCoreML{compiledFrom: other}, compiled, Options{Package: pkg},
			`check of decode: coreml: -[MLModel predictionFromFeatures:usingState:error:] (emulated): input "causal_mask" is float16 [1 1 1 64], the model takes float16 [1 1 1 32]`, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openWith(tc.fake, tc.path, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var ns *Error
			if tc.nsCode >= 0 && (!errors.As(err, &ns) || ns.Code != tc.nsCode || ns.Domain != "com.apple.CoreML") {
				t.Errorf("NSError fields lost: %+v", ns)
			}
			if len(tc.fake.calls) != tc.calls {
				t.Errorf("framework calls %v, want %d", tc.fake.calls, tc.calls)
			}
			if tc.fake.released != tc.fake.loaded || tc.fake.statesFreed != tc.fake.states {
				t.Errorf("leaked: %d of %d models, %d of %d states released", tc.fake.released, tc.fake.loaded, tc.fake.statesFreed, tc.fake.states)
			}
		})
	}
}

// A session owns its backend: Close releases every MLState and both models and removes the
// temporary compiled model; later calls fail cleanly. A prediction error reaches the
// session's caller with the NSError intact.
func TestSessionLifecycle(t *testing.T) {
	pkg := exportPackage(t, "tiny-phi2-f16.gguf", 64, 16)
	fake := &fakeCoreML{}
	s, err := openWith(fake, pkg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The open-time check: one decode and one prefill on throwaway states, released.
	if fake.predictions != 2 || fake.states != 2 || fake.statesFreed != 2 {
		t.Errorf("open check: %d predictions, %d states, %d released; want 2, 2, 2", fake.predictions, fake.states, fake.statesFreed)
	}
	ctx := context.Background()
	if _, err := s.Prefill(ctx, []int32{5, 6, 7}); err != nil {
		t.Fatal(err)
	}
	fake.predictErr = nsError("-[MLModel predictionFromFeatures:usingState:error:] (decode)", "com.apple.CoreML", 11, "prediction cancelled")
	_, err = s.Decode(ctx, 8)
	var ns *Error
	if !errors.As(err, &ns) || ns.Code != 11 || !strings.Contains(err.Error(), "runtime: decode at position 3") {
		t.Errorf("decode error %v, want the NSError (code 11) at position 3", err)
	}
	fake.predictErr = nil

	// A state from another backend is refused, not used.
	other, err := openWith(&fakeCoreML{}, pkg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	foreign, _ := other.Backend.NewState()
	if _, err := s.Backend.Predict("decode", runtime.Inputs{}, foreign); err == nil || !strings.Contains(err.Error(), "not made by this backend") {
		t.Errorf("foreign state: %v", err)
	}
	if _, err := s.Backend.Predict("generate", runtime.Inputs{}, foreign); err == nil || !strings.Contains(err.Error(), `no function "generate"`) {
		t.Errorf("unknown function: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fake.released != 2 || fake.statesFreed != fake.states {
		t.Errorf("after Close: %d models released (want 2), %d of %d states", fake.released, fake.statesFreed, fake.states)
	}
	if _, err := os.Stat(fake.compiledPath); !os.IsNotExist(err) {
		t.Errorf("temporary compiled model %s survives Close: %v", fake.compiledPath, err)
	}
	if _, err := s.Decode(ctx, 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("decode after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Inputs whose lengths disagree with the declared shapes are refused before any call.
func TestBuildInputsErrors(t *testing.T) {
	it, err := ReadInterface(exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	if err != nil {
		t.Fatal(err)
	}
	ok := runtime.Inputs{InputIDs: []int32{3}, PositionIDs: []int32{0}, CausalMask: make([]float32, 64)}
	if _, err := buildInputs(&it.Decode, ok, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(in *runtime.Inputs)
		want string
	}{
		{"two ids", func(in *runtime.Inputs) { in.InputIDs = []int32{1, 2} }, "input input_ids: coreml: 2 values for an array of shape [1 1]"},
		{"short mask", func(in *runtime.Inputs) { in.CausalMask = make([]float32, 32) }, "input causal_mask: coreml: 32 values for an array of shape [1 1 1 64]"},
		{"no positions", func(in *runtime.Inputs) { in.PositionIDs = nil }, "input position_ids: coreml: 0 values"},
	} {
		in := ok
		tc.edit(&in)
		if _, err := buildInputs(&it.Decode, in, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
