package ggml_test

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

const modelDir = "../../../testdata/oracle/models"

// errStats accumulates squared error and squared reference over the tensors of one type.
type errStats struct {
	tensors   int
	elems     int64
	se, sr    float64 // Σ(deq−ref)², Σref²
	worstName string  // tensor with the largest relative RMSE
	worst     float64
}

func (s *errStats) relRMSE() float64 { return math.Sqrt(s.se / s.sr) }

// decodeRows dequantizes every row of t with ggml.DequantizeRow, one row at a time as the
// loader does, into a new slice.
func decodeRows(f *gguf.File, t *gguf.Tensor) ([]float32, error) {
	ne0 := t.Shape[0]
	rowBytes, err := t.Type.RowBytes(ne0)
	if err != nil {
		return nil, err
	}
	data := f.Data(t)
	rows := t.Rows()
	if int64(len(data)) != rows*rowBytes {
		return nil, fmt.Errorf("tensor %q: %d bytes for %d rows of %d", t.Name, len(data), rows, rowBytes)
	}
	out := make([]float32, rows*ne0)
	for r := int64(0); r < rows; r++ {
		if err := ggml.DequantizeRow(t.Type, data[r*rowBytes:(r+1)*rowBytes], out[r*ne0:(r+1)*ne0]); err != nil {
			return nil, fmt.Errorf("tensor %q row %d: %w", t.Name, r, err)
		}
	}
	return out, nil
}

// compareModels dequantizes every 2-D tensor of quant and of its float source ref and
// accumulates the error per ggml type of the quantized tensor.
func compareModels(t *testing.T, quant, ref string, stats map[ggml.Type]*errStats) {
	t.Helper()
	qf, err := gguf.Open(filepath.Join(modelDir, quant))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	rf, err := gguf.Open(filepath.Join(modelDir, ref))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()

	n := 0
	for _, qt := range qf.Tensors {
		if len(qt.Shape) != 2 {
			continue
		}
		rt, ok := rf.Tensor(qt.Name)
		if !ok {
			t.Errorf("%s: tensor %q missing from %s", quant, qt.Name, ref)
			continue
		}
		if fmt.Sprint(rt.Shape) != fmt.Sprint(qt.Shape) {
			t.Errorf("%s: tensor %q shape %v, %s has %v", quant, qt.Name, qt.Shape, ref, rt.Shape)
			continue
		}
		got, err := decodeRows(qf, qt)
		if err != nil {
			t.Errorf("%s: %v", quant, err)
			continue
		}
		want, err := decodeRows(rf, rt)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		var se, sr float64
		for i := range want {
			d := float64(got[i]) - float64(want[i])
			se += d * d
			sr += float64(want[i]) * float64(want[i])
		}
		s := stats[qt.Type]
		if s == nil {
			s = &errStats{}
			stats[qt.Type] = s
		}
		s.tensors++
		s.elems += int64(len(want))
		s.se += se
		s.sr += sr
		if r := math.Sqrt(se / sr); r > s.worst || s.worstName == "" {
			s.worst, s.worstName = r, quant+":"+qt.Name
		}
		n++
	}
	if n == 0 {
		t.Errorf("%s: no 2-D tensors compared", quant)
	}
}

