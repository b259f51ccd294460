package export

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

const models = "../../testdata/oracle/models"

func openModel(t *testing.T, name string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(filepath.Join(models, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// parseModel writes b and parses it back.
func parseModel(t *testing.T, b *gguf.Builder) *gguf.File {
	t.Helper()
	f, err := b.Parse("mem.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func shapeOf(fd *milpb.FeatureDescription) []int64 {
	if s := fd.GetType().GetStateType(); s != nil {
		return s.GetArrayType().GetShape()
	}
	return fd.GetType().GetMultiArrayType().GetShape()
}

// TestContract checks the interface of an exported stories260K (llama: 5 layers, 4 KV
// heads of head_dim 8, 512 tokens) against the program contract.
func TestContract(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stories.mlpackage")
	if err := Export(context.Background(), openModel(t, "stories260K.gguf"), Options{ContextLength: 64, PrefillChunk: 16}, out); err != nil {
		t.Fatal(err)
	}
	pkg, err := mlpackage.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer pkg.Close()
	m := pkg.Model
	if m.GetSpecificationVersion() != 9 {
		t.Errorf("specificationVersion %d, want 9", m.GetSpecificationVersion())
	}
	d := m.GetDescription()
	if d.GetDefaultFunctionName() != "decode" {
		t.Errorf("defaultFunctionName %q, want decode", d.GetDefaultFunctionName())
	}
	wantMeta := map[string]string{
		"lilims.contract": "3", "lilims.arch": "llama", "lilims.context_length": "64",
		"lilims.prefill_chunk": "16", "lilims.vocab_size": "512", "lilims.layers": "5",
		"lilims.source": "stories260K.gguf",
	}
	for k, v := range wantMeta {
		if got := d.GetMetadata().GetUserDefined()[k]; got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	n := map[string]int64{"prefill": 16, "decode": 1}
	if len(d.GetFunctions()) != 2 {
		t.Fatalf("%d functions, want prefill and decode", len(d.GetFunctions()))
	}
	for _, fd := range d.GetFunctions() {
		N, ok := n[fd.GetName()]
		if !ok {
			t.Fatalf("unexpected function %q", fd.GetName())
		}
		want := map[string][]int64{
			"input_ids": {1, N}, "position_ids": {N}, "causal_mask": {1, 1, N, 64}, "current_pos": {1},
		}
		for _, in := range fd.GetInput() {
			if !slices.Equal(shapeOf(in), want[in.GetName()]) {
				t.Errorf("%s: input %s shape %v, want %v", fd.GetName(), in.GetName(), shapeOf(in), want[in.GetName()])
			}
			delete(want, in.GetName())
		}
		if len(want) != 0 {
			t.Errorf("%s: inputs missing: %v", fd.GetName(), want)
		}
		if len(fd.GetState()) != 10 {
			t.Errorf("%s: %d states, want 10 (K and V for 5 layers)", fd.GetName(), len(fd.GetState()))
		}
		for _, s := range fd.GetState() {
			if !slices.Equal(shapeOf(s), []int64{1, 4, 64, 8}) {
				t.Errorf("%s: state %s shape %v, want [1 4 64 8]", fd.GetName(), s.GetName(), shapeOf(s))
			}
		}
		if len(fd.GetOutput()) != 1 || fd.GetOutput()[0].GetName() != "logits" ||
			!slices.Equal(shapeOf(fd.GetOutput()[0]), []int64{1, N, 512}) ||
			fd.GetOutput()[0].GetType().GetMultiArrayType().GetDataType() != milpb.ArrayFeatureType_FLOAT32 {
			t.Errorf("%s: outputs %v, want logits fp32 [1 %d 512]", fd.GetName(), fd.GetOutput(), N)
		}
	}
}

func TestExportErrors(t *testing.T) {
	tests := []struct {
		model string
		opts  Options
		want  string
	}{
		{"mamba", Options{}, "uses: plugin:PATH"}, // an architecture lilims does not know
		{"stories260K.gguf", Options{ContextLength: 32, PrefillChunk: 64}, "prefill chunk 64 exceeds the context length 32"},
		{"stories260K.gguf", Options{ContextLength: -1}, "negative context length"},
		// gpt2 learned 128 positions (gpt2.context_length); there is no position 128 to embed.
		{"tiny-gpt2-f32.gguf", Options{ContextLength: 256, PrefillChunk: 16}, "learned 128 positions"},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "x.mlpackage")
		var f *gguf.File
		if strings.HasSuffix(tt.model, ".gguf") {
			f = openModel(t, tt.model)
		} else {
			b := gguf.NewBuilder()
			b.Set("general.architecture", tt.model)
			f = parseModel(t, b)
		}
		err := Export(context.Background(), f, tt.opts, out)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %+v: error %v, want one containing %q", tt.model, tt.opts, err, tt.want)
		}
		if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
			t.Errorf("%s %+v: failed export left %s behind", tt.model, tt.opts, out)
		}
	}
}

func TestDefaultOptions(t *testing.T) {
	// tiny-gemma declares gemma.context_length 256 (< 2048), stories260K 2048.
	for _, tt := range []struct {
		model     string
		ctx, chnk int
	}{{"tiny-gemma-f16.gguf", 256, 64}, {"stories260K.gguf", 2048, 64}} {
		_, opts, err := Program(openModel(t, tt.model), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if opts.ContextLength != tt.ctx || opts.PrefillChunk != tt.chnk {
			t.Errorf("%s: defaults %+v, want context %d, chunk %d", tt.model, opts, tt.ctx, tt.chnk)
		}
	}
}

// TestProgress checks the stage's progress events: one per weight written, in tensors.
// stories260K holds 48 tensors (embedding, output norm, output, and 9 per layer × 5), each
// bound once by the llama builder — also across two chunks, since its output is untied —
// so the events count 1 … 48 of 48.
func TestProgress(t *testing.T) {
	gg := filepath.Join(models, "stories260K.gguf")
	for _, chunks := range []int{1, 2} {
		p, errs := Spec.Resolve(map[string]any{"context": 32, "prefill_chunk": 8, "chunks": chunks})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		var events []stage.Event
		_, err := Stage{}.Build(context.Background(), stage.BuildRequest{
			ID: "export", Params: p, OutDir: t.TempDir(),
			Inputs: []stage.Artifact{{Kind: "gguf", Path: gg}},
			Report: func(ev stage.Event) { events = append(events, ev) },
		})
		if err != nil {
			t.Fatal(err)
		}
		const want = 48 // len(stories260K's tensors)
		if len(events) != want {
			t.Fatalf("chunks %d: %d events, want %d", chunks, len(events), want)
		}
		for i, ev := range events {
			if ev.Stage != "export" || ev.Event != "progress" || ev.Unit != "tensors" || ev.Done != int64(i+1) || ev.Total != want {
				t.Fatalf("chunks %d: event %d is %+v, want progress %d of %d tensors", chunks, i, ev, i+1, want)
			}
		}
	}
}
