package tokenizer

import (
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

var vocabNames = []string{"gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3"}

// TestVocabOracle checks every string of llama.cpp's tokenizer test set (46 per vocabulary; the
// expected ids come from the Hugging Face tokenizers) with add_special=false,
// parse_special=false: every id must match.
func TestVocabOracle(t *testing.T) {
	for _, name := range vocabNames {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join(oracleDir, "vocab", "ggml-vocab-"+name+".gguf")
			tok := loadGGUF(t, base)
			texts, want := readVocabTests(t, base)
			if len(texts) != 46 {
				t.Errorf("got %d test strings, the fixture has 46", len(texts))
			}
			for i, text := range texts {
				got := tok.Encode(text, false, false)
				if !slices.Equal(got, want[i]) {
					t.Errorf("string %d %q:\n got %v\nwant %v", i, text, got, want[i])
				}
			}
		})
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