// TestOracleModels dequantizes the tensors llama.cpp's own quantizer wrote
// (testdata/oracle/models, see its README) and compares them with the f16 (stories260K: f32)
// tensors they were made from. Tensors are grouped by their own type, since a *_k_m file may
// mix types. A wrong block layout turns the error into noise as large as the weights
// themselves (relative RMSE ≈ 100% or more), far above every bound below.
func TestOracleModels(t *testing.T) {
	pairs := []struct{ quant, ref string }{
		{"stories260K-q4_0.gguf", "stories260K.gguf"},
		{"tiny-llama256-q4_1.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q5_0.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q5_1.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q2_k.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q3_k_m.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q4_k_m.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q5_k_m.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama256-q6_k.gguf", "tiny-llama256-f16.gguf"},
		{"tiny-llama-q4_0.gguf", "tiny-llama-f16.gguf"},
		{"tiny-phi2-q4_0.gguf", "tiny-phi2-f16.gguf"},
		{"tiny-phi2-q8_0.gguf", "tiny-phi2-f16.gguf"},
	}
	stats := map[ggml.Type]*errStats{}
	for _, p := range pairs {
		compareModels(t, p.quant, p.ref, stats)
	}

	// Bounds on the relative RMSE rms(deq−ref)/rms(ref) over all 2-D tensors of a type.
	// The tiny-* weights are Gaussian noise, on which a format's error is its rounding
	// noise, step/√12 with step ≈ (block range)/(levels−1): e.g. Q4_1 over 32 Gaussians
	// (range ≈ 4.1σ) gives 4.1/15/√12 ≈ 7.9%, Q5_1 3.8%, Q8_0 (amax ≈ 2.1σ) 0.48%, Q2_K
	// (16 elements, range ≈ 3.5σ, 4 levels) ≈ 34% before its RMSE search. The measured
	// figures (this package, all fixtures) match that:
	//   Q8_0 0.537%  Q6_K 1.769%  Q5_K 3.605%  Q5_1 3.774%  Q5_0 4.254%
	//   Q4_K 7.115%  Q4_1 7.802%  Q4_0 8.602%  Q3_K 15.05%  Q2_K 29.56%
	//   F16  0.0204% (stories260K-q4_0 keeps the five 172-wide ffn_down tensors in f16:
	//        the f16 rounding of the f32 source, ≤ 2^-11 relative per element)
	// so the bounds are the measurement plus ~12%. (The tighter bounds first planned —
	// 0.5% for Q8_0/Q6_K, 3% for 4/5-bit, 12% for Q2_K/Q3_K — are below the rounding
	// noise of those formats on such data.) A misread layout — nibble order, qh bit, scale
	// unpacking, sub-block order, sign of the min — decorrelates output and weights and
	// gives ≥ 100%, far above every bound.
	bound := map[ggml.Type]float64{
		ggml.F16:  0.0003,
		ggml.Q8_0: 0.006, ggml.Q6_K: 0.020,
		ggml.Q5_K: 0.041, ggml.Q5_1: 0.043, ggml.Q5_0: 0.048,
		ggml.Q4_K: 0.080, ggml.Q4_1: 0.088, ggml.Q4_0: 0.097,
		ggml.Q3_K: 0.170, ggml.Q2_K: 0.330,
	}
	types := make([]ggml.Type, 0, len(stats))
	for typ := range stats {
		types = append(types, typ)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	for _, typ := range types {
		s := stats[typ]
		rel := s.relRMSE()
		t.Logf("%-5v %2d tensors %8d elems: relative RMSE %.4f%% (worst tensor %.4f%% %s)",
			typ, s.tensors, s.elems, 100*rel, 100*s.worst, s.worstName)
		b, ok := bound[typ]
		if !ok {
			t.Errorf("%v: no bound for this type (%d tensors)", typ, s.tensors)
			continue
		}
		if rel > b {
			t.Errorf("%v: relative RMSE %.4f%% exceeds %.4f%%", typ, 100*rel, 100*b)
		}
	}
	for _, typ := range []ggml.Type{ggml.Q4_0, ggml.Q4_1, ggml.Q5_0, ggml.Q5_1, ggml.Q8_0,
		ggml.Q2_K, ggml.Q3_K, ggml.Q4_K, ggml.Q5_K, ggml.Q6_K} {
		if stats[typ] == nil {
			t.Errorf("%v: no tensor of this type in the fixtures", typ)
		}
	}
}

// TestOracleRequantize quantizes source tensors with QuantizeRowQ4_0/Q8_0 and compares
// with the blocks in the fixtures.
//
// stories260K-q4_0.gguf was made from the F32 stories260K.gguf by llama-quantize, which
// without an importance matrix runs quantize_row_q4_0_ref (ggml/src/ggml-quants.c): our bytes
// must be identical. The tiny-* quantized files were not made from their f16 siblings but
// from a higher-precision original (their blocks differ exactly where x/d lies within a few
// hundredths of a rounding tie), so there we demand that every scale is within one f16 ulp,
// every quant within one step, and that such near-tie flips stay rare.
func TestOracleRequantize(t *testing.T) {
	pairs := []struct {
		quant, ref string
		typ        ggml.Type
		q          func([]float32, []byte) error
		exact      bool
		// maxFlips bounds the share of quants that differ (near mode).
		maxFlips float64
	}{
		{"stories260K-q4_0.gguf", "stories260K.gguf", ggml.Q4_0, ggml.QuantizeRowQ4_0, true, 0},
		// Measured quants that differ: tiny-llama Q4_0 634 of 630784 (0.10%), tiny-phi2
		// Q4_0 756 of 851968 (0.09%; includes the 10 blocks whose extreme changed sign, where
		// all 32 quants move), Q8_0 8109 of 851968 (0.95%). Largest |Δy|: 1.0000 steps for
		// Q4_0, 1.1101 for Q8_0 (a flipped quant in a block whose scale moved one ulp).
		{"tiny-llama-q4_0.gguf", "tiny-llama-f16.gguf", ggml.Q4_0, ggml.QuantizeRowQ4_0, false, 0.005},
		{"tiny-phi2-q4_0.gguf", "tiny-phi2-f16.gguf", ggml.Q4_0, ggml.QuantizeRowQ4_0, false, 0.005},
		{"tiny-phi2-q8_0.gguf", "tiny-phi2-f16.gguf", ggml.Q8_0, ggml.QuantizeRowQ8_0, false, 0.02},
	}
	for _, p := range pairs {
		t.Run(p.quant, func(t *testing.T) {
			qf, err := gguf.Open(filepath.Join(modelDir, p.quant))
			if err != nil {
				t.Fatal(err)
			}
			defer qf.Close()
			rf, err := gguf.Open(filepath.Join(modelDir, p.ref))
			if err != nil {
				t.Fatal(err)
			}
			defer rf.Close()
			var c blockDiff
			n := 0
			for _, qt := range qf.Tensors {
				if qt.Type != p.typ {
					continue
				}
				rt, ok := rf.Tensor(qt.Name)
				if !ok {
					t.Errorf("tensor %q missing from %s", qt.Name, p.ref)
					continue
				}
				x, err := decodeRows(rf, rt)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, qt.Size)
				if err := p.q(x, got); err != nil {
					t.Fatalf("tensor %q: %v", qt.Name, err)
				}
				c.add(t, p.typ, got, qf.Data(qt))
				n++
			}
			if n == 0 {
				t.Fatalf("no %v tensors", p.typ)
			}
			t.Logf("%d %v tensors: %d of %d bytes differ; %d of %d scales; %d of %d quants (max |Δy| %.4f steps)",
				n, p.typ, c.bytes, c.total, c.scales, c.blocks, c.flips, c.elems, c.maxStep)
			if p.exact {
				if c.bytes != 0 {
					t.Errorf("%d of %d bytes differ from llama.cpp's", c.bytes, c.total)
				}
				return
			}
			// One step from a quant on the other side of a tie, plus |q| ≤ qmax times a
			// one-ulp change of the f16 scale (≤ 2^-10 of it): 1 + qmax/1024 steps.
			qmax := map[ggml.Type]float64{ggml.Q4_0: 8, ggml.Q8_0: 127}[p.typ]
			if lim := 1 + qmax/1024; c.maxStep > lim {
				t.Errorf("values differ by up to %.4f quantization steps; want ≤ %.4f", c.maxStep, lim)
			}
			if f := float64(c.flips) / float64(c.elems); f > p.maxFlips {
				t.Errorf("%.3f%% of quants differ, want ≤ %.3f%%", 100*f, 100*p.maxFlips)
			}
		})
	}
}

