package qweights

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"

	"github.com/x448/float16"
)

// TestSlice4: odd row offsets into a packed stream with an odd row length need repacking.
func TestSlice4(t *testing.T) {
	packed := []byte{0x21, 0x43, 0x65, 0x87} // elements 1..8
	for _, tc := range []struct {
		e0, e1 int
		want   []byte
	}{
		{3, 8, []byte{0x54, 0x76, 0x08}},
		{2, 6, []byte{0x43, 0x65}},
		{0, 1, []byte{0x21}},
	} {
		if got := slice4(packed, tc.e0, tc.e1); !slices.Equal(got, tc.want) {
			t.Errorf("slice4(%d, %d) = %x, want %x", tc.e0, tc.e1, got, tc.want)
		}
	}
}

// TestF16Nearest: f16Nearest rounds every float32 as float16.Fromfloat32 does (both round
// to nearest, ties to even), over the fp16 range and beyond, subnormals and ties included.
func TestF16Nearest(t *testing.T) {
	check := func(f float32) {
		t.Helper()
		if got, want := f16Nearest(float64(f)), float16.Fromfloat32(f).Bits(); got != want {
			t.Fatalf("f16Nearest(%g [%#08x]) = %#04x, float16.Fromfloat32 %#04x", f, math.Float32bits(f), got, want)
		}
	}
	// Float32s whose exponent is within a few of fp16's range, at a stride of 97 (-short: 997) through
	// the fraction (ties and their neighbours come from the low 13 bits below).
	stride := uint32(97)
	if testing.Short() {
		stride = 997
	}
	for e := uint32(127 - 27); e <= 127+17; e++ {
		for frac := uint32(0); frac < 1<<23; frac += stride {
			b := e<<23 | frac
			check(math.Float32frombits(b))
			check(math.Float32frombits(b | 1<<31))
		}
		for low := uint32(0); low < 1<<14; low++ { // every rounding case of the 13 bits fp16 drops
			check(math.Float32frombits(e<<23 | 0x2a<<14 | low))
		}
	}
	for _, f := range []float32{0, 65504, 65519.99, 65520, 1e10, float32(math.Inf(1)), float32(math.Inf(-1))} {
		check(f)
		check(-f)
	}
	if h := f16Nearest(math.NaN()); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("f16Nearest(NaN) = %#04x, not a NaN", h)
	}
}

// halves writes fp16 bit patterns as little-endian bytes (the transcodings write theirs in
// place, through f16View).
func halves(h []uint16) []byte {
	b := make([]byte, 2*len(h))
	for i, v := range h {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}
