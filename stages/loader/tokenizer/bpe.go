package tokenizer

import "strings"

// byteToRune is GPT-2's byte→unicode map (llama.cpp unicode_byte_to_utf8_map): the printable
// bytes 0x21–0x7E, 0xA1–0xAC and 0xAE–0xFF map to themselves, the 68 others, in increasing
// order, to U+0100, U+0101, … (0x00→'Ā', 0x0A→'Ċ', 0x20→'Ġ', 0xAD→U+0143). BPE vocabularies
// and merges are stored in this mapped form.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if b >= 0x21 && b <= 0x7E || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 0x100 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// bpeModel is a BPE vocabulary prepared for merging by symbol id rather than by string: every
// string that can occur as a symbol (each vocab token, each side and result of a merge, each
// mapped byte) gets an id; ids ≥ nVocab are symbols that are not tokens. Byte-level vocabularies
// store their texts through GPT-2's byte-to-rune map, so each input byte starts as one symbol;
// raw ones (Gemma 4) store UTF-8 and start from one symbol per character.
type bpeModel struct {
	nVocab   int32
	tokenID  map[string]int32
	extra    map[string]int32   // symbols that are not tokens
	byteSym  [256]int32         // symbol of each input byte (its mapped code point)
	hexTok   [256]int32         // raw vocabularies: the <0xHH> token of each byte, or -1
	merges   map[uint64]bpeRule // (left id, right id) → rank and result
	fallback [][]int32          // ids ≥ nVocab: the tokens of the symbol's single bytes
	rawToken map[string]int32   // unmapped byte string → token, for ignore_merges
	pre      preTokenizer
}

type bpeRule struct {
	rank   int32
	result int32
}

func pairKey(l, r int32) uint64 { return uint64(uint32(l))<<32 | uint64(uint32(r)) }

func newBPEModel(v *Vocab, tokenID map[string]int32, pre preTokenizer) *bpeModel {
	m := &bpeModel{
		nVocab:  int32(len(v.Tokens)),
		tokenID: tokenID,
		extra:   map[string]int32{},
		merges:  make(map[uint64]bpeRule, len(v.Merges)),
		pre:     pre,
	}
	extra := m.extra
	var extraText []string
	sym := func(s string) int32 {
		if id, ok := tokenID[s]; ok {
			return id
		}
		if id, ok := extra[s]; ok {
			return id
		}
		id := m.nVocab + int32(len(extraText))
		extra[s] = id
		extraText = append(extraText, s)
		return id
	}
	const hex = "0123456789ABCDEF"
	for b := 0; b < 256; b++ {
		m.hexTok[b] = -1
		if id, ok := tokenID["<0x"+hex[b>>4:b>>4+1]+hex[b&15:b&15+1]+">"]; ok {
			m.hexTok[b] = id
		}
		if !pre.rawUTF8 {
			m.byteSym[b] = sym(string(byteToRune[b]))
		}
	}
	for rank, merge := range v.Merges {
		// llama.cpp splits at the first space at index ≥ 1, so a merge may start with a space.
		i := strings.IndexByte(merge[min(1, len(merge)):], ' ')
		if i < 0 {
			continue // llama.cpp records it as the pair ("", ""), which never matches
		}
		i += min(1, len(merge))
		left, right := merge[:i], merge[i+1:]
		key := pairKey(sym(left), sym(right))
		if _, dup := m.merges[key]; dup {
			continue // llama.cpp's bpe_ranks.emplace keeps the first rank
		}
		m.merges[key] = bpeRule{rank: int32(rank), result: sym(left + right)}
	}
	// A symbol that is not a token is emitted as the tokens of its single bytes (of the mapped
	// text, as llama.cpp does; <0xHH> tokens for raw vocabularies), silently dropping bytes
	// that are not tokens.
	m.fallback = make([][]int32, len(extraText))
	for i, s := range extraText {
		m.fallback[i] = m.byteTokens(nil, s)
	}
	if pre.ignoreMerges && !pre.rawUTF8 {
		m.rawToken = make(map[string]int32, len(v.Tokens))
		var raw []byte
		for id, text := range v.Tokens {
			raw = raw[:0]
			ok := true
			for _, r := range text {
				b, in := runeToByte[r]
				if !in {
					ok = false
					break
				}
				raw = append(raw, b)
			}
			if ok {
				m.rawToken[string(raw)] = int32(id)
			}
		}
	}
	return m
}

// byteTokens appends the tokens of the single bytes of s (llama.cpp's fallback for a symbol
// that is not a token).
func (m *bpeModel) byteTokens(out []int32, s string) []int32 {
	for j := 0; j < len(s); j++ {
		id, ok := int32(-1), false
		if m.pre.rawUTF8 {
			id = m.hexTok[s[j]]
			ok = id >= 0
		} else {
			id, ok = m.tokenID[s[j:j+1]]
		}
		if ok {
			out = append(out, id)
		}
	}
	return out
}

// unknownSym is the symbol of a character of a raw vocabulary that no token or merge holds.
const unknownSym = -2

// bpeSymbol is one node of the doubly linked list of symbols of a piece, word[start:end].
type bpeSymbol struct {
	id         int32
	prev, next int32
	start, end int32
}

// bpeBigram is a candidate merge; the queue pops the lowest rank, ties to the leftmost.
type bpeBigram struct {
	rank        int32
	left, right int32
	lid, rid    int32
}

func (a bpeBigram) less(b bpeBigram) bool {
	return a.rank < b.rank || a.rank == b.rank && a.left < b.left
}

