package tokenizer

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A regex is one of llama.cpp's pre-tokenizer expressions that has no hand-written splitter, run
// the way llama.cpp runs it: with C++ std::regex (ECMAScript grammar, backtracking, the first
// alternative that leads to a match wins) over a transformed copy of the text
// (src/unicode.cpp, unicode_regex_split):
//
//   - an expression that names a Unicode category (\p{L}, \p{N}, \p{P}, \p{M}, \p{S} and the
//     letter subcategories, which all mean \p{L}) runs on the "collapsed" text: ASCII stays
//     itself, non-ASCII whitespace becomes '\v', and every other code point becomes one byte
//     for its category (0xD1 number, 0xD2 letter, 0xD3 punctuation, 0xD4 mark, 0xD5 symbol,
//     0xD0 anything else). Each \p{X} in the expression becomes that byte plus the ASCII
//     members of the category, so case distinctions and literal non-ASCII characters only
//     exist for ASCII;
//   - any other expression runs on the code points themselves, non-ASCII whitespace again
//     replaced by '\v' (std::wregex's \s knows only ASCII whitespace).
//
// The engine below implements the ECMAScript subset these expressions use: literals, classes
// with ranges and \s \S \d \D \w \W, groups, (?:), (?=) and (?!), alternation, the greedy
// quantifiers * + ? {n} {n,} {n,m}, and ^ $ at the ends of the piece.
type regex struct {
	src       string
	collapsed bool
	root      reNode
}

// Collapsed category bytes (llama.cpp unicode.cpp k_ucat_cpt).
const (
	collapsedOther  = 0xD0
	collapsedNumber = 0xD1
	collapsedLetter = 0xD2
	collapsedPunct  = 0xD3
	collapsedMark   = 0xD4
	collapsedSymbol = 0xD5
)

// ucatCollapse maps each \p{X} llama.cpp knows to its collapsed byte and the ASCII members of
// the category, as regex text (k_ucat_map).
var ucatCollapse = map[string]string{
	`\p{N}`:  "\xD1" + `0-9`,
	`\p{L}`:  "\xD2" + `A-Za-z`,
	`\p{Lu}`: "\xD2" + `A-Za-z`,
	`\p{Ll}`: "\xD2" + `A-Za-z`,
	`\p{Lt}`: "\xD2" + `A-Za-z`,
	`\p{Lm}`: "\xD2" + `A-Za-z`,
	`\p{Lo}`: "\xD2" + `A-Za-z`,
	`\p{P}`:  "\xD3" + `!-#%-*,-/:-;?-@\[-\]_\{\}`,
	`\p{M}`:  "\xD4",
	`\p{S}`:  "\xD5" + `\$\+<->^` + "`" + `\|\~`,
}

// collapseByte is the collapsed form of one code point.
func collapseByte(c rune, f uint8) rune {
	switch {
	case c < 0x80:
		return c
	case f&classSpace != 0:
		return '\v'
	case f&classNumber != 0:
		return collapsedNumber
	case f&classLetter != 0:
		return collapsedLetter
	case f&classPunct != 0:
		return collapsedPunct
	case f&classMark != 0:
		return collapsedMark
	case f&classSymbol != 0:
		return collapsedSymbol
	}
	return collapsedOther
}

// wideRune is the code point as llama.cpp's std::wregex path sees it.
func wideRune(c rune, f uint8) rune {
	if c >= 0x80 && f&classSpace != 0 {
		return '\v'
	}
	return c
}

