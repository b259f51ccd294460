package reference

import (
	"fmt"
	"math"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/arch"
)

// TestLongContextSameLogits exports stories260K with contexts 64 and 2048 and runs the same
// 35 tokens (prefill chunks and decode steps) through both, in both layouts: the logits and
// the KV rows must be the same bits (keys the mask hides add exactly nothing), the 2048
// export must follow its key axis in both functions (or the test checks nothing), and it
// must hold no more KV state than the 64 one — memory follows the positions used, not the
// exported context. The 2048 export run over all its keys gives the same bits too.
func TestLongContextSameLogits(t *testing.T) {
	for _, layout := range []arch.Layout{arch.Standard, arch.ANE} {
		opts := export.Options{ContextLength: 64, PrefillChunk: 16, Layout: layout}
		short := exportWith(t, "stories260K.gguf", opts)
		opts.ContextLength = 2048
		long := exportWith(t, "stories260K.gguf", opts)
		ms, err := Open(short, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ms.Close()
		ml, err := Open(long, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ml.Close()
		mf, err := Open(long, Options{allKeys: true})
		if err != nil {
			t.Fatal(err)
		}
		defer mf.Close()
		for _, fn := range []string{"prefill", "decode"} {
			if !ml.funcs[fn].dynKeys || mf.funcs[fn].dynKeys {
				t.Fatalf("%v %s: runs over the filled keys: %v (allKeys: %v), want true (false)", layout, fn, ml.funcs[fn].dynKeys, mf.funcs[fn].dynKeys)
			}
		}
		sts, _ := ms.NewState("decode")
		stl, _ := ml.NewState("decode")
		stf, _ := mf.NewState("decode")
		calls := []struct {
			fn     string
			n, pos int
		}{{"prefill", 16, 0}, {"decode", 1, 16}, {"decode", 1, 17}, {"prefill", 16, 18}, {"decode", 1, 34}}
		for _, c := range calls {
			what := fmt.Sprintf("%v %s at %d", layout, c.fn, c.pos)
			a, err := ms.Predict(c.fn, contractInputs(c.n, c.pos, 64), sts)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ml.Predict(c.fn, contractInputs(c.n, c.pos, 2048), stl)
			if err != nil {
				t.Fatal(err)
			}
			f, err := mf.Predict(c.fn, contractInputs(c.n, c.pos, 2048), stf)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, what+" logits (C 2048 vs 64)", b["logits"], a["logits"])
			sameBits(t, what+" logits (C 2048 over the filled keys vs all)", b["logits"], f["logits"])
		}
		for _, name := range sts.Names() {
			x, _ := sts.Get(name)
			y, _ := stl.Get(name)
			heads, d := x.Shape[1], x.Shape[3]
			for h := range heads {
				for j := range 2048 {
					for k := range d {
						var want float32
						if j < 64 {
							want = x.f32[(h*64+j)*d+k]
						}
						if got := y.f32[(h*2048+j)*d+k]; got != want {
							t.Fatalf("%v state %s[%d, %d, %d] = %v at C 2048, %v at C 64", layout, name, h, j, k, got, want)
						}
					}
				}
			}
		}
		// 35 positions: 64 rows (one key block) per state at either context.
		if s, l, f := sts.Bytes(), stl.Bytes(), stf.Bytes(); l != s || f != 32*s {
			t.Errorf("%v: KV state of %d bytes at C 2048 (%d over all keys), %d at C 64; want equal (32×)", layout, l, f, s)
		}
	}
}

// TestKeysAttended: the keys a call covers are one past the last key any row leaves
// unmasked, whatever masks (−1e4, −inf) or attends (0, NaN) there.
func TestKeysAttended(t *testing.T) {
	m, inf := float32(maskedScore), float32(math.Inf(-1))
	nan := float32(math.NaN())
	for _, c := range []struct {
		mask []float32
		n    int
		want int
	}{
		{[]float32{m, m, m, m, m, m, m}, 1, 0},
		{[]float32{0, m, m, m, m, m, m}, 1, 1},
		{[]float32{0, 0, 0, 0, 0, 0, 0}, 1, 7},
		{[]float32{0, 0, m, m, 0, inf, m}, 1, 5},
		{[]float32{0, m, m, m, m, nan, m}, 1, 6},
		{[]float32{0, 0, 0, m, m, m, m, 0, m, m, m, m, m, m}, 2, 3},
		{[]float32{0, m, m, m, m, m, m, 0, 0, 0, 0, 0, m, m}, 2, 5},
	} {
		if got := keysAttended(c.mask, c.n, len(c.mask)/c.n); got != c.want {
			t.Errorf("keysAttended(%v, %d) = %d, want %d", c.mask, c.n, got, c.want)
		}
	}
}
