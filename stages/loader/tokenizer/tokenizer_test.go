package tokenizer

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/lilims/lilims/stages/loader/gguf"
)

// piecesOf runs the pre-tokenizer named pre over s and returns the pieces as strings.
func piecesOf(t *testing.T, pre, s string) []string {
	t.Helper()
	p, err := lookupPre(pre)
	if err != nil {
		t.Fatal(err)
	}
	var text runeText
	var scratch [2][]int
	var out []string
	lo := 0
	for _, n := range p.pieces(&text, s, &scratch) {
		out = append(out, string(text.cps[lo:lo+n]))
		lo += n
	}
	return out
}

// TestPreTokenizers checks the splitters against what the expressions they run match in
// llama.cpp (pattern semantics quoted in each case).
func TestPreTokenizers(t *testing.T) {
	tests := []struct {
		name string
		pre  string
		in   string
		want []string
	}{
		{"gpt2 words", "gpt-2", "Hello world", []string{"Hello", " world"}},
		// \s+(?!\S) leaves the last space of a run to ' ?\p{L}+'.
		{"gpt2 space run", "gpt-2", "a   b", []string{"a", "  ", " b"}},
		// A run at the end of the piece is taken whole; a tab is not ' ', so it stands alone.
		{"gpt2 trailing", "gpt-2", "a \t\n", []string{"a", " \t\n"}},
		{"gpt2 tab before word", "gpt-2", "\t\tb", []string{"\t", "\t", "b"}},
		// Contractions are case-sensitive in GPT-2.
		{"gpt2 contraction", "gpt-2", "I'm I'M", []string{"I", "'m", " I", "'", "M"}},
		{"gpt2 numbers", "gpt-2", "x 12345", []string{"x", " 12345"}},
		{"gpt2 symbols", "gpt-2", "a ?!b", []string{"a", " ?!", "b"}},
		{"llama3 contraction", "llama-bpe", "I'M", []string{"I", "'M"}},
		// \p{N}{1,3} groups digits by three from the left.
		{"llama3 digits", "llama-bpe", "12345", []string{"123", "45"}},
		// [^\r\n\p{L}\p{N}]?\p{L}+ takes one leading non-letter.
		{"llama3 prefix", "llama-bpe", "(hello\tworld", []string{"(hello", "\tworld"}},
		// \s*[\r\n]+ ends at the last newline of the run.
		{"llama3 newlines", "llama-bpe", "a\n\n b", []string{"a", "\n\n", " b"}},
		{"llama3 symbols newline", "llama-bpe", "a ...\n\nb", []string{"a", " ...\n\n", "b"}},
		// Qwen2 splits digits one at a time (\p{N}).
		{"qwen2 digits", "qwen2", "x 123", []string{"x", " ", "1", "2", "3"}},
		// Qwen3.5 keeps combining marks with letters: [\p{L}\p{M}]+.
		{"qwen35 marks", "qwen35", "a\u0301b \u0301x", []string{"a\u0301b", " \u0301x"}},
		// DEFAULT: punctuation runs first, then GPT-2, then \p{N}+, then [0-9]{3}.
		{"default", "default", "a,b 123456", []string{"a", ",", "b", " ", "123", "456"}},
		{"default backtick", "default", "a`b", []string{"a", "`", "b"}},
		// Starcoder: \p{N} isolates every digit before GPT-2's expression runs.
		{"starcoder digits", "starcoder", "x12 y", []string{"x", "1", "2", " y"}},
		// Falcon: [0-9][0-9][0-9] cuts triples from the left, out of GPT-2's " 12345".
		{"falcon digits", "falcon", "a 12345", []string{"a", " ", "123", "45"}},
		// Kimi-K2: Han runs stand alone; letters take an optional contraction.
		{"kimi han", "kimi-k2", "你好abc's 1234", []string{"你好", "abc's", " ", "123", "4"}},
		// AFMoE's digit splitter glues the text before a run to its first group.
		{"afmoe digits", "afmoe", "ab1234", []string{"ab", "1", "234"}},
		// Gemma 4: only newline runs split (spaces are U+2581 by then).
		{"gemma4", "gemma4", "a b\n\nc", []string{"a b", "\n\n", "c"}},
		// SuperBPE: (?=(\d{3})+(?!\d)) matches empty strings before each group of three.
		{"superbpe", "superbpe", "x1234567", []string{"x", "1", "", "234", "", "567"}},
		// Poro/BLOOM: ' ?[^(\s|.,!?…。，、।۔،)]+' and the gaps between (" (" is one gap).
		{"bloom", "bloom", "Hi, you (x)", []string{"Hi", ",", " you", " (", "x", ")"}},
		// Tekken: an upper-case run followed by lower-case letters splits before a new capital.
		{"tekken case", "tekken", "HelloWorld", []string{"Hello", "World"}},
		// GPT-4o: the same, with contractions attached and \p{N}{1,3}.
		{"gpt4o", "gpt-4o", "They're 12345", []string{"They're", " ", "123", "45"}},
		// DeepSeek-LLM: \s+$ takes trailing whitespace whole.
		{"deepseek-llm", "deepseek-llm", "Hi there  ", []string{"Hi", " there", "  "}},
	}
	for _, tc := range tests {
		if got := piecesOf(t, tc.pre, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: pieces of %q = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

// TestPreTokenizerLongRuns feeds megabyte runs to the expressions that repeat groups: they must
// cover the text without exhausting the stack (std::regex in llama.cpp does not survive these).
func TestPreTokenizerLongRuns(t *testing.T) {
	for _, tc := range []struct{ pre, text string }{
		{"exaone-moe", strings.Repeat("a", 1<<20)},
		{"superbpe", strings.Repeat("1", 1<<20)},
		{"tekken", strings.Repeat("A", 1<<20)},
	} {
		p, err := lookupPre(tc.pre)
		if err != nil {
			t.Fatal(err)
		}
		var text runeText
		var scratch [2][]int
		sum := 0
		for _, n := range p.pieces(&text, tc.text, &scratch) {
			sum += n
		}
		if sum != len(tc.text) {
			t.Errorf("%s: pieces cover %d of %d code points", tc.pre, sum, len(tc.text))
		}
	}
}

// TestPreTokenizerTable checks that every tokenizer.ggml.pre value llama.cpp maps compiles, and
// that an unknown one is refused with the known ones listed.
func TestPreTokenizerTable(t *testing.T) {
	for _, name := range KnownPreTokenizers() {
		if _, err := lookupPre(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, ok := preTypeRegexes[preNames[name].typ]; !ok {
			t.Errorf("%s: type %q has no expressions", name, preNames[name].typ)
		}
	}
	_, err := lookupPre("no-such-pre")
	if err == nil || !strings.Contains(err.Error(), `"no-such-pre"`) || !strings.Contains(err.Error(), "deepseek-v3") {
		t.Errorf("unknown pre: %v", err)
	}
}

// byteVocab returns the 256 mapped single-byte tokens of a byte-level BPE vocabulary.
func byteVocab() []string {
	var toks []string
	for b := 0; b < 256; b++ {
		toks = append(toks, string(byteToRune[b]))
	}
	return toks
}

func TestBPEMergeOrder(t *testing.T) {
	toks := append(byteVocab(), "ab", "bc", "Ġx", "<|end|>")
	ab, bc, gx, end := int32(256), int32(257), int32(258), int32(259)
	types := make([]int32, len(toks))
	for i := range types {
		types[i] = TypeNormal
	}
	types[end] = TypeNormal // forced to CONTROL by its text
	v := &Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: toks, Types: types,
		// "b c" has the lower rank, so "abc" merges b+c first even though a+b is leftmost.
		Merges: []string{"b c", "a b", "Ġ x"},
		BOS:    -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1}
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in           string
		parseSpecial bool
		want         []int32
	}{
		{"abc", false, []int32{'a', bc}},
		{"abab", false, []int32{ab, ab}},
		{" x", false, []int32{gx}},
		{"<|end|>", true, []int32{end}},
		{"<|end|>", false, []int32{'<', '|', 'e', 'n', 'd', '|', '>'}},
	}
	for _, tc := range tests {
		if got := tok.Encode(tc.in, false, tc.parseSpecial); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, parse_special=%v) = %v, want %v", tc.in, tc.parseSpecial, got, tc.want)
		}
	}
	if !tok.IsEOG(end) {
		t.Errorf("<|end|> is not end-of-generation")
	}
	if p := tok.Piece(end, false); len(p) != 0 {
		t.Errorf("Piece(<|end|>, false) = %q, want empty (forced CONTROL)", p)
	}
	if p := tok.Piece(gx, false); string(p) != " x" {
		t.Errorf("Piece(Ġx) = %q, want \" x\"", p)
	}
}