// compileRegex parses expr as llama.cpp would run it. The pattern is kept as a slice of runes
// whose values are bytes (collapsed) or code points (wide), so that the collapsed category
// bytes, which are not valid UTF-8, stay single characters.
func compileRegex(expr string) (*regex, error) {
	r := &regex{src: expr}
	var pat []rune
	for name := range ucatCollapse {
		if strings.Contains(expr, name) {
			r.collapsed = true
		}
	}
	if r.collapsed {
		inside := false
		for i := 0; i < len(expr); i++ {
			c := expr[i]
			if c >= 0x80 {
				return nil, fmt.Errorf("regex %q: Unicode categories and non-ASCII characters together are not supported (nor by llama.cpp)", expr)
			}
			switch {
			case c == '[' && (i == 0 || expr[i-1] != '\\'):
				inside = true
			case inside && c == ']' && expr[i-1] != '\\':
				inside = false
			case c == '\\' && i+3 < len(expr) && expr[i+1] == 'p' && expr[i+2] == '{':
				if end := strings.IndexByte(expr[i+3:], '}') + i + 3; end >= i+3 && end <= i+10 {
					if repl, ok := ucatCollapse[expr[i:end+1]]; ok {
						if !inside {
							pat = append(pat, '[')
						}
						for j := 0; j < len(repl); j++ {
							pat = append(pat, rune(repl[j]))
						}
						if !inside {
							pat = append(pat, ']')
						}
						i = end
						continue
					}
				}
			}
			pat = append(pat, rune(c))
		}
	} else {
		pat = []rune(expr)
	}
	p := &reParser{pat: pat}
	node, err := p.parseAlt()
	if err == nil && p.pos < len(pat) {
		err = fmt.Errorf("unexpected %q", string(pat[p.pos]))
	}
	if err != nil {
		return nil, fmt.Errorf("regex %q: at %d: %w", expr, p.pos, err)
	}
	r.root = node
	return r, nil
}

// reInput is the text a regex runs on: text[lo:hi] is the piece, which is all the regex sees.
type reInput struct {
	text   []rune
	lo, hi int
}

// reNode matches at pos and calls k with each possible end, in ECMAScript preference order,
// until k accepts.
type reNode interface {
	match(in *reInput, pos int, k func(int) bool) bool
}

type reSeq []reNode

func (s reSeq) match(in *reInput, pos int, k func(int) bool) bool {
	if len(s) == 0 {
		return k(pos)
	}
	// Single characters and runs of them step on without a continuation closure: most of the
	// expressions are made of them, and the closures are most of the cost.
	switch n := s[0].(type) {
	case oneChar:
		return pos < in.hi && n.has(in.text[pos]) && s[1:].match(in, pos+1, k)
	case *reRepeat:
		if c, ok := n.sub.(oneChar); ok {
			for i := n.run(in, pos, c); i >= n.min; i-- {
				if s[1:].match(in, pos+i, k) {
					return true
				}
			}
			return false
		}
	}
	return s[0].match(in, pos, func(p int) bool { return s[1:].match(in, p, k) })
}

type reAlt []reNode

func (a reAlt) match(in *reInput, pos int, k func(int) bool) bool {
	for _, n := range a {
		if n.match(in, pos, k) {
			return true
		}
	}
	return false
}

// reClass matches one character: a set of ranges and named classes, possibly negated. done
// classes answer ASCII from a bitmap and the rest by binary search over merged ranges.
type reClass struct {
	ranges  []rune // pairs lo, hi
	classes []byte // 's', 'S', 'd', 'D', 'w', 'W'
	negate  bool
	done    bool
	ascii   [2]uint64
}

// finish sorts and merges the ranges and fills the ASCII bitmap; the class is read-only after.
func (c *reClass) finish() *reClass {
	type span struct{ lo, hi rune }
	spans := make([]span, 0, len(c.ranges)/2)
	for i := 0; i < len(c.ranges); i += 2 {
		spans = append(spans, span{c.ranges[i], c.ranges[i+1]})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.lo) - int(b.lo) })
	c.ranges = c.ranges[:0]
	for _, sp := range spans {
		if n := len(c.ranges); n > 0 && sp.lo <= c.ranges[n-1]+1 {
			c.ranges[n-1] = max(c.ranges[n-1], sp.hi)
			continue
		}
		c.ranges = append(c.ranges, sp.lo, sp.hi)
	}
	for r := rune(0); r < 128; r++ {
		if c.slowHas(r) {
			c.ascii[r>>6] |= 1 << (r & 63)
		}
	}
	c.done = true
	return c
}

