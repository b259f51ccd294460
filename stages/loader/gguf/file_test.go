package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
)

const modelsDir = "../../../testdata/oracle/models"

func fixtures(t testing.TB) []string {
	paths, err := filepath.Glob(filepath.Join(modelsDir, "*.gguf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", modelsDir, err)
	}
	vocabs, _ := filepath.Glob("../../../testdata/oracle/vocab/*.gguf")
	return append(paths, vocabs...)
}

// Every fixture opens, and its tensors tile the data section exactly as gguf-py lays them
// out (sequential, each padded to the alignment) — an independent check of the sizes we
// compute from shapes and block geometry.
func TestOpenFixtures(t *testing.T) {
	for _, path := range fixtures(t) {
		f, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		st, _ := os.Stat(path)
		next := uint64(0)
		for _, tn := range f.Tensors {
			if tn.Offset != next {
				t.Errorf("%s: %s at offset %d, want %d", path, tn.Name, tn.Offset, next)
			}
			next = alignUp(tn.Offset+uint64(tn.Size), f.Alignment)
		}
		if len(f.Tensors) > 0 && uint64(f.DataOffset)+next != uint64(st.Size()) {
			t.Errorf("%s: tensors end at %d, file is %d bytes", path, uint64(f.DataOffset)+next, st.Size())
		}
		f.Close()
	}
}

func mustParse(t *testing.T, b *Builder) *File {
	t.Helper()
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse("mem.gguf", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// validFile is a small file with two F32 tensors, used as the base for malformed variants.
func validFile(t testing.TB) []byte {
	b := NewBuilder()
	b.Set("general.architecture", "llama")
	b.Set("general.alignment", uint32(32))
	b.Set("tokenizer.ggml.tokens", []string{"a", "b"})
	b.AddTensorBytes("a.weight", ggml.F32, []int64{4, 2}, F32Bytes(make([]float32, 8)))
	b.AddTensorBytes("b.weight", ggml.F32, []int64{8}, F32Bytes(make([]float32, 8)))
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := validFile(t)
	f, err := Parse("mem.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || len(f.Tensors) != 2 || f.Architecture() != "llama" {
		t.Fatalf("got version %d, %d tensors, arch %q", f.Version, len(f.Tensors), f.Architecture())
	}
	a, _ := f.Tensor("a.weight")
	if a.Size != 32 || a.Rows() != 2 {
		t.Fatalf("a.weight size %d rows %d", a.Size, a.Rows())
	}
	toks, err := f.GetStrings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 2 || toks[1] != "b" {
		t.Fatalf("tokens %v %v", toks, err)
	}
	if _, err := f.GetUint("general.architecture"); err == nil {
		t.Fatal("GetUint on a string should fail")
	}
	if _, err := f.GetString("nope"); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("missing key error %v", err)
	}
}

// header offsets of validFile: magic 0, version 4, tensor count 8, kv count 16, first key at 24.
func TestMalformed(t *testing.T) {
	base := validFile(t)
	f0, _ := Parse("x", base)
	infoStart := f0.DataOffset // tensor infos end before this
	_ = infoStart
	le := binary.LittleEndian
	mut := func(fn func(b []byte) []byte) []byte {
		return fn(append([]byte(nil), base...))
	}
	// offset of the first tensor info: search for the name.
	tensorInfo := bytes.Index(base, []byte("a.weight")) - 8
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated: magic"},
		{"bad magic", mut(func(b []byte) []byte { copy(b, "GGML"); return b }), "not a GGUF file"},
		{"v1", mut(func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }), "unsupported GGUF v1, re-convert with a current llama.cpp"},
		{"v4", mut(func(b []byte) []byte { le.PutUint32(b[4:], 4); return b }), "unsupported GGUF version 4"},
		{"big endian", mut(func(b []byte) []byte { le.PutUint32(b[4:], 0x03000000); return b }), "big-endian"},
		{"huge tensor count", mut(func(b []byte) []byte { le.PutUint64(b[8:], 1<<62); return b }), "tensor count"},
		{"huge kv count", mut(func(b []byte) []byte { le.PutUint64(b[16:], 1<<63); return b }), "metadata count"},
		{"huge key length", mut(func(b []byte) []byte { le.PutUint64(b[24:], ^uint64(0)); return b }), "metadata key length"},
		{"truncated header", base[:30], "truncated"},
		{"truncated data", base[:len(base)-40], "past the end of the file"},
		{"unknown tensor type", mut(func(b []byte) []byte {
			p := tensorInfo + 8 + len("a.weight") + 4 + 16
			le.PutUint32(b[p:], 77)
			return b
		}), "unknown ggml type id 77"},
		{"misaligned offset", mut(func(b []byte) []byte {
			p := tensorInfo + 8 + len("a.weight") + 4 + 16 + 4
			le.PutUint64(b[p:], 3)
			return b
		}), "not a multiple of the alignment"},
		{"offset past end", mut(func(b []byte) []byte {
			p := tensorInfo + 8 + len("a.weight") + 4 + 16 + 4
			le.PutUint64(b[p:], 1<<40)
			return b
		}), "past the end of the file"},
		{"overflowing shape", mut(func(b []byte) []byte {
			p := tensorInfo + 8 + len("a.weight") + 4
			le.PutUint64(b[p:], 1<<40)
			le.PutUint64(b[p+8:], 1<<40)
			return b
		}), "shape overflows"},
		{"too many dims", mut(func(b []byte) []byte {
			le.PutUint32(b[tensorInfo+8+len("a.weight"):], 9)
			return b
		}), "9 dimensions"},
		{"duplicate tensor", mut(func(b []byte) []byte {
			i := bytes.Index(b, []byte("b.weight"))
			copy(b[i:], "a")
			return b
		}), "duplicate tensor name"},
		{"duplicate key", mut(func(b []byte) []byte {
			i := bytes.Index(b, []byte("general.alignment"))
			copy(b[i:], "general.architectur")
			return b
		}), ""},
	}
	for _, c := range cases {
		_, err := Parse("bad.gguf", c.data)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "gguf: bad.gguf: ") {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
	}
}

func TestWrongTypeForKnownKey(t *testing.T) {
	b := NewBuilder()
	b.Set("general.architecture", "llama")
	b.Set("llama.context_length", "long")
	var buf bytes.Buffer
	b.WriteTo(&buf)
	_, err := Parse("bad.gguf", buf.Bytes())
	if err == nil || !strings.Contains(err.Error(), `"llama.context_length": has type string, want an integer`) {
		t.Fatalf("got %v", err)
	}
	b = NewBuilder()
	b.Set("general.alignment", uint32(24))
	buf.Reset()
	b.WriteTo(&buf)
	if _, err := Parse("bad.gguf", buf.Bytes()); err == nil || !strings.Contains(err.Error(), "power of two") {
		t.Fatalf("alignment 24: %v", err)
	}
}

// FuzzParse feeds arbitrary bytes to the header parser: it must return a File or an error,
// never panic, and never allocate beyond what the input can describe.
func FuzzParse(f *testing.F) {
	f.Add(validFile(f))
	for _, p := range fixtures(f) {
		data, err := os.ReadFile(p)
		if err == nil && len(data) < 1<<21 {
			f.Add(data[:min(len(data), 4096)]) // header prefixes: small seeds keep minimisation fast
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.gguf", data)
		if err != nil {
			return
		}
		for _, tn := range file.Tensors {
			_ = file.Data(tn)
		}
	})
}