// TestBPEDropsUnknownBytes: a symbol that is not a token is replaced by the tokens of its bytes,
// and bytes that are not tokens are silently dropped (llama.cpp's BPE session does this).
func TestBPEDropsUnknownBytes(t *testing.T) {
	toks := []string{"a", "b"}
	tok, err := New(&Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: toks, BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("azb", false, false); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Encode(azb) = %v, want [0 1]", got)
	}
}

func TestSPM(t *testing.T) {
	toks := []string{"<unk>", "<s>", "</s>", "<0xC3>", "<0xA9>", "▁", "a", "b", "▁a", "ab", "▁ab"}
	types := []int32{TypeUnknown, TypeControl, TypeControl, TypeByte, TypeByte, 1, 1, 1, 1, 1, 1}
	// Scores decide the merge order: "ab" (-1) beats "▁a" (-2), so " ab" becomes ▁ + ab, and the
	// pair (▁, ab) then forms "▁ab".
	scores := []float32{0, 0, 0, 0, 0, -5, -5, -5, -2, -1, -3}
	v := &Vocab{Model: "llama", Tokens: toks, Types: types, Scores: scores,
		BOS: 1, EOS: 2, UNK: 0, EOT: -1, EOM: -1, PAD: -1, SEP: -1, AddBOS: true, AddSpacePrefix: true}
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in        string
		addSpec   bool
		parseSpec bool
		want      []int32
	}{
		{"ab", false, false, []int32{10}},
		{"ab", true, false, []int32{1, 10}},
		{"b a", false, false, []int32{5, 7, 8}},
		// é is not a token: byte fallback to <0xC3><0xA9>.
		{"é", false, false, []int32{5, 3, 4}},
		// A space is prefixed again after a special token.
		{"a<s>a", false, true, []int32{8, 1, 8}},
	}
	for _, tc := range tests {
		if got := tok.Encode(tc.in, tc.addSpec, tc.parseSpec); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", tc.in, tc.addSpec, tc.parseSpec, got, tc.want)
		}
	}
	// llama_detokenize strips one space from the first token's piece only; a leading BOS (kept,
	// printed or not, or removed by remove_special) means no space is stripped.
	for _, tc := range []struct {
		addSpecial, removeSpecial, unparse bool
		want                               string
	}{
		{false, false, false, "ab é"},
		{true, false, false, " ab é"},
		{true, true, false, " ab é"},
		{true, false, true, "<s> ab é"},
	} {
		ids := tok.Encode("ab é", tc.addSpecial, false)
		if got := tok.Decode(ids, tc.removeSpecial, tc.unparse); got != tc.want {
			t.Errorf("Decode(%v, %v, %v) = %q, want %q", ids, tc.removeSpecial, tc.unparse, got, tc.want)
		}
	}
}

func TestCleanSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"a ? b !":      "a? b!",
		"it ' s":       "it's",
		"he 's she 'm": "he's she'm",
		"we 're 've":   "we're've",
		"I 'd I 'll":   "I 'd I 'll",
		" .":           ".",
		"":             "",
	} {
		if got := string(cleanSpaces([]byte(in))); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	base := func() *Vocab {
		return &Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: []string{"a", "b"}, BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1}
	}
	tests := []struct {
		name   string
		modify func(v *Vocab)
		want   string
	}{
		{"unknown pre", func(v *Vocab) { v.Pre = "klingon-7b" }, `"klingon-7b"; known: a.x-4.0, afmoe,`},
		{"unknown model", func(v *Vocab) { v.Model = "t5" }, `tokenizer.ggml.model "t5"`},
		{"duplicate", func(v *Vocab) { v.Tokens = []string{"a", "a"} }, `duplicate token "a"`},
		{"short scores", func(v *Vocab) { v.Scores = []float32{0} }, "tokenizer.ggml.scores"},
		{"short types", func(v *Vocab) { v.Types = []int32{1} }, "tokenizer.ggml.token_type"},
		{"add bos without bos", func(v *Vocab) { v.AddBOS = true }, "bos_token_id"},
		{"empty", func(v *Vocab) { v.Tokens = nil }, "tokenizer.ggml.tokens"},
	}
	for _, tc := range tests {
		v := base()
		tc.modify(v)
		_, err := New(v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %s", tc.name, err, tc.want)
		}
	}
}

