package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Pre-tokenizers split a raw text fragment into pieces before BPE runs on each piece. llama.cpp
// describes each one as a list of regular expressions applied in sequence (src/llama-vocab.cpp,
// llm_tokenizer_bpe): every expression splits each piece left by the previous one, and both its
// matches and the gaps between them become pieces. preTypeRegexes holds those lists verbatim;
// an expression runs through a hand-written splitter where llama.cpp has one (split.go) and
// through the small std::regex-compatible engine of regex.go otherwise.

// The expressions llama.cpp recognises by their text and runs through hand-written code
// (src/unicode.cpp, unicode_regex_split_custom).
const (
	reGPT2        = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
	reLlama3      = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reQwen2       = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reQwen35      = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	reKimiK2      = `\p{Han}+`
	reAFMoEDigits = `\p{AFMoE_digits}`
	reNewlines    = `[^\n]+|[\n]+`
	reDigitGroups = `\d{1,3}(?=(?:\d{3})*\b)`
	// llama.cpp has no splitter for this one; see matchTripleBoundaries.
	reTripleBoundaries = `(?=(\d{3})+(?!\d))`
)

var customSplitters = map[string]pieceMatcher{
	reGPT2:        matchGPT2,
	reLlama3:      matchLlama3(3, false),
	reQwen2:       matchLlama3(1, false),
	reQwen35:      matchLlama3(1, true),
	reKimiK2:      matchKimiK2,
	reAFMoEDigits: matchDigitGroups,
	reNewlines:    matchNewlines,
	reDigitGroups: matchDigitGroups,

	reTripleBoundaries: matchTripleBoundaries,
}

