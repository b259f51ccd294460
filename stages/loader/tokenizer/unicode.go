package tokenizer

// Code-point classes used by the pre-tokenizers, from llama.cpp's own Unicode tables
// (src/unicode-data.cpp, generated from UnicodeData.txt; unicode_tables.go is made from it) so
// that code points newer than Go's unicode package classify as in llama.cpp: \p{L}, \p{N},
// \p{P}, \p{M}, \p{S} are the general categories L*, N*, P*, M*, S*, and \s the 25 White_Space
// code points.
//
//go:generate go run gen_unicode.go -src $LLAMACPP/src/unicode-data.cpp
const (
	classLetter uint8 = 1 << iota
	classNumber
	classSpace
	classPunct
	classMark
	classSymbol
	// classOther marks every code point that is inside the current piece; llama.cpp's matchers
	// treat a position outside the piece as having no flags at all, which stops [^\s\p{L}\p{N}]+.
	classOther
)

// llama.cpp's category flags (unicode.h unicode_cpt_flags) and the classes they map to.
var categoryClass = map[uint8]uint8{catNumber: classNumber, catLetter: classLetter, catMark: classMark, catPunct: classPunct, catSymbol: classSymbol}

var asciiClass [128]uint8

func init() {
	for c := rune(0); c < 128; c++ {
		asciiClass[c] = computeClass(c)
	}
}

func computeClass(c rune) uint8 {
	f := classOther | categoryClass[categoryOf(c)]
	if whiteSpace[c] {
		f |= classSpace
	}
	return f
}

// isHan is llama.cpp's unicode_cpt_is_han: the CJK Unified Ideographs, their extensions A–F and
// the compatibility ideographs.
func isHan(c rune) bool {
	switch {
	case c >= 0x4E00 && c <= 0x9FFF, c >= 0x3400 && c <= 0x4DBF,
		c >= 0x20000 && c <= 0x2A6DF, c >= 0x2A700 && c <= 0x2EBEF,
		c >= 0xF900 && c <= 0xFAFF, c >= 0x2F800 && c <= 0x2FA1F:
		return true
	}
	return false
}

func classOf(c rune) uint8 {
	if c >= 0 && c < 128 {
		return asciiClass[c]
	}
	return computeClass(c)
}

// decodeCodepoints appends the code points of s to dst the way llama.cpp's
// unicode_cpts_from_utf8 does: the lead byte fixes the length (continuation bytes are checked,
// overlong forms and surrogates are accepted), and a byte that does not start a valid sequence
// becomes U+FFFD and consumes one byte. Values above U+10FFFF, which llama.cpp cannot re-encode
// (it throws), also become U+FFFD here.
func decodeCodepoints(dst []rune, s string) []rune {
	for i := 0; i < len(s); {
		c, n := decodeOne(s, i)
		dst = append(dst, c)
		i += n
	}
	return dst
}

func decodeOne(s string, i int) (rune, int) {
	b0 := s[i]
	cont := func(k int) bool { return i+k < len(s) && s[i+k]&0xC0 == 0x80 }
	switch {
	case b0 < 0x80:
		return rune(b0), 1
	case b0&0x40 == 0:
		return 0xFFFD, 1
	case b0&0x20 == 0:
		if !cont(1) {
			return 0xFFFD, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if !cont(1) || !cont(2) {
			return 0xFFFD, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if !cont(1) || !cont(2) || !cont(3) {
			return 0xFFFD, 1
		}
		c := rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
		if c > 0x10FFFF {
			c = 0xFFFD
		}
		return c, 4
	}
	return 0xFFFD, 1
}

// appendCodepoint is llama.cpp's unicode_cpt_to_utf8: plain UTF-8 that, unlike utf8.AppendRune,
// keeps surrogate code points as their three-byte form so that decode∘encode is the identity.
func appendCodepoint(dst []byte, c rune) []byte {
	switch {
	case c < 0x80:
		return append(dst, byte(c))
	case c < 0x800:
		return append(dst, 0xC0|byte(c>>6), 0x80|byte(c)&0x3F)
	case c < 0x10000:
		return append(dst, 0xE0|byte(c>>12), 0x80|byte(c>>6)&0x3F, 0x80|byte(c)&0x3F)
	default:
		return append(dst, 0xF0|byte(c>>18)&0x07, 0x80|byte(c>>12)&0x3F, 0x80|byte(c>>6)&0x3F, 0x80|byte(c)&0x3F)
	}
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length announced by a lead byte, with
// continuation bytes (10xxxxxx) counting as length 1. SPM and BPE split symbols with it.
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}
