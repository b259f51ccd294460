package qweights

import (
	"slices"
	"testing"
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
