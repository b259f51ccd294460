package tokenizer

import "strings"

// spmModel is a SentencePiece-style vocabulary (tokenizer.ggml.model = "llama") as llama.cpp
// runs it: greedy merging of adjacent symbols by token score, with byte fallback.
type spmModel struct {
	tokenID map[string]int32
	scores  []float32
	byteTok [256]int32 // <0xHH>, else the one-byte string token, else -1
}

func newSPMModel(v *Vocab, tokenID map[string]int32) *spmModel {
	m := &spmModel{tokenID: tokenID, scores: v.Scores}
	const hex = "0123456789ABCDEF"
	for b := 0; b < 256; b++ {
		m.byteTok[b] = -1
		if id, ok := tokenID["<0x"+string(hex[b>>4])+string(hex[b&15])+">"]; ok {
			m.byteTok[b] = id
		} else if id, ok := tokenID[string([]byte{byte(b)})]; ok {
			m.byteTok[b] = id
		}
	}
	return m
}

type spmSymbol struct {
	start, n   int32 // text[start:start+n]; n == 0 once merged into its left neighbour
	prev, next int32
}

type spmBigram struct {
	score       float32
	left, right int32
	size        int32
}

// before orders the queue: highest score first, ties to the leftmost pair.
func (a spmBigram) before(b spmBigram) bool {
	return a.score > b.score || a.score == b.score && a.left < b.left
}

type spmSession struct {
	symbols []spmSymbol
	heap    []spmBigram
	text    strings.Builder
}

// escapeText is llama.cpp's SPM preprocessing of one raw fragment: an optional leading space,
// then every ' ' replaced by U+2581 '▁' (no other normalisation).
func (s *spmSession) escapeText(fragment string, prefix bool) string {
	s.text.Reset()
	if prefix {
		s.text.WriteString("\u2581")
	}
	for i := 0; i < len(fragment); i++ {
		if fragment[i] == ' ' {
			s.text.WriteString("\u2581")
		} else {
			s.text.WriteByte(fragment[i])
		}
	}
	return s.text.String()
}

// encode appends the tokens of text (already escaped) following llama.cpp's
// llm_tokenizer_spm_session::tokenize.
func (m *spmModel) encode(s *spmSession, text string, out []int32) []int32 {
	s.symbols = s.symbols[:0]
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		i := int32(len(s.symbols))
		s.symbols = append(s.symbols, spmSymbol{start: int32(off), n: int32(n), prev: i - 1, next: i + 1})
		off += n
	}
	if len(s.symbols) == 0 {
		return out
	}
	s.symbols[len(s.symbols)-1].next = -1
	s.heap = s.heap[:0]
	for i := 1; i < len(s.symbols); i++ {
		m.push(s, text, int32(i-1), int32(i))
	}
	syms := s.symbols
	for len(s.heap) > 0 {
		bg := s.pop()
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != bg.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = bg.left
		}
		m.push(s, text, l.prev, bg.left)
		m.push(s, text, bg.left, l.next)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		piece := text[syms[i].start : syms[i].start+syms[i].n]
		if id, ok := m.tokenID[piece]; ok {
			out = append(out, id)
			continue
		}
		// Every merged symbol is a token (a pair is queued only if its text is one), so only
		// single characters reach the byte fallback.
		for j := 0; j < len(piece); j++ {
			// llama.cpp throws when a byte has no token at all; we drop the byte instead.
			if id := m.byteTok[piece[j]]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

func (m *spmModel) push(s *spmSession, text string, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	l, r := s.symbols[left], s.symbols[right]
	id, ok := m.tokenID[text[l.start:l.start+l.n+r.n]]
	if !ok {
		return
	}
	var score float32
	if int(id) < len(m.scores) {
		score = m.scores[id]
	}
	h := append(s.heap, spmBigram{score: score, left: left, right: right, size: l.n + r.n})
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	s.heap = h
}

func (s *spmSession) pop() spmBigram {
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
		if c+1 < len(h) && h[c+1].before(h[c]) {
			c++
		}
		if !h[c].before(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	s.heap = h
	return top
}
