package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lilims/lilims/internal/oracle"
	"github.com/lilims/lilims/stages/loader/gguf"
)

const oracleDir = "../../../testdata/oracle"

// loadGGUF opens a fixture and builds its tokenizer.
func loadGGUF(t testing.TB, path string) *Tokenizer {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// readVocabTests reads llama.cpp's tokenizer test set the way test-tokenizer-0 does: the .inp
// file is split on "\n__ggml_vocab_test__\n" (the file ends with that separator), and the .out
// file has one line of space-separated ids per string.
func readVocabTests(t testing.TB, base string) (texts []string, want [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	rest := string(inp)
	for {
		i := strings.Index(rest, sep)
		if i < 0 {
			break
		}
		texts = append(texts, rest[:i])
		rest = rest[i+len(sep):]
	}
	if rest != "" {
		texts = append(texts, rest)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for _, line := range lines {
		var ids []int32
		for _, field := range strings.Fields(line) {
			n, err := strconv.ParseInt(field, 10, 32)
			if err != nil {
				t.Fatalf("%s.out: %v", base, err)
			}
			ids = append(ids, int32(n))
		}
		want = append(want, ids)
	}
	if len(texts) != len(want) {
		t.Fatalf("%s: %d strings but %d expected lines", base, len(texts), len(want))
	}
	return texts, want
}

// vocabNames are llama.cpp's test vocabularies under testdata/oracle/vocab: every one of its
// models/ folder with test strings except command-r and gemma-4 (over 10 MB each; see the README).
var vocabNames = []string{"gpt-2", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder",
	"falcon", "mpt", "refact", "starcoder", "llama-spm", "phi-3", "bert-bge"}

// vocabTestFiles lists the vocabularies TestVocabOracle runs: the fixtures, or with
// LILIMS_VOCAB_DIR set (to llama.cpp's models/ folder, say) every ggml-vocab-*.gguf there that
// has test strings, the two over 10 MB included.
func vocabTestFiles(t *testing.T) map[string]string {
	files := map[string]string{}
	dir := os.Getenv("LILIMS_VOCAB_DIR")
	if dir == "" {
		for _, name := range vocabNames {
			files[name] = filepath.Join(oracleDir, "vocab", "ggml-vocab-"+name+".gguf")
		}
		return files
	}
	inps, err := filepath.Glob(filepath.Join(dir, "ggml-vocab-*.gguf.inp"))
	if err != nil || len(inps) == 0 {
		t.Fatalf("LILIMS_VOCAB_DIR=%s: no ggml-vocab-*.gguf.inp files (%v)", dir, err)
	}
	for _, inp := range inps {
		base := strings.TrimSuffix(inp, ".inp")
		files[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(base), "ggml-vocab-"), ".gguf")] = base
	}
	return files
}

// TestVocabOracle checks every string of llama.cpp's tokenizer test set (46 per vocabulary, 50
// for qwen35; the expected ids come from the Hugging Face tokenizers) with add_special=false,
// parse_special=false: every id must match.
func TestVocabOracle(t *testing.T) {
	for name, base := range vocabTestFiles(t) {
		t.Run(name, func(t *testing.T) {
			tok := loadGGUF(t, base)
			texts, want := readVocabTests(t, base)
			if len(texts) < 46 {
				t.Errorf("got %d test strings, llama.cpp's sets have at least 46", len(texts))
			}
			pass := 0
			for i, text := range texts {
				got := tok.Encode(text, false, false)
				if !slices.Equal(got, want[i]) {
					t.Errorf("string %d %q:\n got %v\nwant %v", i, text, got, want[i])
					continue
				}
				pass++
			}
			t.Logf("%s (pre %q): %d/%d strings exact", name, tok.v.Pre, pass, len(texts))
		})
	}
}

// TestEOG checks the end-of-generation sets against llama.cpp's (llamacpp-eog.json: eos, eot
// and every id for which llama_vocab_is_eog is true, recorded through node-llama-cpp).
func TestEOG(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(oracleDir, "vocab", "llamacpp-eog.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]struct {
		EOS, EOT *int32
		EOG      []int32
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for name, base := range vocabTestFiles(t) {
		r, ok := ref[name]
		if !ok {
			t.Errorf("%s: no recorded end-of-generation set", name)
			continue
		}
		tok := loadGGUF(t, base)
		id := func(p *int32) int32 {
			if p == nil {
				return -1
			}
			return *p
		}
		if tok.EOS() != id(r.EOS) || tok.EOT() != id(r.EOT) || !slices.Equal(tok.EOG(), r.EOG) {
			t.Errorf("%s: eos %d eot %d eog %v, llama.cpp: %d %d %v", name, tok.EOS(), tok.EOT(), tok.EOG(), id(r.EOS), id(r.EOT), r.EOG)
		}
	}
}

// TestPreTokenizerOracle checks every pre-tokenizer type against the pieces llama.cpp's
// unicode_regex_split makes of 500 texts (llamacpp-pretokenize.json: llama.cpp's vocabulary test
// strings, random mixes of scripts, digits, spaces, marks and newly assigned code points, and a
// few long runs), piece lengths in code points, keyed by one tokenizer.ggml.pre value per type.
func TestPreTokenizerOracle(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(oracleDir, "vocab", "llamacpp-pretokenize.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Texts  []string
		Pieces map[string][][]int
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	types := map[string]bool{}
	for name, want := range ref.Pieces {
		p, err := lookupPre(name)
		if err != nil {
			t.Fatal(err)
		}
		types[preNames[name].typ] = true
		if len(want) != len(ref.Texts) {
			t.Fatalf("%s: %d results for %d texts", name, len(want), len(ref.Texts))
		}
		var text runeText
		var scratch [2][]int
		bad := 0
		for i, s := range ref.Texts {
			got := p.pieces(&text, s, &scratch)
			if !slices.Equal(got, want[i]) && bad < 3 {
				t.Errorf("%s: pieces of %q: %v, llama.cpp: %v", name, s, got, want[i])
				bad++
			}
		}
	}
	if len(types) != len(preTypeRegexes) {
		t.Errorf("the recording covers %d of %d pre-tokenizer types", len(types), len(preTypeRegexes))
	}
}

// TestLlamaCppReference checks the tokenizations recorded from llama.cpp itself on the model
// fixtures: tokens = Encode(text, false, false), with_special = Encode(text, false, true).
func TestLlamaCppReference(t *testing.T) {
	ref, err := oracle.Load(oracleDir)
	if err != nil {
		t.Fatal(err)
	}
	for file, m := range ref.Models {
		t.Run(file, func(t *testing.T) {
			tok := loadGGUF(t, filepath.Join(oracleDir, "models", file))
			if len(m.Tokenize) == 0 {
				t.Fatal("no tokenize cases")
			}
			for _, c := range m.Tokenize {
				if got := tok.Encode(c.Text, false, false); !slices.Equal(got, c.Tokens) {
					t.Errorf("%q parse_special=false:\n got %v\nwant %v", c.Text, got, c.Tokens)
				}
				if got := tok.Encode(c.Text, false, true); !slices.Equal(got, c.WithSpecial) {
					t.Errorf("%q parse_special=true:\n got %v\nwant %v", c.Text, got, c.WithSpecial)
				}
			}
		})
	}
}
