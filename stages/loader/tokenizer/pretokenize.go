package tokenizer

// Pre-tokenizers split a raw text fragment into pieces before BPE runs on each piece. llama.cpp
// describes each pre-tokenizer as a list of regular expressions applied in sequence: every
// expression splits each piece left by the previous one, and both its matches and the gaps
// between them become pieces. The expressions need look-ahead, which Go's RE2 lacks, so each one
// is a hand-written matcher here (as llama.cpp itself does for the GPT-2 and Llama-3 patterns).
//
// A splitter works on code points: cps is the whole fragment, cls their classes, and in the
// lengths of the current pieces (summing to len(cps)). It appends the new piece lengths to out.
type splitter func(cps []rune, cls []uint8, in, out []int) []int

// pieceMatcher finds the pieces of one piece cps[lo:hi] and appends their lengths to out.
type pieceMatcher func(cps []rune, cls []uint8, lo, hi int, out []int) []int

func eachPiece(m pieceMatcher) splitter {
	return func(cps []rune, cls []uint8, in, out []int) []int {
		lo := 0
		for _, n := range in {
			out = m(cps, cls, lo, lo+n, out)
			lo += n
		}
		return out
	}
}

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
func matchLlama3(maxDigits int) pieceMatcher {
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
			if c != '\r' && c != '\n' && f&classNumber == 0 && (f&classLetter != 0 || class(pos+1)&classLetter != 0) {
				pos++
				for class(pos)&classLetter != 0 {
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
			if isOther(f2) {
				pos += sp
				for isOther(class(pos)) {
					pos++
				}
				for r := at(pos); r == '\r' || r == '\n'; r = at(pos) {
					pos++
				}
				emit(pos)
				continue
			}
			n, lastNL := 0, -1
			for class(pos+n)&classSpace != 0 {
				if r := cps[pos+n]; r == '\r' || r == '\n' {
					lastNL = pos + n + 1
				}
				n++
			}
			switch {
			case lastNL >= 0: // '\s*[\r\n]+'
				pos = lastNL
			case n > 1 && pos+n < hi: // '\s+(?!\S)'
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
}

func asciiLower(c rune) rune {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// splitRuns splits every piece into maximal runs of code points satisfying in and the gaps
// between them: a regex of the form [class]+ under llama.cpp's match-and-gap splitting.
func splitRuns(in func(c rune, f uint8) bool) pieceMatcher {
	return func(cps []rune, cls []uint8, lo, hi int, out []int) []int {
		start := lo
		for pos := lo; pos < hi; {
			if !in(cps[pos], cls[pos]) {
				pos++
				continue
			}
			if pos > start {
				out = append(out, pos-start)
			}
			end := pos
			for end < hi && in(cps[end], cls[end]) {
				end++
			}
			out = append(out, end-pos)
			start, pos = end, end
		}
		if hi > start {
			out = append(out, hi-start)
		}
		return out
	}
}

// defaultPunct is the DEFAULT pre-tokenizer's first regex, [\p{P}\$\+<=>\^~\|]+. llama.cpp runs
// it through std::regex on a "collapsed" text: ASCII stays itself (so \p{P} is the ASCII
// punctuation set, which with $+<=>^~| covers every printable ASCII symbol except '`'), non-ASCII
// whitespace never matches, and other code points match by Unicode category P.
func defaultPunct(c rune, f uint8) bool {
	if c < 0x80 {
		return c > ' ' && c < 0x7F && c != '`' && f&(classLetter|classNumber) == 0
	}
	return f&classSpace == 0 && f&classPunct != 0
}

// defaultNumber is \p{N}+ under the same collapsing.
func defaultNumber(c rune, f uint8) bool {
	if c < 0x80 {
		return c >= '0' && c <= '9'
	}
	return f&classSpace == 0 && f&classNumber != 0
}

// matchDigitTriples is the regex [0-9][0-9][0-9]: each run of ASCII digits yields triples from
// its left end, the remainder (and everything else) staying as gaps.
func matchDigitTriples(cps []rune, _ []uint8, lo, hi int, out []int) []int {
	start := lo
	for pos := lo; pos+3 <= hi; {
		if isDigit(cps[pos]) && isDigit(cps[pos+1]) && isDigit(cps[pos+2]) {
			if pos > start {
				out = append(out, pos-start)
			}
			out = append(out, 3)
			pos += 3
			start = pos
			continue
		}
		pos++
	}
	if hi > start {
		out = append(out, hi-start)
	}
	return out
}

func isDigit(c rune) bool { return c >= '0' && c <= '9' }

// preTokenizers maps tokenizer.ggml.pre values to llama.cpp's regex lists (llama-vocab.cpp,
// llm_tokenizer_bpe). ignoreMerges and addBOS are the load-time flags the same values set.
type preTokenizer struct {
	split        []splitter
	ignoreMerges bool
	addBOS       bool
	cleanSpaces  bool
}

var (
	gpt2Split    = eachPiece(matchGPT2)
	llama3Split  = eachPiece(matchLlama3(3))
	qwen2Split   = eachPiece(matchLlama3(1))
	defaultSplit = []splitter{
		eachPiece(splitRuns(defaultPunct)),
		gpt2Split,
		eachPiece(splitRuns(defaultNumber)),
		eachPiece(matchDigitTriples),
	}
)

func lookupPre(pre string) (preTokenizer, bool) {
	switch pre {
	case "", "default":
		return preTokenizer{split: defaultSplit, cleanSpaces: true}, true
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
		"jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4", "a.x-4.0", "mellum", "modern-bert":
		return preTokenizer{split: []splitter{gpt2Split}, cleanSpaces: true}, true
	case "llama3", "llama-v3", "llama-bpe", "falcon3":
		return preTokenizer{split: []splitter{llama3Split}, ignoreMerges: true, addBOS: true, cleanSpaces: true}, true
	case "dbrx", "smaug-bpe":
		return preTokenizer{split: []splitter{llama3Split}, cleanSpaces: true}, true
	case "qwen2", "deepseek-r1-qwen":
		return preTokenizer{split: []splitter{qwen2Split}}, true
	case "stablelm2":
		return preTokenizer{split: []splitter{qwen2Split}, cleanSpaces: true}, true
	}
	return preTokenizer{}, false
}
