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

// bpeModel is a byte-level BPE vocabulary prepared for merging by symbol id rather than by
// string: every string that can occur as a symbol (each vocab token, each side and result of a
// merge, each mapped byte) gets an id; ids ≥ nVocab are symbols that are not tokens.
type bpeModel struct {
	nVocab   int32
	byteSym  [256]int32         // symbol of each input byte (its mapped code point)
	merges   map[uint64]bpeRule // (left id, right id) → rank and result
	fallback [][]int32          // ids ≥ nVocab: tokens of the single bytes of the symbol's text
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
		nVocab: int32(len(v.Tokens)),
		merges: make(map[uint64]bpeRule, len(v.Merges)),
		pre:    pre,
	}
	extra := map[string]int32{}
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
	for b := 0; b < 256; b++ {
		m.byteSym[b] = sym(string(byteToRune[b]))
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
	// text, as llama.cpp does), silently dropping bytes that are not tokens.
	m.fallback = make([][]int32, len(extraText))
	for i, s := range extraText {
		for j := 0; j < len(s); j++ {
			if id, ok := tokenID[s[j:j+1]]; ok {
				m.fallback[i] = append(m.fallback[i], id)
			}
		}
	}
	if pre.ignoreMerges {
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

// bpeSymbol is one node of the doubly linked list of symbols of a piece.
type bpeSymbol struct {
	id         int32
	prev, next int32
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
	cps     []rune
	cls     []uint8
	pieces  [2][]int
	bytes   []byte
	symbols []bpeSymbol
	heap    []bpeBigram
}

// encode appends the tokens of one raw fragment (llama.cpp llm_tokenizer_bpe_session::tokenize).
func (m *bpeModel) encode(s *bpeSession, text string, out []int32) []int32 {
	s.cps = decodeCodepoints(s.cps[:0], text)
	s.cls = s.cls[:0]
	for _, c := range s.cps {
		s.cls = append(s.cls, classOf(c))
	}
	cur := append(s.pieces[0][:0], len(s.cps))
	next := s.pieces[1][:0]
	for _, split := range m.pre.split {
		next = split(s.cps, s.cls, cur, next[:0])
		cur, next = next, cur
	}
	s.pieces[0], s.pieces[1] = cur, next
	lo := 0
	for _, n := range cur {
		s.bytes = s.bytes[:0]
		for _, c := range s.cps[lo : lo+n] {
			s.bytes = appendCodepoint(s.bytes, c)
		}
		lo += n
		out = m.encodeWord(s, s.bytes, out)
	}
	return out
}

// encodeWord merges the symbols of one pre-tokenized piece, given as raw bytes: the mapped form
// has exactly one code point per byte, so each byte starts as one symbol.
func (m *bpeModel) encodeWord(s *bpeSession, word []byte, out []int32) []int32 {
	if len(word) == 0 {
		return out
	}
	if m.rawToken != nil {
		if id, ok := m.rawToken[string(word)]; ok {
			return append(out, id)
		}
	}
	if len(word) == 1 {
		return m.emit(m.byteSym[word[0]], out)
	}
	s.symbols = s.symbols[:0]
	for i, b := range word {
		s.symbols = append(s.symbols, bpeSymbol{id: m.byteSym[b], prev: int32(i - 1), next: int32(i + 1)})
	}
	s.symbols[len(word)-1].next = -1
	s.heap = s.heap[:0]
	for i := 1; i < len(word); i++ {
		m.push(s, int32(i-1), int32(i))
	}
	syms := s.symbols
	for len(s.heap) > 0 {
		bg := s.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		if l.id != bg.lid || r.id != bg.rid { // stale: one side has merged since
			continue
		}
		l.id = m.merges[pairKey(bg.lid, bg.rid)].result
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
		out = m.emit(syms[i].id, out)
	}
	return out
}

func (m *bpeModel) emit(id int32, out []int32) []int32 {
	if id < m.nVocab {
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
