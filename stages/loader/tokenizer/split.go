package tokenizer

// The hand-written splitters llama.cpp uses instead of std::regex for some expressions
// (src/unicode.cpp, unicode_regex_split_custom). They are not always what the expression says
// (Kimi-K2's splitter implements a whole list of expressions, AFMoE's digit splitter glues the
// text before a digit run to its first group), so each one is reproduced as llama.cpp runs it.
//
// A pieceMatcher finds the pieces of one piece cps[lo:hi] (cls holds the classes of cps) and
// appends their lengths to out.
type pieceMatcher func(cps []rune, cls []uint8, lo, hi int, out []int) []int

// pieceScan walks one piece cps[lo:hi]. Positions outside the piece read as code point -1 with
// no class at all, as in llama.cpp's splitters; emit closes a piece at end.
type pieceScan struct {
	cps       []rune
	cls       []uint8
	lo, hi    int
	start     int
	out       []int
	foldCase  bool // contractions are ASCII case-insensitive
	letter    uint8
	maxDigits int // \p{N}{1,maxDigits}; 0 is \p{N}+
}

func newScan(cps []rune, cls []uint8, lo, hi int, out []int) *pieceScan {
	return &pieceScan{cps: cps, cls: cls, lo: lo, hi: hi, start: lo, out: out, letter: classLetter}
}

func (p *pieceScan) at(i int) rune {
	if i >= p.lo && i < p.hi {
		return p.cps[i]
	}
	return -1
}

func (p *pieceScan) class(i int) uint8 {
	if i >= p.lo && i < p.hi {
		return p.cls[i]
	}
	return 0
}

func (p *pieceScan) emit(end int) {
	if end > p.start {
		p.out = append(p.out, end-p.start)
	}
	p.start = end
}

// contraction is the length of 's 't 're 've 'm 'll 'd at pos, or 0.
func (p *pieceScan) contraction(pos int) int {
	if p.at(pos) != '\'' {
		return 0
	}
	c1, c2 := p.at(pos+1), p.at(pos+2)
	if p.foldCase {
		c1, c2 = asciiLower(c1), asciiLower(c2)
	}
	switch {
	case c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd':
		return 2
	case c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l':
		return 3
	}
	return 0
}

// other reports [^\s\p{L}\p{N}] (with the scan's letter classes) for a class read by class().
func (p *pieceScan) other(f uint8) bool {
	return f != 0 && f&(p.letter|classNumber|classSpace) == 0
}

// run returns the end of the run of code points from pos whose class has a bit of mask.
func (p *pieceScan) run(pos int, mask uint8) int {
	for p.class(pos)&mask != 0 {
		pos++
	}
	return pos
}

// digits emits the \p{N} run at pos in groups of maxDigits and returns its end.
func (p *pieceScan) digits(pos int) int {
	group := pos
	for p.class(pos)&classNumber != 0 {
		pos++
		if p.maxDigits > 0 && pos-group >= p.maxDigits {
			p.emit(pos)
			group = pos
		}
	}
	p.emit(pos)
	return pos
}

// symbols matches ' ?[^\s\p{L}\p{N}]+' at pos, then [\r\n]* when newlines is set, and returns
// its end, or pos when it does not match.
func (p *pieceScan) symbols(pos int, newlines bool) int {
	f, sp := p.cls[pos], 0
	if p.cps[pos] == ' ' {
		f, sp = p.class(pos+1), 1
	}
	if !p.other(f) {
		return pos
	}
	pos += sp
	for p.other(p.class(pos)) {
		pos++
	}
	for newlines && (p.at(pos) == '\r' || p.at(pos) == '\n') {
		pos++
	}
	return pos
}