// TestEOGRules checks llama.cpp's end-of-generation rules on small vocabularies
// (src/llama-vocab.cpp): texts found, FIM pad/repo/separator, and the two workarounds that take
// <|end|> (gpt-oss, solar-open) and </s> (Gemma 4) out again.
func TestEOGRules(t *testing.T) {
	tests := []struct {
		name   string
		tokens []string
		fim    *FIMTokens
		eog    []int32
		eot    int32
		user   []int32 // USER_DEFINED afterwards: matched even without parse_special
	}{
		// The first text of llama.cpp's list is EOT; every listed text ends generation.
		{"texts", []string{"a", "<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|fim_prefix|>"},
			nil, []int32{1, 2, 3, 4, 5}, 2, nil},
		// A FIM pad id from the metadata wins over the texts.
		{"fim key", []string{"a", "<PAD>", "<|fim_pad|>"}, &FIMTokens{-1, -1, -1, 2, -1, -1}, []int32{2}, -1, nil},
		// gpt-oss: <|end|> ends a message, not generation, and is always rendered.
		{"harmony", []string{"a", "<|return|>", "<|call|>", "<|end|>", "<|channel|>"}, nil, []int32{1, 2}, 3, []int32{3, 4}},
		// Gemma 4: </s> is an ordinary token next to <|tool_response>.
		{"gemma4", []string{"a", "</s>", "<|tool_response>", "<turn|>"}, nil, []int32{2, 3}, -1, nil},
	}
	for _, tc := range tests {
		v := &Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: tc.tokens, FIM: tc.fim,
			BOS: -1, EOS: -1, UNK: -1, EOT: -1, EOM: -1, PAD: -1, SEP: -1}
		tok, err := New(v)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tok.EOG(), tc.eog) || tok.EOT() != tc.eot {
			t.Errorf("%s: eog %v eot %d, want %v %d", tc.name, tok.EOG(), tok.EOT(), tc.eog, tc.eot)
		}
		for _, id := range tc.user {
			if tok.attrs[id] != attrUserDefined {
				t.Errorf("%s: %q has attributes %b, want USER_DEFINED", tc.name, tc.tokens[id], tok.attrs[id])
			}
		}
	}
}

func TestVocabFromGGUFErrors(t *testing.T) {
	tests := []struct {
		name string
		kvs  map[string]any
		want string
	}{
		{"no model", map[string]any{"tokenizer.ggml.tokens": []string{"a"}}, "tokenizer.ggml.model"},
		{"no tokens", map[string]any{"tokenizer.ggml.model": "llama"}, "tokenizer.ggml.tokens"},
		{"tokens wrong type", map[string]any{"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": "a"}, "tokenizer.ggml.tokens"},
		{"no merges", map[string]any{"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": []string{"a"}}, "tokenizer.ggml.merges"},
		{"bad bos", map[string]any{"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": []string{"a"}, "tokenizer.ggml.bos_token_id": "x"}, "tokenizer.ggml.bos_token_id"},
		{"short types", map[string]any{"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": []string{"a", "b"}, "tokenizer.ggml.token_type": []int32{1}}, "tokenizer.ggml.token_type"},
	}
	for _, tc := range tests {
		b := gguf.NewBuilder()
		for k, v := range tc.kvs {
			b.Set(k, v)
		}
		var buf bytes.Buffer
		if _, err := b.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		// The reader itself rejects some well-known keys of the wrong type; either way the
		// error must name the key.
		f, err := gguf.Parse(tc.name, buf.Bytes())
		if err == nil {
			_, err = VocabFromGGUF(f)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to name %s", tc.name, err, tc.want)
		}
	}
}

