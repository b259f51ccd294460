package qweights

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"

	"github.com/lilims/lilims/stages/loader/ggml"
)

// randomBlocks returns n random blocks of type t with finite, small fp16 fields (d, dmin)
// at the transcoding's halves and random bytes elsewhere.
func randomBlocks(t ggml.Type, n int, seed uint64) []byte {
	tr := transcodings[t]
	rng := rand.New(rand.NewPCG(seed, seed+1))
	bb := t.BlockBytes()
	raw := make([]byte, n*bb)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	for b := 0; b < len(raw); b += bb {
		for _, at := range tr.halves {
			binary.LittleEndian.PutUint16(raw[b+at:], float16.Fromfloat32(float32(1e-4+rng.Float64()*0.01)).Bits())
		}
	}
	return raw
}

// BenchmarkRows reports MB/s of ggml blocks transcoded on one core by Transcoding.Rows
// and pack, and by the type's direct path.
func BenchmarkRows(b *testing.B) {
	for _, t := range []ggml.Type{ggml.Q4_0, ggml.Q4_K, ggml.Q6_K} {
		b.Run(t.String(), func(b *testing.B) {
			const in, rows = 2560, 64
			tr := transcodings[t]
			raw := randomBlocks(t, rows*in/t.BlockElems(), 1)
			q := make([]int32, rows*in)
			scale := make([]uint16, rows*in/tr.Block)
			var off []uint16
			if tr.Offset != "" {
				off = make([]uint16, len(scale))
			}
			data := make([]byte, tr.dataBytes(rows*in))
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := tr.Rows(t, raw, in, q, scale, off); err != nil {
					b.Fatal(err)
				}
				tr.pack(data, 0, q)
			}
		})
		b.Run(t.String()+"/direct", func(b *testing.B) {
			const in, rows = 2560, 64
			tr := transcodings[t]
			raw := randomBlocks(t, rows*in/t.BlockElems(), 1)
			scale := make([]uint16, rows*in/tr.Block)
			off := make([]uint16, len(scale))
			data := make([]byte, tr.dataBytes(rows*in))
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if !direct[t](raw, data, scale, off) {
					b.Fatal("refused")
				}
			}
		})
	}
}
