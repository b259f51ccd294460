package contract_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/loader/tokenizer"
)

// The tokenizer built from an exported package's host file is the model's: the same ids for
// every text, the same special tokens and end-of-generation set.
func TestOpenHostTokenizer(t *testing.T) {
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunks := range []int{1, 2} {
		out := filepath.Join(t.TempDir(), "model")
		if err := export.Export(context.Background(), f, export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: chunks}, out); err != nil {
			t.Fatal(err)
		}
		host, err := contract.OpenHost(out)
		if err != nil {
			t.Fatal(err)
		}
		fromHost, err := tokenizer.FromGGUF(host)
		host.Close()
		if err != nil {
			t.Fatal(err)
		}
		fromModel, err := tokenizer.FromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{"Once upon a time", " there was a little girl named Lily.\n", "ünïcödé 123 <s></s>"} {
			a, b := fromHost.Encode(text, true, true), fromModel.Encode(text, true, true)
			if len(a) != len(b) {
				t.Fatalf("%q: %v from the package, %v from the GGUF", text, a, b)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("%q: %v from the package, %v from the GGUF", text, a, b)
				}
			}
		}
		if fromHost.BOS() != fromModel.BOS() || fromHost.EOS() != fromModel.EOS() || fromHost.VocabSize() != fromModel.VocabSize() {
			t.Errorf("special tokens differ")
		}
		for id := int32(0); id < int32(fromModel.VocabSize()); id++ {
			if fromHost.IsEOG(id) != fromModel.IsEOG(id) {
				t.Errorf("token %d: end of generation %v from the package, %v from the GGUF", id, fromHost.IsEOG(id), fromModel.IsEOG(id))
			}
		}
	}
}
