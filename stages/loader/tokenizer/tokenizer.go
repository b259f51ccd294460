// Package tokenizer holds the tokenizers stored in GGUF metadata (tokenizer.ggml.*) and
// reproduces llama.cpp's tokenize, token_to_piece and detokenize exactly: BPE
// (tokenizer.ggml.model = "gpt2", and Gemma 4's "gemma4") with every pre-tokenizer llama.cpp
// knows (tokenizer.ggml.pre), SentencePiece-style merging by score with byte fallback ("llama"),
// BERT's WordPiece ("bert"), and llama.cpp's end-of-generation token set.
//
// It does not hold Unigram (T5), RWKV, PLaMo-2 or HybridDNA tokenizers, or chat templates.
// A Vocab carries everything the algorithms need, so it can be built by hand as well as read
// with VocabFromGGUF. A Tokenizer is immutable and safe for concurrent use.
package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Vocab is a tokenizer's vocabulary and settings, decoupled from GGUF. Token ids index Tokens;
// Scores and Types may be nil (all 0 and all NORMAL). Special ids are -1 when absent.
type Vocab struct {
	Model string // tokenizer.ggml.model: "gpt2", "gemma4", "llama" or "bert"
	Pre   string // tokenizer.ggml.pre: BPE pre-tokenizer; "" means "default"
	Name  string // general.name: llama.cpp keys per-token strip attributes on it (Phi-3)

	Tokens []string
	Scores []float32
	Types  []int32 // TokenType values
	Merges []string

	BOS, EOS, UNK, EOT, EOM, PAD, SEP int32
	// FIM holds the fill-in-the-middle ids (tokenizer.ggml.fim_*_token_id); nil means none set.
	FIM *FIMTokens

	AddBOS, AddEOS, AddSpacePrefix bool
	// Lowercase and StripAccents are WordPiece's normaliser options
	// (tokenizer.ggml.normalizer.*; llama.cpp's default is true for both).
	Lowercase, StripAccents bool
}

// FIMTokens are fill-in-the-middle token ids, -1 when absent. llama.cpp counts PAD, REP and SEP
// as end of generation.
type FIMTokens struct {
	Pre, Suf, Mid, Pad, Rep, Sep int32
}

