package reference

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// TestBufferSharing opens stories260K exported with C = 256, N = 64 (5 layers, dim 64, 8
// heads, vocab 512) and measures the float storage behind the prefill function's op
// outputs. Each layer's intermediates die within the layer, so shared storage must come to
// a small fraction of the sum of all outputs (one buffer per output, as before sharing):
// here at most a quarter. The oracle tests of package runtime check that the shared buffers
// compute the same logits.
func TestBufferSharing(t *testing.T) {
	f, err := gguf.Open("../../../testdata/oracle/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "m.mlpackage")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 256, PrefillChunk: 64}, dir); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fn := m.funcs["prefill"]
	if fn == nil {
		t.Fatalf("no prefill function (have %v)", m.names)
	}
	var total, distinct int
	largest := map[*float32]int{} // storage base → the largest output it holds
	for _, s := range fn.steps {
		for _, o := range s.outs {
			if cap(o.f32) == 0 {
				continue
			}
			total += cap(o.f32)
			base := unsafe.SliceData(o.f32)
			largest[base] = max(largest[base], cap(o.f32))
		}
	}
	for _, n := range largest {
		distinct += n
	}
	t.Logf("prefill outputs: %d floats in all, %d in distinct storage", total, distinct)
	if distinct == 0 || 4*distinct > total {
		t.Errorf("distinct output storage %d floats of %d: want at most a quarter", distinct, total)
	}
}

// TestViews: in the ANE layout, reshapes and the per-head slices of the KV cache are views
// of their inputs' storage (no copy), and a view keeps its source out of the pool while it
// is read — TestANELayout (package runtime) checks that the logits stay those of the
// standard layout. Here: the views exist after a call, and the outputs equal, bit for bit,
// those of the same program run with copies (a view whose source went back to the pool
// early would read another op's values).
func TestViews(t *testing.T) {
	f, err := gguf.Open("../../../testdata/oracle/models/stories260K.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), "m.mlpackage")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 64, PrefillChunk: 16, Layout: arch.ANE}, dir); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mc, err := Open(dir, Options{copyViews: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	for _, name := range []string{"prefill", "decode"} {
		fn := m.funcs[name]
		if fn == nil {
			t.Fatalf("no %s function (have %v)", name, m.names)
		}
		in := map[string]*Tensor{}
		for _, d := range fn.desc.Inputs {
			in[d.Name] = NewTensor(d.DType, d.Shape...)
		}
		st, err := m.NewState(name)
		if err != nil {
			t.Fatal(err)
		}
		first, err := m.Predict(name, in, st)
		if err != nil {
			t.Fatal(err)
		}
		views := 0
		for i, s := range fn.steps {
			if s.typ != "reshape" && s.typ != "slice_by_index" {
				continue
			}
			for _, o := range s.outs {
				if len(o.f32) == 0 {
					continue
				}
				if p := unsafe.SliceData(o.f32); cap(o.f32) == len(o.f32) && !ownsStorage(fn, i, p) {
					views++
				}
			}
		}
		t.Logf("%s: %d reshape/slice outputs are views", name, views)
		if views == 0 {
			t.Error("no reshape or slice output is a view of its input: every one copies")
		}
		st2, _ := mc.NewState(name)
		second, err := mc.Predict(name, in, st2)
		if err != nil {
			t.Fatal(err)
		}
		for out, a := range first {
			b := second[out]
			for i := range a.f32 {
				if math.Float32bits(a.f32[i]) != math.Float32bits(b.f32[i]) {
					t.Fatalf("%s: %s[%d]: %v with views, %v with copies", name, out, i, a.f32[i], b.f32[i])
				}
			}
		}
	}
}

// ownsStorage reports whether p is the start of storage no other step of fn outputs into
// (a view starts inside another op's output or a state).
func ownsStorage(fn *function, self int, p *float32) bool {
	for j, s := range fn.steps {
		if j == self {
			continue
		}
		for _, o := range s.outs {
			if len(o.f32) == 0 {
				continue
			}
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(o.f32)))
			hi := lo + uintptr(len(o.f32))*4
			if a := uintptr(unsafe.Pointer(p)); a >= lo && a < hi && j < self {
				return false
			}
		}
	}
	return true
}