// preTypeRegexes maps llama.cpp's pre-tokenizer types (LLAMA_VOCAB_PRE_TYPE_*, named here in
// lower case) to their expressions, in llm_tokenizer_bpe's order. Types that share a list share
// an entry.
var preTypeRegexes = map[string][]string{
	// LLAMA3
	"llama3": {
		reLlama3,
	},
	// JAIS2
	"jais2": {
		`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}`,
	},
	// DBRX, SMAUG
	"dbrx": {
		reLlama3,
	},
	// DEEPSEEK_LLM
	"deepseek-llm": {
		"[\r\n]",
		`\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+`,
		`\s?[!-/:-~！-／：-～‘-‟　-。]+`,
		`\s+$`,
		`[一-龥ࠀ-一가-퟿]+`,
		`\p{N}+`,
	},
	// DEEPSEEK3_LLM, HUNYUAN_DENSE, JOYAI_LLM
	"deepseek3-llm": {
		`\p{N}{1,3}`,
		`[一-龥぀-ゟ゠-ヿ]+`,
		"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
	},
	// YOUTU
	"youtu": {
		`[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+`,
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// DEEPSEEK_CODER
	"deepseek-coder": {
		"[\r\n]",
		`\s?\p{L}+`,
		`\s?\p{P}+`,
		`[一-龥ࠀ-一가-퟿]+`,
		`\p{N}`,
	},
	// FALCON
	"falcon": {
		"[\\p{P}\\$\\+<=>\\^~\\|`]+",
		reGPT2,
		`[0-9][0-9][0-9]`,
	},
	// STARCODER, REFACT, COMMAND_R, SMOLLM, CODESHELL, EXAONE, MINERVA, MELLUM2
	"starcoder": {
		`\p{N}`,
		reGPT2,
	},
	// GPT2, MPT, OLMO, JAIS, TRILLION, GRANITE_DOCLING
	"gpt2": {
		reGPT2,
	},
	// STABLELM2, QWEN2, HUNYUAN, SOLAR_OPEN
	"stablelm2": {
		reQwen2,
	},
	// QWEN35
	"qwen35": {
		reQwen35,
	},
	// PORO, BLOOM, GPT3_FINNISH
	"poro": {
		` ?[^(\s|.,!?…。，、।۔،)]+`,
	},
	// CHATGLM4
	"chatglm4": {
		reLlama3,
	},
	// VIKING
	"viking": {
		` ?[^(\s|.,!?…。，、।۔،)]+`,
		`\p{N}`,
	},
	// TEKKEN
	"tekken": {
		`[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// CHAMELEON
	"chameleon": {
		`<sentinel:[0-9]+>`,
		`(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z`,
		`([\t\n]|    |  )`,
		`\p{N}`,
		"[\\p{P}!-/:-@\\[-`{-~]",
		reGPT2,
	},
	// GPT4O, MINIMAX_M2
	"gpt4o": {
		`[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// GRANITE_EMB_MULTI
	"granite-emb-multi": {
		`[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// TINY_AYA
	"tiny-aya": {
		reDigitGroups,
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// KIMI_K2
	"kimi-k2": {
		reKimiK2,
	},
	// SUPERBPE
	"superbpe": {
		`\p{N}+`,
		reTripleBoundaries,
	},
	// BAILINGMOE
	"bailingmoe": {
		`'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`,
	},
	// SEED_CODER
	"seed-coder": {
		`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// GROK_2
	"grok-2": {
		reQwen2,
	},
	// AFMOE
	"afmoe": {
		reAFMoEDigits,
		`[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+`,
		"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
	},
	// LAGUNA
	"laguna": {
		reNewlines,
		reQwen2,
	},
	// EXAONE_MOE
	"exaone-moe": {
		`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+`,
	},
	// GEMMA4
	"gemma4": {
		reNewlines,
	},
	// SARVAM_MOE
	"sarvam-moe": {
		reNewlines,
	},
	// MINICPM5
	"minicpm5": {
		`\p{N}{1,3}`,
		`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	},
	// WHITESPACE
	"whitespace": {
		`\S+`,
	},
	// DEFAULT
	"default": {
		`[\p{P}\$\+<=>\^~\|]+`,
		reGPT2,
		`\p{N}+`,
		`[0-9][0-9][0-9]`,
	},
}

// preFlag is a load-time setting a tokenizer.ggml.pre value implies (llama_vocab::impl::load).
type preFlag uint8

const (
	keepSpaces   preFlag = 1 << iota // clean_spaces = false
	ignoreMerges                     // a piece that is a token is taken whole
	addBOS                           // add_bos defaults to true
	noBOS                            // no default BOS id (GLM-4)
	escapeSpaces                     // spaces become U+2581 before pre-tokenization (SPM-style BPE)
	rawUTF8                          // BPE over UTF-8 text, not GPT-2's byte-to-rune map
)

type preName struct {
	typ   string
	flags preFlag
}

// preNames maps every tokenizer.ggml.pre value llama.cpp accepts to its type and flags.
var preNames = map[string]preName{
	"default":                  {"default", 0},
	"minicpm5":                 {"minicpm5", ignoreMerges},
	"llama3":                   {"llama3", ignoreMerges | addBOS},
	"llama-v3":                 {"llama3", ignoreMerges | addBOS},
	"llama-bpe":                {"llama3", ignoreMerges | addBOS},
	"falcon3":                  {"llama3", ignoreMerges | addBOS},
	"falcon-h1":                {"llama3", ignoreMerges | addBOS},
	"pixtral":                  {"llama3", ignoreMerges | addBOS},
	"midm-2.0":                 {"llama3", ignoreMerges | addBOS},
	"lfm2":                     {"llama3", ignoreMerges | addBOS},
	"jina-v5-nano":             {"llama3", ignoreMerges | addBOS},
	"deepseek-llm":             {"deepseek-llm", keepSpaces},
	"deepseek-coder":           {"deepseek-coder", keepSpaces},
	"deepseek-v3":              {"deepseek3-llm", keepSpaces},
	"youtu":                    {"youtu", keepSpaces | ignoreMerges},
	"falcon":                   {"falcon", 0},
	"mpt":                      {"gpt2", 0},
	"starcoder":                {"starcoder", 0},
	"gpt-2":                    {"gpt2", 0},
	"phi-2":                    {"gpt2", 0},
	"jina-es":                  {"gpt2", 0},
	"jina-de":                  {"gpt2", 0},
	"gigachat":                 {"gpt2", 0},
	"jina-v2-es":               {"gpt2", 0},
	"jina-v2-de":               {"gpt2", 0},
	"a.x-4.0":                  {"gpt2", 0},
	"mellum":                   {"gpt2", 0},
	"modern-bert":              {"gpt2", 0},
	"jais-2":                   {"jais2", 0},
	"gemma4":                   {"gemma4", escapeSpaces | rawUTF8},
	"granite-embed-multi-311m": {"gemma4", escapeSpaces | rawUTF8},
	"sarvam-moe":               {"sarvam-moe", escapeSpaces | rawUTF8 | keepSpaces},
	"jina-v1-en":               {"gpt2", 0},
	"jina-v2-code":             {"gpt2", 0},
	"roberta-bpe":              {"gpt2", 0},
	"whitespace":               {"whitespace", rawUTF8},
	"refact":                   {"starcoder", 0},
	"command-r":                {"starcoder", keepSpaces},
	"qwen2":                    {"stablelm2", keepSpaces},
	"deepseek-r1-qwen":         {"stablelm2", keepSpaces},
	"kormo":                    {"stablelm2", keepSpaces},
	"f2llmv2":                  {"stablelm2", keepSpaces},
	"qwen35":                   {"qwen35", keepSpaces},
	"stablelm2":                {"stablelm2", 0},
	"olmo":                     {"gpt2", 0},
	"dbrx":                     {"dbrx", 0},
	"smaug-bpe":                {"dbrx", 0},
	"poro-chat":                {"poro", keepSpaces},
	"glm4":                     {"chatglm4", noBOS},
	"chatglm-bpe":              {"chatglm4", noBOS},
	"viking":                   {"viking", keepSpaces},
	"jais":                     {"gpt2", 0},
	"tekken":                   {"tekken", keepSpaces | ignoreMerges | addBOS},
	"smollm":                   {"starcoder", keepSpaces},
	"codeshell":                {"starcoder", 0},
	"bloom":                    {"poro", 0},
	"gpt3-finnish":             {"poro", 0},
	"exaone":                   {"starcoder", 0},
	"exaone4":                  {"gpt2", 0},
	"exaone-moe":               {"exaone-moe", 0},
	"chameleon":                {"chameleon", addBOS | keepSpaces},
	"minerva-7b":               {"starcoder", 0},
	"megrez":                   {"stablelm2", 0},
	"gpt-4o":                   {"gpt4o", keepSpaces},
	"llama4":                   {"gpt4o", keepSpaces},
	"kanana2":                  {"gpt4o", keepSpaces},
	"talkie":                   {"gpt4o", keepSpaces},
	"granite-embed-multi-97m":  {"granite-emb-multi", keepSpaces | ignoreMerges},
	"tiny_aya":                 {"tiny-aya", keepSpaces},
	"cohere2moe":               {"tiny-aya", keepSpaces},
	"superbpe":                 {"superbpe", keepSpaces},
	"trillion":                 {"gpt2", keepSpaces},
	"granite-docling":          {"gpt2", keepSpaces},
	"bailingmoe":               {"bailingmoe", keepSpaces},
	"bailingmoe2":              {"bailingmoe", keepSpaces},
	"llada-moe":                {"bailingmoe", keepSpaces},
	"seed-coder":               {"seed-coder", keepSpaces},
	"hunyuan":                  {"stablelm2", keepSpaces},
	"hunyuan-dense":            {"deepseek3-llm", keepSpaces},
	"joyai-llm":                {"deepseek3-llm", keepSpaces},
	"kimi-k2":                  {"kimi-k2", keepSpaces},
	"grok-2":                   {"grok-2", keepSpaces},
	"afmoe":                    {"afmoe", keepSpaces},
	"laguna":                   {"laguna", keepSpaces},
	"minimax-m2":               {"gpt4o", keepSpaces},
	"solar-open":               {"stablelm2", keepSpaces},
	"mellum2":                  {"starcoder", 0},
}

// preTokenizer is a compiled tokenizer.ggml.pre value.
type preTokenizer struct {
	name                                               string
	split                                              []splitter
	collapsed                                          bool // some expression runs on the category-collapsed text
	wide                                               bool // some expression runs on the code points
	cleanSpaces                                        bool // llama_detokenize's clean_spaces
	ignoreMerges, addBOS, noBOS, escapeSpaces, rawUTF8 bool
	newlineTokens                                      bool // Gemma 4: a piece of newlines that is a token is taken whole
}

// runeText is one raw fragment as the splitters see it: its code points, their classes, and
// the two transformed copies llama.cpp runs std::regex on (filled only when needed).
type runeText struct {
	cps             []rune
	cls             []uint8
	collapsed, wide []rune
}

// A splitter splits every piece of t (in holds the piece lengths, summing to len(t.cps)) and
// appends the new piece lengths to out. Pieces may be empty, as in llama.cpp.
type splitter func(t *runeText, in, out []int) []int

// pieces decodes text into t and runs the splitters over it, returning the piece lengths (which
// live in one of the two scratch slices).
func (p *preTokenizer) pieces(t *runeText, text string, scratch *[2][]int) []int {
	t.cps = decodeCodepoints(t.cps[:0], text)
	t.cls = t.cls[:0]
	for _, c := range t.cps {
		t.cls = append(t.cls, classOf(c))
	}
	if p.collapsed {
		t.collapsed = t.collapsed[:0]
		for i, c := range t.cps {
			t.collapsed = append(t.collapsed, collapseByte(c, t.cls[i]))
		}
	}
	if p.wide {
		t.wide = t.wide[:0]
		for i, c := range t.cps {
			t.wide = append(t.wide, wideRune(c, t.cls[i]))
		}
	}
	cur := append(scratch[0][:0], len(t.cps))
	next := scratch[1][:0]
	for _, split := range p.split {
		next = split(t, cur, next[:0])
		cur, next = next, cur
	}
	scratch[0], scratch[1] = cur, next
	return cur
}

func eachPiece(m pieceMatcher) splitter {
	return func(t *runeText, in, out []int) []int {
		return forPieces(in, out, func(lo, hi int, out []int) []int { return m(t.cps, t.cls, lo, hi, out) })
	}
}

func regexSplitter(r *regex) splitter {
	return func(t *runeText, in, out []int) []int {
		text := t.wide
		if r.collapsed {
			text = t.collapsed
		}
		return forPieces(in, out, func(lo, hi int, out []int) []int { return r.split(text, lo, hi, out) })
	}
}

// forPieces calls split on each piece [lo, hi) of the lengths in.
func forPieces(in, out []int, split func(lo, hi int, out []int) []int) []int {
	lo := 0
	for _, n := range in {
		out = split(lo, lo+n, out)
		lo += n
	}
	return out
}

// lookupPre compiles the pre-tokenizer named by a tokenizer.ggml.pre value ("" is "default",
// as in llama.cpp, which warns that quality will suffer).
func lookupPre(name string) (preTokenizer, error) {
	if name == "" {
		name = "default"
	}
	n, ok := preNames[name]
	if !ok {
		return preTokenizer{}, fmt.Errorf("unknown tokenizer.ggml.pre %q; known: %s", name, strings.Join(KnownPreTokenizers(), ", "))
	}
	p := preTokenizer{
		name:         name,
		cleanSpaces:  n.flags&keepSpaces == 0,
		ignoreMerges: n.flags&ignoreMerges != 0,
		addBOS:       n.flags&addBOS != 0,
		noBOS:        n.flags&noBOS != 0,
		escapeSpaces: n.flags&escapeSpaces != 0,
		rawUTF8:      n.flags&rawUTF8 != 0,
		// llama.cpp keys this on the type, which sarvam-moe does not share.
		newlineTokens: n.typ == "gemma4",
	}
	for _, expr := range preTypeRegexes[n.typ] {
		if m, ok := customSplitters[expr]; ok {
			p.split = append(p.split, eachPiece(m))
			continue
		}
		r, err := compiledRegex(expr)
		if err != nil {
			return preTokenizer{}, fmt.Errorf("tokenizer.ggml.pre %q: %w", name, err)
		}
		p.collapsed = p.collapsed || r.collapsed
		p.wide = p.wide || !r.collapsed
		p.split = append(p.split, regexSplitter(r))
	}
	return p, nil
}

var (
	regexMu    sync.Mutex
	regexCache = map[string]*regex{}
)

// compiledRegex compiles each expression once per process.
func compiledRegex(expr string) (*regex, error) {
	regexMu.Lock()
	defer regexMu.Unlock()
	if r, ok := regexCache[expr]; ok {
		return r, nil
	}
	r, err := compileRegex(expr)
	if err != nil {
		return nil, err
	}
	regexCache[expr] = r
	return r, nil
}

// KnownPreTokenizers lists the tokenizer.ggml.pre values this package (like llama.cpp) accepts.
func KnownPreTokenizers() []string {
	names := make([]string, 0, len(preNames))
	for name := range preNames {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