// Token types (tokenizer.ggml.token_type, llama.h llama_token_type).
const (
	TypeUndefined   = 0
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// Token attributes (llama.h llama_token_attr): a bit set, since llama.cpp adds CONTROL to
// end-of-generation tokens and RSTRIP to Phi-3's special tokens on top of the file's type.
type attr uint16

const (
	attrUnknown attr = 1 << iota
	attrUnused
	attrNormal
	attrControl
	attrUserDefined
	attrByte
	attrNormalized
	attrLStrip
	attrRStrip
)

func attrOfType(t int32) attr {
	switch t {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeByte:
		return attrByte
	}
	return 0 // UNDEFINED and unknown values
}

// Tokenizer encodes text to token ids and back.
type Tokenizer struct {
	v        Vocab
	spm      bool
	attrs    []attr
	tokenID  map[string]int32
	special  []int32 // CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first
	eog      map[int32]bool
	bpe      *bpeModel
	sp       *spmModel
	wpm      *wpmModel
	clean    bool // llama_detokenize's clean_spaces
	unescape bool // BPE tokens spell spaces as U+2581 (Gemma 4)
	pool     sync.Pool
}

// New prepares a tokenizer. It fails on an unsupported model or pre-tokenizer, on inconsistent
// array lengths and on duplicate tokens, naming what is wrong.
func New(v *Vocab) (*Tokenizer, error) {
	t := &Tokenizer{v: *v}
	n := len(v.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.tokens is empty")
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("tokenizer: %d tokens is too many", n)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.token_type has %d entries for %d tokens", len(v.Types), n)
	}
	var pre preTokenizer
	switch v.Model {
	case "llama":
		t.spm = true
	case "bert":
		t.clean = true
	case "gpt2", "gemma4":
		name := v.Pre
		if v.Model == "gemma4" {
			name = "gemma4" // llama.cpp ignores tokenizer.ggml.pre for this model
		}
		var err error
		if pre, err = lookupPre(name); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		t.clean = pre.cleanSpaces
		t.unescape = pre.escapeSpaces
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer.ggml.model %q (supported: gpt2, gemma4, llama, bert)", v.Model)
	}

	t.v.Tokens = slices.Clone(v.Tokens)
	t.tokenID = make(map[string]int32, n)
	t.attrs = make([]attr, n)
	for i, text := range t.v.Tokens {
		if text == "" {
			text = fmt.Sprintf("[EMPTY_%d]", i) // as llama.cpp renames empty tokens
			t.v.Tokens[i] = text
		}
		if j, dup := t.tokenID[text]; dup {
			return nil, fmt.Errorf("tokenizer: duplicate token %q has ids %d and %d", text, j, i)
		}
		t.tokenID[text] = int32(i)
		t.attrs[i] = attrNormal
		if v.Types != nil {
			t.attrs[i] = attrOfType(v.Types[i])
		}
	}
	for _, id := range []*int32{&t.v.BOS, &t.v.EOS, &t.v.UNK, &t.v.EOT, &t.v.EOM, &t.v.PAD, &t.v.SEP} {
		if *id < 0 || int(*id) >= n {
			*id = -1
		}
	}
	if t.v.AddBOS && t.v.BOS < 0 {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set")
	}
	if t.v.AddEOS && t.v.EOS < 0 {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set")
	}

	t.markEOG()

	for i, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(i))
		}
	}
	// llama.cpp sorts by text length, longest first (std::sort; equal lengths keep id order here).
	slices.SortStableFunc(t.special, func(a, b int32) int { return len(t.v.Tokens[b]) - len(t.v.Tokens[a]) })

	// Per-token strip attributes llama.cpp sets by tokenizer or model name: <mask> strips to its
	// left for Jina v2; every Phi-3 special token strips the whitespace to its right, except
	// <unk>, <s> and <|endoftext|>; ModernBERT's [MASK] strips to its left.
	name := strings.ToLower(v.Name)
	switch {
	case strings.Contains(v.Pre, "jina-v2-de") || strings.Contains(v.Pre, "jina-v2-es") || strings.Contains(v.Pre, "jina-v2-code"):
		if id, ok := t.tokenID["<mask>"]; ok {
			t.attrs[id] |= attrLStrip
		}
	case strings.Contains(name, "phi-3") || strings.Contains(name, "phi3"):
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		if id, ok := t.tokenID["</s>"]; ok {
			t.attrs[id] |= attrRStrip
		}
		for _, text := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			if id, ok := t.tokenID[text]; ok {
				t.attrs[id] &^= attrRStrip
			}
		}
	case strings.Contains(name, "modern-bert"):
		if id, ok := t.tokenID["[MASK]"]; ok {
			t.attrs[id] |= attrLStrip
		}
	}

	switch {
	case t.spm:
		t.sp = newSPMModel(&t.v, t.tokenID)
	case v.Model == "bert":
		t.wpm = newWPMModel(&t.v, t.tokenID)
	default:
		t.bpe = newBPEModel(&t.v, t.tokenID, pre)
	}
	return t, nil
}

// fragment is a piece of the input after the special-token partition: raw text or one token.
type fragment struct {
	text  string
	token int32 // -1 for raw text
}