func (c *reClass) has(r rune) bool {
	if c.done && r >= 0 && r < 128 {
		return c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	return c.slowHas(r)
}

func (c *reClass) slowHas(r rune) bool {
	// the last range starting at or before r
	i := sort.Search(len(c.ranges)/2, func(i int) bool { return c.ranges[2*i] > r }) - 1
	if i >= 0 && r <= c.ranges[2*i+1] {
		return !c.negate
	}
	for _, k := range c.classes {
		if namedClass(k, r) {
			return !c.negate
		}
	}
	return c.negate
}

// namedClass is \s, \d, \w and their negations in the C locale: ASCII only.
func namedClass(k byte, r rune) bool {
	var in bool
	switch k | 0x20 {
	case 's':
		in = r == ' ' || r >= '\t' && r <= '\r'
	case 'd':
		in = r >= '0' && r <= '9'
	case 'w':
		in = r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_'
	}
	if k < 'a' { // upper-case letter: the complement
		return !in
	}
	return in
}

func (c *reClass) match(in *reInput, pos int, k func(int) bool) bool {
	return pos < in.hi && c.has(in.text[pos]) && k(pos+1)
}

// oneChar is a node that matches exactly one character, chosen by a predicate: a class, or a
// class behind a one-character lookahead such as (?=[\p{L}])[^a-z]. Repeats of it need no
// backtracking stack.
type oneChar interface {
	reNode
	has(r rune) bool
}

// reGuarded is (?=look)cls or (?!look)cls with one-character look and cls.
type reGuarded struct {
	look   *reClass
	negate bool
	cls    *reClass
}

func (g *reGuarded) has(r rune) bool { return g.look.has(r) != g.negate && g.cls.has(r) }

func (g *reGuarded) match(in *reInput, pos int, k func(int) bool) bool {
	return pos < in.hi && g.has(in.text[pos]) && k(pos+1)
}

// reRepeat is a greedy quantifier; max < 0 is unbounded.
type reRepeat struct {
	sub      reNode
	min, max int
}

func (r *reRepeat) match(in *reInput, pos int, k func(int) bool) bool {
	if c, ok := r.sub.(oneChar); ok { // one character per iteration: no recursion needed
		for n := r.run(in, pos, c); n >= r.min; n-- {
			if k(pos + n) {
				return true
			}
		}
		return false
	}
	return r.from(in, pos, 0, k)
}

// maxGroupRepeats bounds the iterations of a repeated group (one character per iteration is not
// bounded), which recurse here as in std::regex: llama.cpp's std::regex overflows its stack on a
// few thousand iterations anyway, so longer runs have no reference behaviour; they are cut here
// instead of exhausting the stack.
const maxGroupRepeats = 1 << 12

// run is the greedy length of a repeated single character at pos.
func (r *reRepeat) run(in *reInput, pos int, c oneChar) int {
	n := 0
	for pos+n < in.hi && (r.max < 0 || n < r.max) && c.has(in.text[pos+n]) {
		n++
	}
	return n
}

func (r *reRepeat) from(in *reInput, pos, count int, k func(int) bool) bool {
	if (r.max < 0 || count < r.max) && count < maxGroupRepeats {
		more := r.sub.match(in, pos, func(p int) bool {
			if p == pos && count >= r.min { // an empty iteration ends the loop (ECMAScript)
				return false
			}
			return r.from(in, p, count+1, k)
		})
		if more {
			return true
		}
	}
	return count >= r.min && k(pos)
}

type reLook struct {
	sub    reNode
	negate bool
}

func (l *reLook) match(in *reInput, pos int, k func(int) bool) bool {
	found := l.sub.match(in, pos, func(int) bool { return true })
	return found != l.negate && k(pos)
}

// reAnchor is ^ (start) or $ (end of the piece).
type reAnchor bool

func (a reAnchor) match(in *reInput, pos int, k func(int) bool) bool {
	if a {
		return pos == in.hi && k(pos)
	}
	return pos == in.lo && k(pos)
}

type reParser struct {
	pat []rune
	pos int
}

func (p *reParser) more() bool { return p.pos < len(p.pat) }
func (p *reParser) peek() rune { return p.pat[p.pos] }

func (p *reParser) parseAlt() (reNode, error) {
	var alts reAlt
	for {
		seq, err := p.parseSeq()
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		if !p.more() || p.peek() != '|' {
			break
		}
		p.pos++
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

func (p *reParser) parseSeq() (reNode, error) {
	var seq reSeq
	for p.more() && p.peek() != '|' && p.peek() != ')' {
		atom, err := p.parseAtom()
		if err != nil {
			return nil, err
		}
		if atom, err = p.parseQuantifier(atom); err != nil {
			return nil, err
		}
		seq = append(seq, atom)
		// Fuse (?=[…])[…] into one single-character node.
		if n := len(seq); n >= 2 {
			look, isLook := seq[n-2].(*reLook)
			cls, isClass := seq[n-1].(*reClass)
			if isLook && isClass {
				if lc, ok := look.sub.(*reClass); ok {
					seq = append(seq[:n-2], &reGuarded{look: lc, negate: look.negate, cls: cls})
				}
			}
		}
	}
	if len(seq) == 1 {
		return seq[0], nil
	}
	return seq, nil
}

func (p *reParser) parseQuantifier(atom reNode) (reNode, error) {
	if !p.more() {
		return atom, nil
	}
	min, max := 0, 0
	switch p.peek() {
	case '*':
		min, max = 0, -1
	case '+':
		min, max = 1, -1
	case '?':
		min, max = 0, 1
	case '{':
		end := p.pos + 1
		for end < len(p.pat) && p.pat[end] != '}' {
			end++
		}
		if end == len(p.pat) {
			return nil, fmt.Errorf("unterminated {")
		}
		body := string(p.pat[p.pos+1 : end])
		lo, hi, comma := body, body, false
		for i := range body {
			if body[i] == ',' {
				lo, hi, comma = body[:i], body[i+1:], true
				break
			}
		}
		var err error
		if min, err = strconv.Atoi(lo); err != nil {
			return nil, fmt.Errorf("bad repetition {%s}", body)
		}
		switch {
		case !comma:
			max = min
		case hi == "":
			max = -1
		default:
			if max, err = strconv.Atoi(hi); err != nil || max < min {
				return nil, fmt.Errorf("bad repetition {%s}", body)
			}
		}
		p.pos = end
	default:
		return atom, nil
	}
	p.pos++
	if p.more() && p.peek() == '?' {
		return nil, fmt.Errorf("lazy quantifiers are not supported")
	}
	return &reRepeat{sub: atom, min: min, max: max}, nil
}

func (p *reParser) parseAtom() (reNode, error) {
	c := p.peek()
	p.pos++
	switch c {
	case '(':
		var look *reLook
		if p.pos+1 < len(p.pat) && p.pat[p.pos] == '?' {
			switch p.pat[p.pos+1] {
			case ':':
			case '=':
				look = &reLook{}
			case '!':
				look = &reLook{negate: true}
			default:
				return nil, fmt.Errorf("unsupported group (?%c", p.pat[p.pos+1])
			}
			p.pos += 2
		}
		sub, err := p.parseAlt()
		if err != nil {
			return nil, err
		}
		if !p.more() || p.peek() != ')' {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		if look != nil {
			look.sub = sub
			return look, nil
		}
		return sub, nil
	case '[':
		return p.parseClass()
	case '\\':
		c, err := p.parseEscape(false)
		if err != nil {
			return nil, err
		}
		return c.finish(), nil
	case '^':
		return reAnchor(false), nil
	case '$':
		return reAnchor(true), nil
	case '.':
		return (&reClass{ranges: []rune{'\n', '\n', '\r', '\r', 0x2028, 0x2029}, negate: true}).finish(), nil
	case '*', '+', '?', '{', ')':
		return nil, fmt.Errorf("unexpected %q", c)
	}
	return (&reClass{ranges: []rune{c, c}}).finish(), nil
}

// parseEscape reads what follows a backslash: a named class, a control escape or an identity
// escape. In a class, the caller merges the result.
func (p *reParser) parseEscape(inClass bool) (*reClass, error) {
	if !p.more() {
		return nil, fmt.Errorf("trailing backslash")
	}
	c := p.peek()
	p.pos++
	switch c {
	case 's', 'S', 'd', 'D', 'w', 'W':
		return &reClass{classes: []byte{byte(c)}}, nil
	case 'b', 'B', 'p', 'P', 'u', 'x', 'c':
		if !(inClass && c == 'b') {
			return nil, fmt.Errorf(`unsupported escape \%c`, c)
		}
		c = '\b'
	case 't':
		c = '\t'
	case 'n':
		c = '\n'
	case 'r':
		c = '\r'
	case 'f':
		c = '\f'
	case 'v':
		c = '\v'
	case '0':
		c = 0
	}
	return &reClass{ranges: []rune{c, c}}, nil
}

func (p *reParser) parseClass() (reNode, error) {
	cls := &reClass{}
	if p.more() && p.peek() == '^' {
		cls.negate = true
		p.pos++
	}
	first := true
	for {
		if !p.more() {
			return nil, fmt.Errorf("missing ]")
		}
		if p.peek() == ']' && !first {
			p.pos++
			return cls.finish(), nil
		}
		first = false
		lo, named, err := p.classAtom()
		if err != nil {
			return nil, err
		}
		if named != nil {
			cls.classes = append(cls.classes, named...)
			continue
		}
		if p.pos+1 < len(p.pat) && p.peek() == '-' && p.pat[p.pos+1] != ']' {
			p.pos++
			hi, named, err := p.classAtom()
			if err != nil {
				return nil, err
			}
			if named != nil || hi < lo {
				return nil, fmt.Errorf("bad range")
			}
			cls.ranges = append(cls.ranges, lo, hi)
			continue
		}
		cls.ranges = append(cls.ranges, lo, lo)
	}
}

// classAtom reads one class member: a character, or a named class (\s …).
func (p *reParser) classAtom() (rune, []byte, error) {
	c := p.peek()
	p.pos++
	if c != '\\' {
		return c, nil, nil
	}
	e, err := p.parseEscape(true)
	if err != nil {
		return 0, nil, err
	}
	if e.classes != nil {
		return 0, e.classes, nil
	}
	return e.ranges[0], nil, nil
}

// split appends the pieces of text[lo:hi] as llama.cpp's unicode_regex_split_stl does with
// std::regex_iterator: each match and each non-empty gap before it becomes a piece, empty
// matches included; after an empty match the search retries at the same place for a non-empty
// match, then moves on one character.
func (r *regex) split(text []rune, lo, hi int, out []int) []int {
	in := &reInput{text: text, lo: lo, hi: hi}
	prev := lo // end of the last match
	at := lo   // where the next search starts
	notNull := false
	for at <= hi {
		start, end, ok := r.search(in, at, notNull)
		if !ok && notNull {
			at++
			notNull = false
			continue
		}
		if !ok {
			break
		}
		if start > prev {
			out = append(out, start-prev)
		}
		out = append(out, end-start)
		prev, at = end, end
		notNull = end == start
		if notNull && end == hi {
			break
		}
	}
	if hi > prev {
		out = append(out, hi-prev)
	}
	return out
}

// search finds the leftmost match starting at or after from (only at from when notNull, which
// also rejects an empty match, as match_continuous | match_not_null do).
func (r *regex) search(in *reInput, from int, notNull bool) (start, end int, ok bool) {
	accept := func(e int) bool {
		if notNull && e == start {
			return false
		}
		end = e
		return true
	}
	for start = from; start <= in.hi; start++ {
		if r.root.match(in, start, accept) {
			return start, end, true
		}
		if notNull {
			break
		}
	}
	return 0, 0, false
}