// TestVocabDefaults checks llama.cpp's defaults and overrides on the fixtures: stories260K has
// no tokenizer.ggml.pre and seperator/padding ids 0xFFFFFFFF (out of range, so ignored).
func TestVocabDefaults(t *testing.T) {
	tests := []struct {
		file          string
		bos, eos, eot int32 // eot: metadata, else the first end-of-turn text in llama.cpp's list
		addBOS        bool
		eog           []int32
	}{
		{"vocab/ggml-vocab-gpt-2.gguf", 50256, 50256, 50256, false, []int32{50256}},
		// llama-bpe: add_bos from the pre-tokenizer; <|eot_id|> (128009) ends generation too.
		{"vocab/ggml-vocab-llama-bpe.gguf", 128000, 128001, 128009, true, []int32{128001, 128009}},
		{"vocab/ggml-vocab-qwen2.gguf", 151643, 151643, 151645, false, []int32{151643, 151645}},
		{"vocab/ggml-vocab-llama-spm.gguf", 1, 2, -1, true, []int32{2}},
		// phi-3: eos 32000 <|endoftext|>; <|end|> (32007) is an end-of-turn text.
		{"vocab/ggml-vocab-phi-3.gguf", 1, 32000, 32007, true, []int32{32000, 32007}},
		{"models/stories260K.gguf", 1, 2, -1, true, []int32{2}},
	}
	for _, tc := range tests {
		tok := loadGGUF(t, filepath.Join(oracleDir, tc.file))
		if tok.BOS() != tc.bos || tok.EOS() != tc.eos || tok.v.EOT != tc.eot || tok.AddBOS() != tc.addBOS {
			t.Errorf("%s: bos %d eos %d eot %d add_bos %v, want %d %d %d %v", tc.file,
				tok.BOS(), tok.EOS(), tok.v.EOT, tok.AddBOS(), tc.bos, tc.eos, tc.eot, tc.addBOS)
		}
		for _, id := range tc.eog {
			if !tok.IsEOG(id) {
				t.Errorf("%s: IsEOG(%d %q) = false", tc.file, id, tok.Token(id))
			}
		}
		if tok.BOS() != tok.EOS() && tok.IsEOG(tok.BOS()) {
			t.Errorf("%s: BOS is end-of-generation", tc.file)
		}
	}
}

// TestSpecialParsing uses the real vocabularies: control tokens are parsed only with
// parse_special, and add_special adds BOS where the vocabulary asks.
func TestSpecialParsing(t *testing.T) {
	gpt2 := loadGGUF(t, filepath.Join(oracleDir, "vocab/ggml-vocab-gpt-2.gguf"))
	got := gpt2.Encode("a<|endoftext|>b", false, true)
	want := slices.Concat(gpt2.Encode("a", false, false), []int32{50256}, gpt2.Encode("b", false, false))
	if !slices.Equal(got, want) {
		t.Errorf("gpt-2 parse_special: %v, want %v", got, want)
	}
	if got := gpt2.Encode("a<|endoftext|>b", true, false); slices.Contains(got, 50256) {
		t.Errorf("gpt-2 without parse_special produced <|endoftext|>: %v", got)
	}
	if p := string(gpt2.Piece(50256, true)); p != "<|endoftext|>" {
		t.Errorf("Piece(50256, true) = %q", p)
	}

	spm := loadGGUF(t, filepath.Join(oracleDir, "vocab/ggml-vocab-llama-spm.gguf"))
	// After a special token the next fragment gets the space prefix again, as at the start.
	got = spm.Encode("Hello</s>Hello", true, true)
	hello := spm.Encode("Hello", false, false)
	want = slices.Concat([]int32{1}, hello, []int32{2}, hello)
	if !slices.Equal(got, want) {
		t.Errorf("llama-spm parse_special: %v, want %v", got, want)
	}
	// Streaming pieces keep the leading space; so does Decode when the first token is BOS.
	ids := spm.Encode("Hello world", true, false)
	var stream []byte
	for _, id := range ids {
		stream = append(stream, spm.Piece(id, false)...)
	}
	if string(stream) != " Hello world" {
		t.Errorf("streamed pieces %q, want %q", stream, " Hello world")
	}
	for _, tc := range []struct {
		removeSpecial, unparse bool
		want                   string
	}{{false, false, " Hello world"}, {true, false, " Hello world"}, {false, true, "<s> Hello world"}} {
		if got := spm.Decode(ids, tc.removeSpecial, tc.unparse); got != tc.want {
			t.Errorf("llama-spm Decode(remove=%v, unparse=%v) = %q, want %q", tc.removeSpecial, tc.unparse, got, tc.want)
		}
	}
}