// matchGPT2 implements OpenAI's GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (llama.cpp's unicode_regex_split_custom_gpt2): contractions are case-sensitive, and a
// whitespace run followed by a non-space leaves its last character to the next piece.
func matchGPT2(cps []rune, cls []uint8, lo, hi int, out []int) []int {
	p := newScan(cps, cls, lo, hi, out)
	for pos := lo; pos < hi; {
		if n := p.contraction(pos); n > 0 {
			pos += n
			p.emit(pos)
			continue
		}
		f, sp := cls[pos], 0
		if cps[pos] == ' ' {
			f, sp = p.class(pos+1), 1
		}
		switch {
		case f&classLetter != 0: // ' ?\p{L}+'
			pos = p.run(pos+sp, classLetter)
		case f&classNumber != 0: // ' ?\p{N}+'
			pos = p.run(pos+sp, classNumber)
		case p.other(f): // ' ?[^\s\p{L}\p{N}]+'
			pos = p.symbols(pos, false)
		default:
			n := p.run(pos, classSpace) - pos
			switch {
			case n > 1 && pos+n < hi: // '\s+(?!\S)': the last space goes with what follows
				pos += n - 1
			case n > 0: // '\s+'
				pos += n
			default:
				pos++
			}
		}
		p.emit(pos)
	}
	return p.out
}

// isOther reports [^\s\p{L}\p{N}] for a code point inside the piece.
func isOther(f uint8) bool {
	return f != 0 && f&(classLetter|classNumber|classSpace) == 0
}

// matchLlama3 implements the Llama-3 pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// (llama.cpp's unicode_regex_split_custom_llama3) with digit runs cut every maxDigits code
// points. Qwen2's pattern is the same with \p{N} instead of \p{N}{1,3}: maxDigits = 1.
// Qwen3.5's (unicode_regex_split_custom_qwen35) also counts marks as letters: [\p{L}\p{M}]+ and
// [^\s\p{L}\p{M}\p{N}]+.
func matchLlama3(maxDigits int, marks bool) pieceMatcher {
	letter := classLetter
	if marks {
		letter |= classMark
	}
	return func(cps []rune, cls []uint8, lo, hi int, out []int) []int {
		p := newScan(cps, cls, lo, hi, out)
		p.foldCase, p.letter, p.maxDigits = true, letter, maxDigits
		for pos := lo; pos < hi; {
			c, f := cps[pos], cls[pos]
			if n := p.contraction(pos); n > 0 {
				pos += n
				p.emit(pos)
				continue
			}
			// '[^\r\n\p{L}\p{N}]?\p{L}+'
			if c != '\r' && c != '\n' && f&classNumber == 0 && (f&letter != 0 || p.class(pos+1)&letter != 0) {
				pos = p.run(pos+1, letter)
				p.emit(pos)
				continue
			}
			pos = p.llama3Tail(pos)
		}
		return p.out
	}
}

