package tokenizer

import "slices"

// wpmModel is a WordPiece vocabulary (tokenizer.ggml.model = "bert") as llama.cpp runs it
// (src/llama-vocab.cpp, llm_tokenizer_wpm_session): BERT's normalisation, then for each word,
// prefixed with U+2581, the longest tokens from left to right; a word that cannot be covered
// becomes the unknown token.
type wpmModel struct {
	tokenID      map[string]int32
	maxLen       int // longest token text, in bytes
	unk          int32
	lowercase    bool
	stripAccents bool
}

func newWPMModel(v *Vocab, tokenID map[string]int32) *wpmModel {
	m := &wpmModel{tokenID: tokenID, unk: v.UNK, lowercase: v.Lowercase, stripAccents: v.StripAccents}
	for _, text := range v.Tokens {
		m.maxLen = max(m.maxLen, len(text))
	}
	return m
}

// llama.cpp's category flags (unicode.h unicode_cpt_flags).
const (
	catNumber  = 2
	catLetter  = 4
	catMark    = 16
	catPunct   = 32
	catSymbol  = 64
	catControl = 128
)

// categoryOf is llama.cpp's category flag of c (one of the cat* constants, 1 for unassigned,
// 8 for separators).
func categoryOf(c rune) uint8 {
	i, _ := slices.BinarySearch(categoryStarts[:], int32(c)+1) // first start > c
	if i == 0 {
		return 1
	}
	return categoryFlags[i-1]
}

// nfdFirst is the first code point of c's canonical decomposition (unicode_cpts_normalize_nfd).
func nfdFirst(c rune) rune {
	i, _ := slices.BinarySearchFunc(nfdRanges[:], c, func(r struct{ first, last, nfd rune }, c rune) int {
		switch {
		case r.last < c:
			return -1
		case r.first > c:
			return 1
		}
		return 0
	})
	if i < len(nfdRanges) && nfdRanges[i].first <= c && c <= nfdRanges[i].last {
		return nfdRanges[i].nfd
	}
	return c
}

// isCJK is the CJK block test of BERT's tokenizer (llama.cpp keeps the Hugging Face range
// 0x2B920–0x2CEAF for extension E).
func isCJK(c rune) bool {
	switch {
	case c >= 0x4E00 && c <= 0x9FFF, c >= 0x3400 && c <= 0x4DBF, c >= 0x20000 && c <= 0x2A6DF,
		c >= 0x2A700 && c <= 0x2B73F, c >= 0x2B740 && c <= 0x2B81F, c >= 0x2B920 && c <= 0x2CEAF,
		c >= 0xF900 && c <= 0xFAFF, c >= 0x2F800 && c <= 0x2FA1F:
		return true
	}
	return false
}

// words normalises text and splits it into words: whitespace separates, control characters,
// NUL and U+FFFD vanish, accents go with the accent marks after NFD, letters are lower-cased,
// and punctuation, ASCII symbols and CJK ideographs stand alone.
func (m *wpmModel) words(text string) []string {
	var words []string
	var cur []byte
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for i := 0; i < len(text); {
		c, n := decodeOne(text, i)
		i += n
		if m.stripAccents {
			c = nfdFirst(c)
		}
		if whiteSpace[c] {
			flush()
			continue
		}
		cat := categoryOf(c)
		if c == 0 || c == 0xFFFD || cat == catControl || m.stripAccents && cat == catMark {
			continue
		}
		if m.lowercase {
			if l, ok := lowercase[c]; ok {
				c = l
			}
		}
		if cat == catPunct || c < 0x7F && cat == catSymbol || isCJK(c) {
			flush()
			words = append(words, string(appendCodepoint(nil, c)))
			continue
		}
		cur = appendCodepoint(cur, c)
	}
	flush()
	return words
}

// encode appends the tokens of one raw fragment.
func (m *wpmModel) encode(text string, out []int32) []int32 {
	for _, word := range m.words(text) {
		word = "\u2581" + word
		start := len(out)
		for i := 0; i < len(word); i++ {
			matched := false
			for j := min(len(word), i+m.maxLen+1); j > i; j-- {
				if id, ok := m.tokenID[word[i:j]]; ok {
					out = append(out, id)
					matched = true
					i = j - 1
					break
				}
			}
			if !matched { // the whole word becomes the unknown token
				out = out[:start]
				break
			}
		}
		// llama.cpp appends the unknown id even when there is none (-1); we drop the word then.
		if len(out) == start && m.unk >= 0 {
			out = append(out, m.unk)
		}
	}
	return out
}