// TestRoundTrip decodes the encoding of every test string. llama.cpp's detokenizer returns the
// input exactly except where clean_spaces (gpt-2 and llama-bpe; not qwen2 or SPM) removes a
// space before punctuation: in this set, string 32 and 45 contain "😁 ?", which comes back as "😁?".
// WordPiece is lossy (lower case, no accents, a space before each word): TestWordPieceDecode.
func TestRoundTrip(t *testing.T) {
	for _, name := range vocabNames {
		if name == "bert-bge" {
			continue
		}
		base := filepath.Join(oracleDir, "vocab", "ggml-vocab-"+name+".gguf")
		tok := loadGGUF(t, base)
		texts, _ := readVocabTests(t, base)
		cleaned := 0
		for i, s := range texts {
			got := tok.Decode(tok.Encode(s, false, false), false, false)
			switch {
			case got == s:
			case tok.clean && got == string(cleanSpaces([]byte(s))):
				cleaned++
			default:
				t.Errorf("%s string %d: Decode(Encode(%q)) = %q", name, i, s, got)
			}
		}
		want := 0
		if tok.clean {
			want = 2
		}
		if cleaned != want {
			t.Errorf("%s: %d strings changed by clean_spaces, want %d", name, cleaned, want)
		}
	}
}

// TestWordPieceDecode checks BERT's tokens and text against llama.cpp's, recorded through
// node-llama-cpp 3.21.1 (model.tokenize, model.detokenize with and without special tokens).
func TestWordPieceDecode(t *testing.T) {
	tok := loadGGUF(t, filepath.Join(oracleDir, "vocab/ggml-vocab-bert-bge.gguf"))
	for _, tc := range []struct {
		in             string
		ids            []int32
		plain, special string
	}{
		{"Hello, world!", []int32{7592, 1010, 2088, 999}, " hello, world!", " hello, world!"},
		{" this is 🦙.cpp", []int32{2023, 2003, 100, 1012, 18133, 2361}, " this is. cpp", " this is[UNK]. cpp"},
		{"Äpfel it's", []int32{9706, 7959, 2140, 2009, 1005, 1055}, " apfel it's", " apfel it's"},
	} {
		ids := tok.Encode(tc.in, false, false)
		if !slices.Equal(ids, tc.ids) {
			t.Errorf("Encode(%q) = %v, llama.cpp %v", tc.in, ids, tc.ids)
		}
		if got := tok.Decode(ids, false, false); got != tc.plain {
			t.Errorf("Decode(%v) = %q, llama.cpp %q", ids, got, tc.plain)
		}
		if got := tok.Decode(ids, false, true); got != tc.special {
			t.Errorf("Decode(%v, unparse) = %q, llama.cpp %q", ids, got, tc.special)
		}
	}
	// With special tokens: [CLS] … [SEP].
	if got := tok.Encode("Hello", true, false); !slices.Equal(got, []int32{101, 7592, 102}) {
		t.Errorf("Encode(Hello, add_special) = %v, want [101 7592 102]", got)
	}
}

func TestInvalidInput(t *testing.T) {
	gpt2 := loadGGUF(t, filepath.Join(oracleDir, "vocab/ggml-vocab-gpt-2.gguf"))
	// llama.cpp decodes each invalid byte as U+FFFD before byte-level BPE.
	if got, want := gpt2.Encode("a\xff\xfeb", false, false), gpt2.Encode("a\uFFFD\uFFFDb", false, false); !slices.Equal(got, want) {
		t.Errorf("invalid UTF-8: %v, want %v", got, want)
	}
	spm := loadGGUF(t, filepath.Join(oracleDir, "vocab/ggml-vocab-llama-spm.gguf"))
	// SPM works on bytes: a lone 0xFF falls back to <0xFF>, id 3+0xFF = 258 in Llama-2's vocab.
	if got := spm.Encode("\xff", false, false); len(got) != 2 || spm.Token(got[0]) != "▁" || got[1] != 258 {
		t.Errorf("SPM invalid byte: %v, want [▁ 258]", got)
	}
	for _, tok := range []*Tokenizer{gpt2, spm} {
		if p := tok.Piece(-1, true); p != nil {
			t.Errorf("Piece(-1) = %q", p)
		}
		if s := tok.Decode([]int32{-5, int32(tok.VocabSize())}, false, true); s != "" {
			t.Errorf("Decode(out of range) = %q", s)
		}
		if tok.Token(int32(tok.VocabSize())) != "" {
			t.Errorf("Token(out of range) not empty")
		}
	}
}

