package quantize

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// benchModel writes an F16 GGUF of a few 2048×2048 llama-like matrices (16 MiB of fp16
// weights per matrix) with Gaussian values, through gguf's writer.
func benchModel(b *testing.B) *gguf.File {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.gguf")
	w := gguf.NewBuilder()
	w.Set("general.architecture", "llama")
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 2048
	for _, name := range []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"} {
		data := make([]byte, 2*n*n)
		for i := 0; i < n*n; i++ {
			binary.LittleEndian.PutUint16(data[2*i:], toF16(float32(rng.NormFloat64()*0.02)))
		}
		if err := w.AddTensorBytes(name, ggml.F16, []int64{n, n}, data); err != nil {
			b.Fatal(err)
		}
	}
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.WriteTo(out); err != nil {
		b.Fatal(err)
	}
	out.Close()
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkQuantize reports MB/s of fp16 input (b.SetBytes) per scheme; the goal is ≥ 500
// MB/s for block and channel on 2 cores.
func BenchmarkQuantize(b *testing.B) {
	f := benchModel(b)
	var in int64
	for _, t := range f.Tensors {
		in += t.Size
	}
	for _, bc := range []struct {
		name string
		p    stage.Params
	}{
		{"block-rtn", stage.Params{"scheme": "block", "search": int64(0)}},
		{"block-search2", stage.Params{"scheme": "block"}},
		{"channel-rtn", stage.Params{"scheme": "channel", "search": int64(0)}},
		{"channel-search2", stage.Params{"scheme": "channel"}},
		{"channel-asym-search2", stage.Params{"scheme": "channel", "symmetric": false}},
		{"lut4", stage.Params{"scheme": "lut4"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg, err := ParseConfig(bc.p)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(in)
			b.ReportMetric(float64(runtime.GOMAXPROCS(0)), "threads")
			for b.Loop() {
				if _, err := Quantize(context.Background(), f, cfg, b.TempDir(), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTranscode reports MB/s of Q4_0 input for the lossless gguf scheme on the same
// four matrices as benchModel, stored as Q4_0 blocks (18 bytes per 32 weights) of random
// nibbles and scales.
func BenchmarkTranscode(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench-q4_0.gguf")
	w := gguf.NewBuilder()
	w.Set("general.architecture", "llama")
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 2048
	for _, name := range []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"} {
		data := make([]byte, n*n/32*18)
		for blk := 0; blk < len(data); blk += 18 {
			binary.LittleEndian.PutUint16(data[blk:], toF16(float32(0.001+rng.Float64()*0.01)))
			for i := 2; i < 18; i++ {
				data[blk+i] = byte(rng.Uint32())
			}
		}
		if err := w.AddTensorBytes(name, ggml.Q4_0, []int64{n, n}, data); err != nil {
			b.Fatal(err)
		}
	}
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := w.WriteTo(out); err != nil {
		b.Fatal(err)
	}
	out.Close()
	f, err := gguf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var in int64
	for _, t := range f.Tensors {
		in += t.Size
	}
	cfg, err := ParseConfig(stage.Params{"scheme": "gguf"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(in)
	for b.Loop() {
		if _, err := Quantize(context.Background(), f, cfg, b.TempDir(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlockRow measures the int4 kernels alone on one core (no GGUF decoding, no I/O),
// per MB of fp16 input they stand for.
func BenchmarkBlockRow(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const in = 4096
	x := make([]float32, in)
	w := make([]float32, in)
	for i := range x {
		x[i], w[i] = float32(rng.NormFloat64()), 1
	}
	q := make([]int32, in)
	scale := make([]uint16, in)
	zero := make([]int32, in)
	for _, bc := range []struct {
		name string
		c    blockCodec
	}{
		{"block32-rtn", blockCodec{dtype: "int4", symmetric: true, block: 32}},
		{"block32-search2", blockCodec{dtype: "int4", symmetric: true, block: 32, search: 2}},
		{"channel-rtn", blockCodec{dtype: "int4", symmetric: true, block: in}},
		{"channel-asym-search2", blockCodec{dtype: "uint4", block: in, search: 2}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(2 * in)
			for b.Loop() {
				bc.c.quantizeRow(x, w, q, scale, zero)
			}
		})
	}
}

// BenchmarkInt4Strip measures blockCodec.quantizeF16 (the strip kernel on amd64) on one
// core, 64 rows of 4096 fp16 weights straight from memory, per MB of fp16 input; compare
// BenchmarkBlockRow/block32-search2, which starts from float32 already decoded.
func BenchmarkInt4Strip(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const in, rows = 4096, 64
	src := make([]byte, 2*rows*in)
	for i := 0; i < rows*in; i++ {
		binary.LittleEndian.PutUint16(src[2*i:], toF16(float32(rng.NormFloat64())))
	}
	data := make([]byte, rows*in/2)
	scale := make([]uint16, rows*in/32)
	rowErr, rowSig := make([]float64, rows), make([]float64, rows)
	for _, bc := range []struct {
		name    string
		uniform bool
	}{{"block32-search2-uniform", true}, {"block32-search2-weighted", false}} {
		w := make([]float32, in)
		for i := range w {
			w[i] = 1
			if !bc.uniform {
				w[i] = float32(0.5 + rng.Float64())
			}
		}
		c := &blockCodec{dtype: "int4", symmetric: true, block: 32, search: 2}
		var rs int4Rows
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				c.quantizeF16(&rs, src, in, w, data, scale, rowErr, rowSig)
			}
		})
	}
}

// BenchmarkLUT4 measures lut4 palettization of one group on one core, per MB of the fp16
// input it stands for: a 2560-wide row (Phi-2's d_model; at ≥ 1024 elements it is a group
// by itself) of Gaussian fp16 weights, data-free (uniform weights) and with importance
// weights, from fp16 bits (quantizeGroupF16, the F16 GGUF path) and from float32 values
// (quantizeGroup, the path of dequantized K-quants).
func BenchmarkLUT4(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 2560
	src := make([]byte, 2*n)
	x := make([]float32, n)
	for i := range x {
		h := toF16(float32(rng.NormFloat64() * 0.02))
		binary.LittleEndian.PutUint16(src[2*i:], h)
		x[i] = f16Table[h]
	}
	uniform, weighted := make([]float32, n), make([]float32, n)
	for i := range uniform {
		uniform[i], weighted[i] = 1, float32(0.5+rng.Float64())
	}
	c := &lutCodec{bits: 4, group: 1, iters: 200}
	var s lutScratch
	idx := make([]int32, n)
	lut := make([]uint16, 16)
	for _, bc := range []struct {
		name string
		w    []float32
		f16  bool
	}{{"f16-uniform", nil, true}, {"f16-weighted", weighted, true}, {"f32-uniform", uniform, false}, {"f32-weighted", weighted, false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(2 * n)
			for b.Loop() {
				if bc.f16 {
					c.quantizeGroupF16(&s, src, bc.w, idx, lut)
				} else {
					c.quantizeGroup(&s, x, bc.w, idx, lut)
				}
			}
		})
	}
}
