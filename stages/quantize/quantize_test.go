package quantize

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/pipeline/stage"
	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

const models = "../../testdata/oracle/models/"

func openModel(t testing.TB, name string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(models + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// quantizeModel runs the stage on a model and opens the result.
func quantizeModel(t testing.TB, model string, p stage.Params) (*Set, *gguf.File) {
	t.Helper()
	f := openModel(t, model)
	cfg, err := ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Quantize(context.Background(), f, cfg, dir, nil); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, f
}

// TestTranscodeExact checks that scheme gguf reproduces ggml's own dequantization bit for bit
// for Q4_0 and Q8_0 blocks: the block's fp16 d becomes the scale and q − 8 (Q4_0) or q (Q8_0)
// the data, so d·(q − 8) is the same float32 product ggml computes.
func TestTranscodeExact(t *testing.T) {
	for _, tc := range []struct {
		model string
		typ   ggml.Type
		dtype string
		n     int // tensors of that type in the model
	}{
		{"tiny-phi2-q4_0.gguf", ggml.Q4_0, "int4", 14},
		{"tiny-phi2-q8_0.gguf", ggml.Q8_0, "int8", 14},
		// stories260K's ffn_down (172 wide) is F16 in the Q4_0 file; it stays fp16.
		{"stories260K-q4_0.gguf", ggml.Q4_0, "int4", 32}, // token_embd, output + 5 layers × 6
	} {
		t.Run(tc.model, func(t *testing.T) {
			s, f := quantizeModel(t, tc.model, stage.Params{"scheme": "gguf"})
			n := 0
			for _, gt := range f.Tensors {
				qt, ok := s.Lookup(gt.Name)
				if gt.Type != tc.typ {
					if ok {
						t.Errorf("%s (%v) quantized without a fallback", gt.Name, gt.Type)
					}
					continue
				}
				n++
				if !ok {
					t.Fatalf("%s not transcoded", gt.Name)
				}
				if qt.Info.DType != tc.dtype || qt.Info.BlockSize != 32 || qt.Info.Offset != "" || qt.Info.RelRMSE != 0 {
					t.Errorf("%s: %+v", gt.Name, qt.Info)
				}
				want, err := f.Float32s(gt)
				if err != nil {
					t.Fatal(err)
				}
				got := qt.Dequantize()
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s[%d] = %g, ggml %g", gt.Name, i, got[i], want[i])
					}
				}
			}
			if n != tc.n {
				t.Errorf("%d %v tensors, want %d", n, tc.typ, tc.n)
			}
			// Q4_0 stores 4 bits + a 16-bit scale per 32: 4.5 bits/weight; Q8_0 8.5.
			want := 4.5
			if tc.typ == ggml.Q8_0 {
				want = 8.5
			}
			if got := s.Manifest().BitsPerWeight; got != want {
				t.Errorf("bits/weight %g, want %g", got, want)
			}
		})
	}
}

// TestManifestDeterministic: a tensor of several chunks quantized by one worker and by
// four gives the same manifest, byte for byte — its rel_rmse sums the chunks' errors in
// chunk order, not in the order workers finish (float64 addition is not associative).
func TestManifestDeterministic(t *testing.T) {
	const in, out = 2048, 4096 // chunks of 128 rows: 32 per tensor
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 2*in*out)
	for i := 0; i < in*out; i++ {
		// Chunks of very different magnitudes, so that the order of their sums shows.
		scale := math.Pow(10, float64((i/in/128)%6)-3)
		binary.LittleEndian.PutUint16(data[2*i:], toF16(float32(r.NormFloat64()*scale)))
	}
	f := writeModel(t, "blk.0.ffn_up.weight", ggml.F16, []int64{in, out}, data)
	var first []byte
	for i, threads := range []int{1, 4, 4, 4} {
		cfg, err := ParseConfig(stage.Params{"scheme": "block", "threads": threads})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := Quantize(context.Background(), f, cfg, dir, nil); err != nil {
			t.Fatal(err)
		}
		m, err := os.ReadFile(filepath.Join(dir, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = m
		} else if !bytes.Equal(m, first) {
			t.Fatalf("threads=%d, run %d: manifest differs from one worker's:\n%s\nvs\n%s", threads, i, m, first)
		}
	}
}