var (
	fuzzOnce sync.Once
	fuzzToks map[string]*Tokenizer
	fuzzPres []preTokenizer
)

// FuzzEncodeDecode feeds arbitrary bytes to every pre-tokenizer type and every tokenizer: nothing
// may panic, the pieces must cover the text, every id must be in range, and where llama.cpp's
// detokenizer is lossless the text must round-trip: SPM and qwen2
// (no clean_spaces) for valid UTF-8 (SPM also without '▁'). Invalid UTF-8 does not round-trip in
// llama.cpp either: SPM cuts symbols by the lead byte's announced length, so "\xf1 " swallows part
// of the escaped space, and BPE replaces invalid bytes by U+FFFD.
func FuzzEncodeDecode(f *testing.F) {
	for _, name := range vocabNames {
		texts, _ := readVocabTests(f, filepath.Join(oracleDir, "vocab", "ggml-vocab-"+name+".gguf"))
		for _, s := range texts {
			f.Add(s)
		}
	}
	f.Add("\xff\xc3(\xe2\x82\xed\xa0\x80<|endoftext|><s>[PAD151646]")
	fuzzOnce.Do(func() {
		fuzzToks = map[string]*Tokenizer{}
		for _, name := range vocabNames {
			fuzzToks[name] = loadGGUF(f, filepath.Join(oracleDir, "vocab", "ggml-vocab-"+name+".gguf"))
		}
		seen := map[string]bool{}
		for _, name := range KnownPreTokenizers() {
			if typ := preNames[name].typ; !seen[typ] {
				seen[typ] = true
				p, _ := lookupPre(name)
				fuzzPres = append(fuzzPres, p)
			}
		}
	})
	f.Fuzz(func(t *testing.T, s string) {
		// Every pre-tokenizer type cuts the whole text into pieces, without a panic.
		var text runeText
		var scratch [2][]int
		for _, p := range fuzzPres {
			sum := 0
			for _, n := range p.pieces(&text, s, &scratch) {
				sum += n
			}
			if sum != len(text.cps) {
				t.Fatalf("%s: pieces of %q cover %d of %d code points", p.name, s, sum, len(text.cps))
			}
		}
		for name, tok := range fuzzToks {
			for _, parse := range []bool{false, true} {
				ids := tok.Encode(s, true, parse)
				for _, id := range ids {
					if id < 0 || int(id) >= tok.VocabSize() {
						t.Fatalf("%s: id %d out of range", name, id)
					}
				}
				tok.Decode(ids, true, true)
			}
			plain := tok.Decode(tok.Encode(s, false, false), false, false)
			switch {
			case name == "llama-spm" && utf8.ValidString(s) && !strings.Contains(s, "▁"),
				name == "qwen2" && utf8.ValidString(s):
				if plain != s {
					t.Errorf("%s: Decode(Encode(%q)) = %q", name, s, plain)
				}
			}
		}
	})
}

// benchText is little-stories.txt repeated to about 1 MB.
func benchText(b *testing.B) string {
	raw, err := os.ReadFile(filepath.Join(oracleDir, "eval", "little-stories.txt"))
	if err != nil {
		b.Fatal(err)
	}
	return strings.Repeat(string(raw), 1<<20/len(raw)+1)
}

func benchEncode(b *testing.B, vocab, text string) {
	tok := loadGGUF(b, filepath.Join(oracleDir, "vocab", "ggml-vocab-"+vocab+".gguf"))
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.Encode(text, false, false)
	}
}

func BenchmarkEncodeGPT2Stories(b *testing.B) { benchEncode(b, "gpt-2", benchText(b)) }

func BenchmarkEncodeGPT2TestSet(b *testing.B) {
	texts, _ := readVocabTests(b, filepath.Join(oracleDir, "vocab", "ggml-vocab-gpt-2.gguf"))
	joined := strings.Join(texts, "\n")
	benchEncode(b, "gpt-2", strings.Repeat(joined, 1<<20/len(joined)+1))
}

func BenchmarkEncodeLlamaSPMStories(b *testing.B) { benchEncode(b, "llama-spm", benchText(b)) }
