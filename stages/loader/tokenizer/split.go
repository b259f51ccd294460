package tokenizer

// The hand-written splitters llama.cpp uses instead of std::regex for some expressions
// (src/unicode.cpp, unicode_regex_split_custom). They are not always what the expression says
// (Kimi-K2's splitter implements a whole list of expressions, AFMoE's digit splitter glues the
// text before a digit run to its first group), so each one is reproduced as llama.cpp runs it.
//
// A pieceMatcher finds the pieces of one piece cps[lo:hi] (cls holds the classes of cps) and
// appends their lengths to out.
type pieceMatcher func(cps []rune, cls []uint8, lo, hi int, out []int) []int

// matchGPT2 implements OpenAI's GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (llama.cpp's unicode_regex_split_custom_gpt2): contractions are case-sensitive, and a
// whitespace run followed by a non-space leaves its last character to the next piece.
func matchGPT2(cps []rune, cls []uint8, lo, hi int, out []int) []int {
	at := func(i int) rune {
		if i >= lo && i < hi {
			return cps[i]
		}
		return -1
	}
	class := func(i int) uint8 {
		if i >= lo && i < hi {
			return cls[i]
		}
		return 0
	}
	start := lo
	emit := func(end int) {
		if end > start {
			out = append(out, end-start)
		}
		start = end
	}
	for pos := lo; pos < hi; {
		c := cps[pos]
		if c == '\'' && pos+1 < hi {
			c1 := at(pos + 1)
			if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
				pos += 2
				emit(pos)
				continue
			}
			if c2 := at(pos + 2); pos+2 < hi && (c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l') {
				pos += 3
				emit(pos)
				continue
			}
		}
		f := cls[pos]
		sp := 0
		if c == ' ' {
			f = class(pos + 1)
			sp = 1
		}
		switch {
		case f&classLetter != 0: // ' ?\p{L}+'
			pos += sp
			for class(pos)&classLetter != 0 {
				pos++
			}
			emit(pos)
			continue
		case f&classNumber != 0: // ' ?\p{N}+'
			pos += sp
			for class(pos)&classNumber != 0 {
				pos++
			}
			emit(pos)
			continue
		case isOther(f): // ' ?[^\s\p{L}\p{N}]+'
			pos += sp
			for isOther(class(pos)) {
				pos++
			}
			emit(pos)
			continue
		}
		n := 0
		for class(pos+n)&classSpace != 0 {
			n++
		}
		switch {
		case n > 1 && pos+n < hi: // '\s+(?!\S)': the last space goes with what follows
			pos += n - 1
		case n > 0: // '\s+'
			pos += n
		default:
			pos++
		}
		emit(pos)
	}
	return out
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
	other := func(f uint8) bool { return f != 0 && f&(letter|classNumber|classSpace) == 0 }
	return func(cps []rune, cls []uint8, lo, hi int, out []int) []int {
		at := func(i int) rune {
			if i >= lo && i < hi {
				return cps[i]
			}
			return -1
		}
		class := func(i int) uint8 {
			if i >= lo && i < hi {
				return cls[i]
			}
			return 0
		}
		start := lo
		emit := func(end int) {
			if end > start {
				out = append(out, end-start)
			}
			start = end
		}
		for pos := lo; pos < hi; {
			c := cps[pos]
			f := cls[pos]
			if c == '\'' && pos+1 < hi { // contractions, ASCII case-insensitive
				c1 := asciiLower(at(pos + 1))
				if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
					pos += 2
					emit(pos)
					continue
				}
				if c2 := asciiLower(at(pos + 2)); pos+2 < hi && (c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l') {
					pos += 3
					emit(pos)
					continue
				}
			}
			// '[^\r\n\p{L}\p{N}]?\p{L}+'
			if c != '\r' && c != '\n' && f&classNumber == 0 && (f&letter != 0 || class(pos+1)&letter != 0) {
				pos++
				for class(pos)&letter != 0 {
					pos++
				}
				emit(pos)
				continue
			}
			// '\p{N}{1,maxDigits}'
			if f&classNumber != 0 {
				run := pos
				for class(pos)&classNumber != 0 {
					pos++
					if pos-run >= maxDigits {
						emit(pos)
						run = pos
					}
				}
				emit(pos)
				continue
			}
			// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
			f2 := f
			sp := 0
			if c == ' ' {
				f2 = class(pos + 1)
				sp = 1
			}
			if other(f2) {
				pos += sp
				for other(class(pos)) {
					pos++
				}
				for r := at(pos); r == '\r' || r == '\n'; r = at(pos) {
					pos++
				}
				emit(pos)
				continue
			}
			pos = matchSpaces(cps, cls, pos, hi)
			emit(pos)
		}
		return out
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
	at := func(i int) rune {
		if i >= lo && i < hi {
			return cps[i]
		}
		return -1
	}
	class := func(i int) uint8 {
		if i >= lo && i < hi {
			return cls[i]
		}
		return 0
	}
	han := func(i int) bool { return i >= lo && i < hi && isHan(cps[i]) }
	word := func(i int) bool { return class(i)&classLetter != 0 && !han(i) }
	start := lo
	emit := func(end int) {
		if end > start {
			out = append(out, end-start)
		}
		start = end
	}
	for pos := lo; pos < hi; {
		c, f := cps[pos], cls[pos]
		if isHan(c) {
			for han(pos) {
				pos++
			}
			emit(pos)
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
			if at(pos) == '\'' && pos+1 < hi { // (?i:'s|'t|'re|'ve|'m|'ll|'d)?
				c1 := asciiLower(at(pos + 1))
				if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
					pos += 2
				} else if c2 := asciiLower(at(pos + 2)); pos+2 < hi && (c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l') {
					pos += 3
				}
			}
			emit(pos)
			continue
		}
		if f&classNumber != 0 { // \p{N}{1,3}
			run := pos
			for class(pos)&classNumber != 0 {
				pos++
				if pos-run >= 3 {
					emit(pos)
					run = pos
				}
			}
			emit(pos)
			continue
		}
		f2 := f
		if c == ' ' {
			f2 = class(pos + 1)
		}
		if isOther(f2) { // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
			if c == ' ' {
				pos++
			}
			for isOther(class(pos)) {
				pos++
			}
			for r := at(pos); r == '\r' || r == '\n'; r = at(pos) {
				pos++
			}
			emit(pos)
			continue
		}
		pos = matchSpaces(cps, cls, pos, hi)
		emit(pos)
	}
	return out
}

// matchSpaces is the tail the Llama-3 family shares: \s*[\r\n]+|\s+(?!\S)|\s+, else one
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