func asciiLower(c rune) rune {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchKimiK2 is llama.cpp's unicode_regex_split_custom_kimi_k2, which stands for Kimi-K2's whole
// pattern
//
//	[\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|…|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// as it implements it: Han runs, then letter runs without Han with an optional leading
// non-letter and an optional contraction, then the Llama-3 rules.
func matchKimiK2(cps []rune, cls []uint8, lo, hi int, out []int) []int {
	p := newScan(cps, cls, lo, hi, out)
	p.foldCase, p.maxDigits = true, 3
	han := func(i int) bool { return i >= lo && i < hi && isHan(cps[i]) }
	word := func(i int) bool { return p.class(i)&classLetter != 0 && !han(i) }
	for pos := lo; pos < hi; {
		c, f := cps[pos], cls[pos]
		if isHan(c) {
			for han(pos) {
				pos++
			}
			p.emit(pos)
			continue
		}
		lead := c != '\r' && c != '\n' && f&(classLetter|classNumber) == 0
		if word(pos) || lead && word(pos+1) {
			if lead {
				pos++
			}
			for word(pos) {
				pos++
			}
			pos += p.contraction(pos) // (?i:'s|'t|'re|'ve|'m|'ll|'d)?
			p.emit(pos)
			continue
		}
		pos = p.llama3Tail(pos)
	}
	return p.out
}

// llama3Tail matches the rules the Llama-3 family ends with,
// \p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+, else one character, at
// pos; it emits the pieces and returns their end.
func (p *pieceScan) llama3Tail(pos int) int {
	if p.cls[pos]&classNumber != 0 {
		return p.digits(pos)
	}
	if end := p.symbols(pos, true); end > pos {
		pos = end
	} else {
		pos = matchSpaces(p.cps, p.cls, pos, p.hi)
	}
	p.emit(pos)
	return pos
}

// matchSpaces is the whitespace tail the Llama-3 family shares: \s*[\r\n]+|\s+(?!\S)|\s+, else one
// character. It returns the end of the match at pos.
func matchSpaces(cps []rune, cls []uint8, pos, hi int) int {
	n, lastNL := 0, -1
	for pos+n < hi && cls[pos+n]&classSpace != 0 {
		if r := cps[pos+n]; r == '\r' || r == '\n' {
			lastNL = pos + n + 1
		}
		n++
	}
	switch {
	case lastNL >= 0: // '\s*[\r\n]+'
		return lastNL
	case n > 1 && pos+n < hi: // '\s+(?!\S)'
		return pos + n - 1
	case n > 0: // '\s+'
		return pos + n
	}
	return pos + 1
}

// matchDigitGroups is llama.cpp's unicode_regex_split_custom_afmoe, which it runs for AFMoE's
// digit rule and for Tiny Aya's \d{1,3}(?=(?:\d{3})*\b): every \p{N} run is cut into groups
// of three from the right. The text since the previous group is not a piece of its own: it joins
// the first group of the next run.
func matchDigitGroups(_ []rune, cls []uint8, lo, hi int, out []int) []int {
	start := lo
	for pos := lo; pos < hi; {
		if cls[pos]&classNumber == 0 {
			pos++
			continue
		}
		run := pos
		for pos < hi && cls[pos]&classNumber != 0 {
			pos++
		}
		cut := run + (pos-run)%3
		if cut == run {
			cut += 3
		}
		for ; cut <= pos; cut += 3 {
			out = append(out, cut-start)
			start = cut
		}
	}
	if hi > start {
		out = append(out, hi-start)
	}
	return out
}

// matchNewlines is [^\n]+|[\n]+ (unicode_regex_split_custom_newlines): runs of newlines and of
// everything else.
func matchNewlines(cps []rune, _ []uint8, lo, hi int, out []int) []int {
	for pos := lo; pos < hi; {
		run := pos
		nl := cps[pos] == '\n'
		for pos < hi && (cps[pos] == '\n') == nl {
			pos++
		}
		out = append(out, pos-run)
	}
	return out
}

// matchTripleBoundaries is SuperBPE's (?=(\d{3})+(?!\d)) as std::regex_iterator runs it: an empty
// match wherever the ASCII digits from there to the end of their run number a positive multiple
// of three. llama.cpp runs the expression through std::regex, which takes quadratic time on a long
// digit run (and overflows its stack); this scan yields the same pieces in one pass.
func matchTripleBoundaries(cps []rune, _ []uint8, lo, hi int, out []int) []int {
	prev := lo
	for pos := lo; pos < hi; {
		if !isDigit(cps[pos]) {
			pos++
			continue
		}
		end := pos
		for end < hi && isDigit(cps[end]) {
			end++
		}
		for p := pos; p < end; p++ {
			if (end-p)%3 != 0 {
				continue
			}
			if p > prev {
				out = append(out, p-prev)
			}
			out = append(out, 0)
			prev = p
		}
		pos = end
	}
	if hi > prev {
		out = append(out, hi-prev)
	}
	return out
}

func isDigit(c rune) bool { return c >= '0' && c <= '9' }