// partition splits text around special tokens (llama.cpp tokenizer_st_partition). CONTROL and
// UNKNOWN tokens are only matched when parseSpecial is set; USER_DEFINED tokens always are.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	frags := []fragment{{text: text, token: -1}}
	for _, id := range t.special {
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		tok := t.v.Tokens[id]
		var next []fragment
		for _, f := range frags {
			if f.token >= 0 || !strings.Contains(f.text, tok) {
				next = append(next, f)
				continue
			}
			rest := f.text
			for {
				i := strings.Index(rest, tok)
				if i < 0 {
					if rest != "" {
						next = append(next, fragment{text: rest, token: -1})
					}
					break
				}
				left := rest[:i]
				if a&attrLStrip != 0 {
					left = strings.TrimRight(left, cSpace)
				}
				if left != "" {
					next = append(next, fragment{text: left, token: -1})
				}
				next = append(next, fragment{token: id})
				rest = rest[i+len(tok):]
				if a&attrRStrip != 0 {
					rest = strings.TrimLeft(rest, cSpace)
				}
			}
		}
		frags = next
	}
	return frags
}

// cSpace is C's isspace set, which llama.cpp uses for LSTRIP/RSTRIP.
const cSpace = " \t\n\v\f\r"

type session struct {
	bpe bpeSession
	spm spmSession
}

// Encode tokenizes text like llama.cpp's llama_tokenize(text, add_special, parse_special):
// addSpecial adds BOS/EOS as the vocabulary asks, parseSpecial lets control tokens written in the
// text become those tokens. Invalid UTF-8 is tokenized as llama.cpp does (never an error).
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	var frags []fragment
	if text != "" {
		frags = t.partition(text, parseSpecial)
	}
	s, _ := t.pool.Get().(*session)
	if s == nil {
		s = new(session)
	}
	defer t.pool.Put(s)

	var out []int32
	// WordPiece always frames the text with BOS ([CLS]) and SEP when asked for special tokens.
	if addSpecial && t.v.BOS >= 0 && (t.v.AddBOS || t.wpm != nil) {
		out = append(out, t.v.BOS)
	}
	prevSpecial := true // SPM: a space is prefixed to the first fragment and after special tokens
	for _, f := range frags {
		if f.token >= 0 {
			out = append(out, f.token)
			prevSpecial = true
			continue
		}
		switch {
		case t.spm:
			escaped := s.spm.escapeText(f.text, t.v.AddSpacePrefix && prevSpecial)
			out = t.sp.encode(&s.spm, escaped, out)
			prevSpecial = false
		case t.wpm != nil:
			out = t.wpm.encode(f.text, out)
		default:
			out = t.bpe.encode(&s.bpe, f.text, out)
		}
	}
	switch {
	case t.wpm != nil:
		if addSpecial && t.v.SEP >= 0 {
			out = append(out, t.v.SEP)
		}
	case addSpecial && t.v.AddEOS:
		out = append(out, t.v.EOS)
	}
	return out
}

// Piece returns the bytes token id stands for, as llama.cpp's llama_token_to_piece with
// lstrip 0: what a streaming printer writes for it. Control and unknown tokens are empty unless
// special is set; out-of-range ids are empty.
func (t *Tokenizer) Piece(id int32, special bool) []byte {
	if id < 0 || int(id) >= len(t.attrs) {
		return nil
	}
	a := t.attrs[id]
	text := t.v.Tokens[id]
	switch {
	case a&(attrUnknown|attrControl) != 0 && !special:
		return nil
	case a&(attrUnknown|attrControl|attrUserDefined) != 0:
		return []byte(text)
	case a&attrNormal != 0:
		if t.spm || t.unescape || t.wpm != nil {
			return []byte(strings.ReplaceAll(text, "\u2581", " "))
		}
		return decodeBPEText(text)
	case a&attrByte != 0:
		return []byte{byteOfToken(text)}
	}
	return nil // UNUSED and UNDEFINED tokens print nothing
}

// decodeBPEText maps each code point of a byte-level BPE token back to its byte
// (llama_decode_text); a code point outside the map becomes "[UNK_BYTE_0x<hex><token>]".
func decodeBPEText(text string) []byte {
	var out, cp []byte
	for i := 0; i < len(text); {
		c, n := decodeOne(text, i)
		i += n
		if b, ok := runeToByte[c]; ok {
			out = append(out, b)
			continue
		}
		out = append(out, "[UNK_BYTE_0x"...)
		cp = appendCodepoint(cp[:0], c)
		for _, b := range cp {
			out = fmt.Appendf(out, "%02x", b)
		}
		out = append(out, text...)
		out = append(out, ']')
	}
	return out
}

