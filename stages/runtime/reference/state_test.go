package reference

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// exportForTest exports a testdata model with C = 32, N = 8 and returns the package path.
func exportForTest(t *testing.T, model string) string {
	return exportWith(t, model, export.Options{ContextLength: 32, PrefillChunk: 8})
}

// exportWith exports a testdata model with opts and returns the package path.
func exportWith(t *testing.T, model string, opts export.Options) string {
	t.Helper()
	f, err := gguf.Open(filepath.Join("../../../testdata/oracle/models", model))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("%s-c%d-%v.mlpackage", model, opts.ContextLength, opts.Layout))
	if err := export.Export(context.Background(), f, opts, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// contractInputs builds the exported program's inputs for n tokens at position pos with a
// context of c (the contract of package export: causal_mask 0 where key j ≤ position, −1e4
// elsewhere).
func contractInputs(n, pos, c int) map[string]*Tensor {
	ids, posIDs := NewTensor(Int32, 1, n), NewTensor(Int32, n)
	mask := NewTensor(Float16, 1, 1, n, c)
	for i := range n {
		ids.i32[i] = int32(1 + (pos+i)*37%200)
		posIDs.i32[i] = int32(pos + i)
		for j := range c {
			if j > pos+i {
				mask.f32[i*c+j] = -1e4
			}
		}
	}
	cur := NewTensor(Int32, 1)
	cur.i32[0] = int32(pos)
	return map[string]*Tensor{"input_ids": ids, "position_ids": posIDs, "causal_mask": mask, "current_pos": cur}
}

// TestInPlaceStates runs an exported package with in-place KV updates (stateAliases) and
// with the copying read_state/slice_update/write_state, on a prefill chunk and then decode
// steps, and requires identical bits in every logit and every state value: the in-place
// path is an optimisation, not an approximation.
func TestInPlaceStates(t *testing.T) {
	for _, model := range []string{"stories260K.gguf", "tiny-llama-f16.gguf"} {
		dir := exportForTest(t, model)
		for _, prec := range []Precision{FP16Faithful, FP32} {
			fast, err := Open(dir, Options{Precision: prec})
			if err != nil {
				t.Fatal(err)
			}
			slow, err := Open(dir, Options{Precision: prec, copyStates: true})
			if err != nil {
				t.Fatal(err)
			}
			// Every layer's K and V chain must be in place, or the test checks nothing.
			layers, err := strconv.Atoi(fast.Metadata()["lilims.layers"])
			if err != nil {
				t.Fatal(err)
			}
			for _, fn := range []string{"prefill", "decode"} {
				f := fast.funcs[fn]
				if got := len(f.finish); got != 2*layers || len(slow.funcs[fn].finish) != 0 {
					t.Fatalf("%s %s: %d in-place state chains (copying model: %d), want 2 × %d layers",
						model, fn, got, len(slow.funcs[fn].finish), layers)
				}
			}
			stFast, _ := fast.NewState("decode")
			stSlow, _ := slow.NewState("decode")
			calls := []struct {
				fn     string
				n, pos int
			}{{"prefill", 8, 0}, {"decode", 1, 8}, {"decode", 1, 9}, {"prefill", 8, 10}, {"decode", 1, 18}}
			for _, c := range calls {
				in := contractInputs(c.n, c.pos, 32)
				a, err := fast.Predict(c.fn, in, stFast)
				if err != nil {
					t.Fatal(err)
				}
				b, err := slow.Predict(c.fn, in, stSlow)
				if err != nil {
					t.Fatal(err)
				}
				sameBits(t, model+" "+c.fn+" logits", a["logits"], b["logits"])
				for _, name := range stFast.Names() {
					x, _ := stFast.Get(name)
					y, _ := stSlow.Get(name)
					sameBits(t, model+" "+c.fn+" state "+name, x, y)
				}
			}
			fast.Close()
			slow.Close()
		}
	}
}

func sameBits(t *testing.T, what string, a, b *Tensor) {
	t.Helper()
	if !sameShape(a.Shape, b.Shape) {
		t.Fatalf("%s: shapes %v and %v", what, a.Shape, b.Shape)
	}
	for i, v := range a.Float32s() {
		if w := b.Float32s()[i]; math.Float32bits(v) != math.Float32bits(w) {
			t.Fatalf("%s[%d]: in place %v, copying %v", what, i, v, w)
		}
	}
}

// TestDecodeAllocs: a decode step of an exported model (every kernel the llama graph uses)
// allocates nothing once the first call has sized the buffers, when the caller reuses the
// output map.
func TestDecodeAllocs(t *testing.T) {
	m, err := Open(exportForTest(t, "stories260K.gguf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, _ := m.NewState("decode")
	in := contractInputs(1, 3, 32)
	out := map[string]*Tensor{}
	if err := m.PredictInto("decode", in, st, out); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(10, func() {
		if err := m.PredictInto("decode", in, st, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decode allocates %v times per step, want 0", allocs)
	}
}