// bpeSession holds the scratch buffers of one Encode call.
type bpeSession struct {
	text    runeText
	pieces  [2][]int
	bytes   []byte
	symbols []bpeSymbol
	heap    []bpeBigram
	// cache remembers the tokens of recent pieces (a piece's tokens depend on its bytes only):
	// natural text repeats its words, and merging is most of the cost of encoding.
	cache map[string]tokenSpan
	arena []int32
}

// tokenSpan locates a cached piece's tokens in bpeSession.arena.
type tokenSpan struct{ off, n int32 }

// maxCachedPieces bounds the cache, which is emptied when full; pieces longer than
// maxCachedLen bytes are not cached.
const (
	maxCachedPieces = 1 << 15
	maxCachedLen    = 64
)

// encode appends the tokens of one raw fragment (llama.cpp llm_tokenizer_bpe_session::tokenize).
func (m *bpeModel) encode(s *bpeSession, text string, out []int32) []int32 {
	if m.pre.escapeSpaces {
		text = strings.ReplaceAll(text, " ", "\u2581")
	}
	t := &s.text
	cur := m.pre.pieces(t, text, &s.pieces)
	lo := 0
	for _, n := range cur {
		s.bytes = s.bytes[:0]
		for _, c := range t.cps[lo : lo+n] {
			s.bytes = appendCodepoint(s.bytes, c)
		}
		lo += n
		out = m.encodeCached(s, s.bytes, out)
	}
	return out
}

// encodeCached is encodeWord through the session's cache.
func (m *bpeModel) encodeCached(s *bpeSession, word []byte, out []int32) []int32 {
	if len(word) > maxCachedLen {
		return m.encodeWord(s, word, out)
	}
	if sp, ok := s.cache[string(word)]; ok {
		return append(out, s.arena[sp.off:sp.off+sp.n]...)
	}
	n0 := len(out)
	out = m.encodeWord(s, word, out)
	if s.cache == nil || len(s.cache) >= maxCachedPieces {
		s.cache = make(map[string]tokenSpan)
		s.arena = s.arena[:0]
	}
	s.cache[string(word)] = tokenSpan{off: int32(len(s.arena)), n: int32(len(out) - n0)}
	s.arena = append(s.arena, out[n0:]...)
	return out
}

// encodeWord merges the symbols of one pre-tokenized piece, given as raw bytes.
func (m *bpeModel) encodeWord(s *bpeSession, word []byte, out []int32) []int32 {
	if len(word) == 0 {
		return out
	}
	if m.pre.ignoreMerges {
		raw := m.rawToken
		if m.pre.rawUTF8 {
			raw = m.tokenID
		}
		if id, ok := raw[string(word)]; ok {
			return append(out, id)
		}
	}
	if m.pre.newlineTokens && onlyNewlines(word) { // Gemma 4 keeps newline runs whole
		if id, ok := m.tokenID[string(word)]; ok {
			return append(out, id)
		}
	}
	s.symbols = s.symbols[:0]
	if m.pre.rawUTF8 {
		for off := 0; off < len(word); {
			n := min(utf8Len(word[off]), len(word)-off)
			id, ok := m.tokenID[string(word[off:off+n])]
			if !ok {
				if id, ok = m.extra[string(word[off:off+n])]; !ok {
					id = unknownSym
				}
			}
			i := int32(len(s.symbols))
			s.symbols = append(s.symbols, bpeSymbol{id: id, prev: i - 1, next: i + 1, start: int32(off), end: int32(off + n)})
			off += n
		}
	} else {
		if len(word) == 1 {
			return m.emit(m.byteSym[word[0]], word, out)
		}
		for i, b := range word {
			s.symbols = append(s.symbols, bpeSymbol{id: m.byteSym[b], prev: int32(i - 1), next: int32(i + 1), start: int32(i), end: int32(i + 1)})
		}
	}
	syms := s.symbols
	syms[len(syms)-1].next = -1
	s.heap = s.heap[:0]
	for i := 1; i < len(syms); i++ {
		m.push(s, int32(i-1), int32(i))
	}
	for len(s.heap) > 0 {
		bg := s.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		if l.id != bg.lid || r.id != bg.rid { // stale: one side has merged since
			continue
		}
		l.id = m.merges[pairKey(bg.lid, bg.rid)].result
		l.end = r.end
		r.id = -1
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = bg.left
		}
		if l.prev >= 0 {
			m.push(s, l.prev, bg.left)
		}
		if l.next >= 0 {
			m.push(s, bg.left, l.next)
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		out = m.emit(syms[i].id, word[syms[i].start:syms[i].end], out)
	}
	return out
}

func onlyNewlines(word []byte) bool {
	for _, b := range word {
		if b != '\n' {
			return false
		}
	}
	return true
}

// emit appends the tokens of a final symbol whose raw bytes are text.
func (m *bpeModel) emit(id int32, text []byte, out []int32) []int32 {
	switch {
	case id == unknownSym:
		return m.byteTokens(out, string(text))
	case id < m.nVocab:
		return append(out, id)
	}
	return append(out, m.fallback[id-m.nVocab]...)
}

func (m *bpeModel) push(s *bpeSession, left, right int32) {
	lid, rid := s.symbols[left].id, s.symbols[right].id
	rule, ok := m.merges[pairKey(lid, rid)]
	if !ok {
		return
	}
	h := append(s.heap, bpeBigram{rank: rule.rank, left: left, right: right, lid: lid, rid: rid})
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.heap = h
}

func (s *bpeSession) pop() bpeBigram {
	h := s.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].less(h[c]) {
			c++
		}
		if !h[c].less(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.heap = h
	return top
}
