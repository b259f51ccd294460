package export

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/compile"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/export/mil"
	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/quantize"
	"github.com/lilims/lilims/stages/quantize/qweights"
)

// quantizeDir runs the quantize stage on a testdata model into a temp directory.
func quantizeDir(t *testing.T, model string, raw map[string]any) string {
	t.Helper()
	p, errs := quantize.Spec.Resolve(raw)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg, err := quantize.ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := quantize.Quantize(context.Background(), openModel(t, model), cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestQuantizedPackages exports stories260K with each int4 scheme, in both layouts, checks
// the package with the static validator and its weight.bin size against the manifest.
//
// Prediction: the quantized tensors take bits_per_weight·elements/8 bytes (the manifest's
// figure counts data, scales, offsets and palettes), every other weight 2 bytes per element
// (fp16), plus the rope tables (2 tables of C·n_rot/2 fp16) and the blob framing: a 64-byte
// file header and a 64-byte metadata record per blob (MILBlob v2, coremltools' mlmodel/src/MILBlob/Blob/StorageFormat.hpp). What is
// left unpredicted is each record's padding to 64 bytes and small constants; 3% covers it.
func TestQuantizedPackages(t *testing.T) {
	const model, c = "stories260K.gguf", 64
	f := openModel(t, model)
	cfg, err := arch.ReadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"block", "channel", "lut4"} {
		dir := quantizeDir(t, model, map[string]any{"scheme": scheme})
		w, err := OpenWeights(dir)
		if err != nil {
			t.Fatal(err)
		}
		man := w.Manifest()
		var qElems, fp16Elems float64
		for _, ti := range man.Tensors {
			n := 1.0
			for _, d := range ti.Shape {
				n *= float64(d)
			}
			if ti.Encoding == quantize.FP16 {
				fp16Elems += n
			} else {
				qElems += n
			}
		}
		for _, layout := range []arch.Layout{arch.Standard, arch.ANE} {
			out := filepath.Join(t.TempDir(), "m.mlpackage")
			if err := Export(context.Background(), f, Options{ContextLength: c, PrefillChunk: 16, Weights: w, Layout: layout}, out); err != nil {
				t.Fatalf("%s %v: %v", scheme, layout, err)
			}
			if err := compile.Validate(out); err != nil {
				t.Errorf("%s %v: %v", scheme, layout, err)
			}
			wpath := filepath.Join(out, "Data/com.apple.CoreML/weights/weight.bin")
			r, err := blob.Open(wpath)
			if err != nil {
				t.Fatal(err)
			}
			records := r.Count()
			size := r.Size()
			r.Close()
			predicted := man.BitsPerWeight*qElems/8 + 2*fp16Elems + 2*2*float64(c*cfg.RopeDims/2) + 64 + 64*float64(records)
			rel := math.Abs(float64(size)-predicted) / predicted
			t.Logf("%s %v: %.3f bits/weight over %.0f weights; weight.bin %d bytes, predicted %.0f (%.2f%%)",
				scheme, layout, man.BitsPerWeight, qElems, size, predicted, 100*rel)
			if rel > 0.03 {
				t.Errorf("%s %v: weight.bin %d bytes, the manifest predicts %.0f (off by %.1f%% > 3%%)", scheme, layout, size, predicted, 100*rel)
			}
		}
		w.Close()
	}
}

// TestInterfaceUnchanged: quantized weights, the ANE layout and both together leave the
// package's interface (functions, inputs, states, outputs: ModelDescription) exactly as the
// fp16 standard export declares it — everything apart from the layout metadata.
func TestInterfaceUnchanged(t *testing.T) {
	const model = "tiny-llama-f16.gguf"
	f := openModel(t, model)
	w, err := OpenWeights(quantizeDir(t, model, map[string]any{"scheme": "lut4"}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	describe := func(o Options) proto.Message {
		out := filepath.Join(t.TempDir(), "m.mlpackage")
		if err := Export(context.Background(), f, o, out); err != nil {
			t.Fatal(err)
		}
		pkg, err := mlpackage.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer pkg.Close()
		d := pkg.Model.GetDescription()
		delete(d.GetMetadata().GetUserDefined(), "lilims.layout")
		return d
	}
	base := describe(Options{ContextLength: 32, PrefillChunk: 8})
	for _, o := range []Options{
		{ContextLength: 32, PrefillChunk: 8, Weights: w},
		{ContextLength: 32, PrefillChunk: 8, Layout: arch.ANE},
		{ContextLength: 32, PrefillChunk: 8, Layout: arch.ANE, Weights: w},
	} {
		if d := describe(o); !proto.Equal(base, d) {
			t.Errorf("layout %v, quantized %v: interface differs from the fp16 standard export:\n%v\nwant\n%v", o.Layout, o.Weights != nil, d, base)
		}
	}
}

// TestStage runs the stage as the pipeline does: gguf plus quantized inputs, chunked output.
func TestStage(t *testing.T) {
	gg := filepath.Join(models, "stories260K.gguf")
	q := quantizeDir(t, "stories260K.gguf", map[string]any{"scheme": "block"})
	p, errs := Spec.Resolve(map[string]any{"context": 64, "prefill_chunk": 16, "chunks": 2, "layout": "ane"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out := t.TempDir()
	art, err := Stage{}.Build(context.Background(), stage.BuildRequest{
		Params: p, OutDir: out,
		Inputs: []stage.Artifact{{Kind: "gguf", Path: gg}, {Kind: "quantized", Path: q}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if art.Kind != "mlpackage" || art.Meta["chunks"] != "2" || art.Meta["layout"] != "ane" || art.Meta["quantization"] != "block" {
		t.Errorf("artifact %+v", art)
	}
	for _, name := range []string{mlpackage.ChunkIndexFile, "chunk_0.mlpackage", "chunk_1.mlpackage"} {
		if _, err := os.Stat(filepath.Join(art.Path, name)); err != nil {
			t.Error(err)
		}
	}
	for _, raw := range []map[string]any{{"prefill_chunk": 0}, {"context": MaxContextLength + 1}, {"chunks": 0}, {"chunks": 6}} {
		p, errs := Spec.Resolve(raw)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		if _, err := (Stage{}).Build(context.Background(), stage.BuildRequest{Params: p, OutDir: t.TempDir(),
			Inputs: []stage.Artifact{{Kind: "gguf", Path: gg}}}); err == nil {
			t.Errorf("%v: no error", raw)
		}
	}
}

// TestTranscodedWorkers: weight.bin is the same bytes whether the transcoding of ggml
// blocks runs on one worker or several (qweights transcodes batches of rows in parallel
// and must write them in row order). The fixtures' largest weights span several batches
// (a batch is 2¹⁶ elements).
func TestTranscodedWorkers(t *testing.T) {
	for _, model := range []string{"tiny-llama256-q4_k_m.gguf", "tiny-phi2-q4_0.gguf"} {
		f := openModel(t, model)
		dir := quantizeDir(t, model, map[string]any{"scheme": "gguf"})
		export := func(procs int) []byte {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			w, err := OpenWeights(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			big := false
			for _, ti := range w.Manifest().Tensors {
				big = big || ti.Stored == qweights.StoredSource && ti.Shape[0]*ti.Shape[1] >= 2<<16
			}
			if !big {
				t.Fatalf("%s: no transcoded weight spans 2 batches", model)
			}
			return exportWeightBin(t, f, w)
		}
		one, four := export(1), export(4)
		if !bytes.Equal(one, four) {
			t.Errorf("%s: weight.bin differs with 1 and 4 workers (%d and %d bytes)", model, len(one), len(four))
		}
	}
}

// exportWeightBin exports f with weights w and returns the package's weight.bin.
func exportWeightBin(t *testing.T, f *gguf.File, w arch.WeightSet) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.mlpackage")
	if err := Export(context.Background(), f, Options{ContextLength: 64, PrefillChunk: 16, Weights: w}, out); err != nil {
		t.Fatalf("%s: %v", f.Path, err)
	}
	b, err := os.ReadFile(filepath.Join(out, "Data/com.apple.CoreML/weights/weight.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTranscodedInPlace checks that transcoded weights written in place in weight.bin
// (blob.Writer.Reserve, on Linux) give the file Add gives.
func TestTranscodedInPlace(t *testing.T) {
	for _, model := range []string{"tiny-llama256-q4_k_m.gguf", "tiny-llama256-q6_k.gguf"} {
		f := openModel(t, model)
		dir := quantizeDir(t, model, map[string]any{"scheme": "gguf"})
		export := func(inPlace bool) ([]byte, int) {
			reserved := 0
			defer func(r func(mil.BlobReserver, blob.DataType, int) (uint64, []byte, func() error, error)) { reserve = r }(reserve)
			reserve = func(r mil.BlobReserver, dtype blob.DataType, n int) (uint64, []byte, func() error, error) {
				if !inPlace {
					return 0, nil, nil, blob.ErrNoReserve
				}
				reserved++
				return r.Reserve(dtype, n)
			}
			w, err := OpenWeights(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			return exportWeightBin(t, f, w), reserved
		}
		added, _ := export(false)
		inPlace, reserved := export(true)
		derived := 0
		w, err := OpenWeights(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range w.Manifest().Tensors {
			if ti.Stored == qweights.StoredSource {
				derived++
			}
		}
		w.Close()
		if runtime.GOOS == "linux" && (derived == 0 || reserved != derived) {
			t.Errorf("%s: %d records reserved, want one per transcoded weight (%d)", model, reserved, derived)
		}
		if !bytes.Equal(added, inPlace) {
			t.Errorf("%s: weight.bin differs written in place and added (%d and %d bytes)", model, len(inPlace), len(added))
		}
	}
}
