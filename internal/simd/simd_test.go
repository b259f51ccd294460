package simd

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Level
		ok   bool
	}{
		{"", Widest, true}, {"auto", Widest, true}, {"simd", Base, true},
		{"portable", Portable, true}, {"avx512", Widest, false}, {"Portable", Widest, false},
	} {
		if got, ok := Parse(c.in); got != c.want || ok != c.ok {
			t.Errorf("Parse(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