// byteOfToken parses the HH of a "<0xHH>" byte token (llama.cpp token_to_byte: strtol of
// characters 3–4, so malformed text yields the value of its leading hex digits, or 0).
func byteOfToken(text string) byte {
	if len(text) < 4 {
		return 0
	}
	var v byte
	for _, c := range []byte(text[3:min(5, len(text))]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return v
		}
	}
	return v
}

// Decode turns ids back into text like llama.cpp's llama_detokenize: removeSpecial drops a
// leading BOS and trailing EOS that the vocabulary adds itself, unparseSpecial renders control
// tokens as their text. SPM output loses the one leading space the tokenizer prefixed (unless a
// BOS was removed), and byte-level BPE output gets llama.cpp's clean-up of spaces before
// punctuation and contractions.
func (t *Tokenizer) Decode(ids []int32, removeSpecial, unparseSpecial bool) string {
	removeSpace := t.v.AddSpacePrefix
	if removeSpecial && t.v.AddBOS && len(ids) > 0 && ids[0] == t.v.BOS {
		removeSpace = false
		ids = ids[1:]
	}
	if removeSpecial && t.v.AddEOS && len(ids) > 0 && ids[len(ids)-1] == t.v.EOS {
		ids = ids[:len(ids)-1]
	}
	var text []byte
	for i, id := range ids {
		p := t.Piece(id, unparseSpecial)
		if i == 0 && removeSpace && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		text = append(text, p...)
	}
	if t.clean {
		text = cleanSpaces(text)
	}
	return string(text)
}

// cleanSpaces is llama_detokenize's clean_spaces post-processing, three byte passes: drop the
// space before ? ! . ,; turn " ' " into "'"; drop the space before 's 'm 're 've.
func cleanSpaces(text []byte) []byte {
	if len(text) == 0 {
		return text
	}
	out := text[:1]
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			out = out[:len(out)-1]
		}
		out = append(out, x)
	}
	text = out
	out = text[:1]
	for i := 1; i < len(text); i++ {
		x := text[i]
		if x == '\'' && i+1 < len(text) && text[i-1] == ' ' && text[i+1] == ' ' {
			out = out[:len(out)-1]
			text[i+1] = 0 // llama.cpp overwrites the next space with NUL and then skips it
			i++
		}
		out = append(out, x)
	}
	text = out
	out = text[:1]
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < len(text) {
			x1 := text[i+1]
			if x1 == 's' || x1 == 'm' || i+2 < len(text) && (x1 == 'r' || x1 == 'v') && text[i+2] == 'e' {
				out = out[:len(out)-1]
			}
		}
		out = append(out, x)
	}
	return out
}

// BOS is the beginning-of-sequence token, or -1.
func (t *Tokenizer) BOS() int32 { return t.v.BOS }

// EOS is the end-of-sequence token, or -1.
func (t *Tokenizer) EOS() int32 { return t.v.EOS }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.v.AddBOS }

// IsEOG reports whether id ends generation, as llama.cpp's llama_vocab_is_eog: EOS, EOT, EOM,
// FIM pad/repo/separator and tokens with an end-of-turn text (see EOG).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// EOG lists the end-of-generation tokens in increasing order.
func (t *Tokenizer) EOG() []int32 {
	ids := make([]int32, 0, len(t.eog))
	for id := range t.eog {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// EOT is the end-of-turn token (tokenizer.ggml.eot_token_id or found by its text), or -1.
func (t *Tokenizer) EOT() int32 { return t.v.EOT }

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.v.Tokens) }

// Token is the stored text of token id ("" when out of range).
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.v.Tokens) {
		return ""
	}
	return t.v.Tokens[id]
}