// blockDiff compares Q4_0 or Q8_0 rows block by block, both as bytes and as dequantized
// values.
type blockDiff struct {
	total, bytes   int     // bytes compared, bytes differing
	blocks, scales int     // blocks, blocks whose f16 scale differs
	elems, flips   int     // quants, quants that differ
	maxStep        float64 // largest |Δy| in units of the larger of the two block scales
}

func (c *blockDiff) add(t *testing.T, typ ggml.Type, got, want []byte) {
	t.Helper()
	bs := typ.BlockBytes()
	var yg, yw [32]float32
	for b := 0; b+bs <= len(want); b += bs {
		g, w := got[b:b+bs], want[b:b+bs]
		for i := range w {
			if g[i] != w[i] {
				c.bytes++
			}
		}
		c.total += bs
		c.blocks++
		if g[0] != w[0] || g[1] != w[1] {
			c.scales++
		}
		if err := ggml.DequantizeRow(typ, g, yg[:]); err != nil {
			t.Fatal(err)
		}
		if err := ggml.DequantizeRow(typ, w, yw[:]); err != nil {
			t.Fatal(err)
		}
		// The scale is −8·d or 127·d away from the block's extreme; read it back from
		// the dequantized row as the largest |y| over 8 or 127.
		step := float64(max(absMax(yg[:]), absMax(yw[:])))
		if typ == ggml.Q4_0 {
			step /= 8
		} else {
			step /= 127
		}
		for e := range 32 {
			c.elems++
			c.maxStep = max(c.maxStep, math.Abs(float64(yg[e]-yw[e]))/step)
			var qg, qw byte
			if typ == ggml.Q4_0 {
				sh := 4 * (e / 16)
				qg, qw = g[2+e%16]>>sh&15, w[2+e%16]>>sh&15
			} else {
				qg, qw = g[2+e], w[2+e]
			}
			if qg != qw {
				c.flips++
			}
		}
	}
}

func absMax(y []float32) float32 {
	var m float32
	for _, v := range y {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
