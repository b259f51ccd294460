package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lilims/lilims/stages/loader/ggml"
	"github.com/lilims/lilims/stages/loader/gguf"
)

// The malformed-input suite: hostile files of every class, run through the real CLI, each
// with its exact error message, exit status 1, no panic, and memory bounded by the input.
// The small synthetic files live in testdata/malformed and are rewritten by
// `go test ./cmd/lilims -run TestMalformedGenerate -update`; inputs derived from the oracle
// fixtures (a NaN block scale, damaged packages, a 1 MiB YAML file) are made at test time so
// that no large file is committed.
const malformedDir = "../../testdata/malformed"

// baseGGUF is a small valid GGUF: a few metadata keys of several types, an F32 tensor and a
// Q4_0 tensor. Its layout (from the GGUF v3 format): magic 0, version 4, tensor count 8,
// metadata count 16, metadata from 24, then the tensor index, then the data section at an
// alignment boundary.
func baseGGUF(t testing.TB) []byte {
	b := gguf.NewBuilder()
	b.Set("general.architecture", "llama")
	b.Set("general.alignment", uint32(32))
	b.Set("llama.context_length", uint32(64))
	b.Set("tokenizer.ggml.tokens", []string{"<s>", "a", "b"})
	b.AddTensorBytes("a.weight", ggml.F32, []int64{4, 2}, gguf.F32Bytes([]float32{1, 2, 3, 4, 5, 6, 7, 8}))
	q := make([]byte, 18) // one Q4_0 block: f16 d = 1.0, 16 bytes of nibbles
	binary.LittleEndian.PutUint16(q, 0x3c00)
	b.AddTensorBytes("b.weight", ggml.Q4_0, []int64{32}, q)
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ggufLayout gives the section boundaries of baseGGUF.
type ggufLayout struct {
	kvStart, tensorInfo, tensorInfoB, dataStart, size int
	archLen                                           int // the u64 length of general.architecture's string value
	tokArr                                            int // the u64 element count of tokenizer.ggml.tokens
}

func layoutOf(t testing.TB, data []byte) ggufLayout {
	f, err := gguf.Parse("base.gguf", data)
	if err != nil {
		t.Fatal(err)
	}
	return ggufLayout{
		kvStart:     24,
		tensorInfo:  bytes.Index(data, []byte("a.weight")) - 8, // the name's u64 length
		tensorInfoB: bytes.Index(data, []byte("b.weight")) - 8,
		dataStart:   int(f.DataOffset),
		size:        len(data),
		// key length, key, value type (4), then the value's own length or array header
		archLen: 24 + 8 + len("general.architecture") + 4,
		tokArr:  bytes.Index(data, []byte("tokenizer.ggml.tokens")) + len("tokenizer.ggml.tokens") + 4 + 4,
	}
}

// malformedGGUFs returns the synthetic GGUF files of the suite by file name.
func malformedGGUFs(t testing.TB) map[string][]byte {
	base := baseGGUF(t)
	l := layoutOf(t, base)
	le := binary.LittleEndian
	mut := func(fn func(b []byte)) []byte {
		b := bytes.Clone(base)
		fn(b)
		return b
	}
	// Field offsets inside a tensor info: name length (8), name, n_dims (4), dims (8 each),
	// type (4), offset (8).
	aDims := l.tensorInfo + 8 + len("a.weight") + 4
	aType := aDims + 2*8
	aOff := aType + 4
	bDims := l.tensorInfoB + 8 + len("b.weight") + 4
	bOff := bDims + 8 + 4
	keyLen := l.kvStart // the first key's u64 length
	archLen, tokArr := l.archLen, l.tokArr
	return map[string][]byte{
		"base.gguf":                   base,
		"trunc-magic.gguf":            base[:2],
		"trunc-version.gguf":          base[:4],
		"trunc-tensor-count.gguf":     base[:8],
		"trunc-kv-count.gguf":         base[:16],
		"trunc-kv.gguf":               base[:l.kvStart+12],
		"trunc-tensor-index.gguf":     base[:l.tensorInfo+4],
		"trunc-data-start.gguf":       base[:l.dataStart],
		"trunc-data.gguf":             base[:l.dataStart+40], // b.weight is [32, 50)
		"bad-magic.gguf":              mut(func(b []byte) { copy(b, "GGML") }),
		"version-1.gguf":              mut(func(b []byte) { le.PutUint32(b[4:], 1) }),
		"version-99.gguf":             mut(func(b []byte) { le.PutUint32(b[4:], 99) }),
		"big-endian.gguf":             mut(func(b []byte) { binary.BigEndian.PutUint32(b[4:], 3) }),
		"tensor-count-2p64.gguf":      mut(func(b []byte) { le.PutUint64(b[8:], 1<<64-1) }),
		"tensor-count-1e12.gguf":      mut(func(b []byte) { le.PutUint64(b[8:], 1e12) }),
		"kv-count-2p64.gguf":          mut(func(b []byte) { le.PutUint64(b[16:], 1<<64-2) }),
		"key-length-2p64.gguf":        mut(func(b []byte) { le.PutUint64(b[keyLen:], 1<<64-1) }),
		"string-length-2p64.gguf":     mut(func(b []byte) { le.PutUint64(b[archLen:], 1<<64-8) }),
		"array-length-2p64.gguf":      mut(func(b []byte) { le.PutUint64(b[tokArr:], 1<<64-1) }),
		"dim-2p64.gguf":               mut(func(b []byte) { le.PutUint64(b[aDims:], 1<<64-1) }),
		"shape-overflow.gguf":         mut(func(b []byte) { le.PutUint64(b[aDims:], 1<<32); le.PutUint64(b[aDims+8:], 1<<32) }),
		"offset-past-end.gguf":        mut(func(b []byte) { le.PutUint64(b[aOff:], 1<<63) }),
		"overlapping-tensors.gguf":    mut(func(b []byte) { le.PutUint64(b[bOff:], 0) }),
		"unknown-type.gguf":           mut(func(b []byte) { le.PutUint32(b[aType:], 1000) }),
		"misaligned-offset.gguf":      mut(func(b []byte) { le.PutUint64(b[bOff:], 33) }),
		"alignment-not-pow2.gguf":     mut(func(b []byte) { setAlignment(t, b, 48) }),
		"duplicate-tensor-names.gguf": mut(func(b []byte) { copy(b[l.tensorInfoB+8:], "a") }),
	}
}

// setAlignment rewrites the u32 value of general.alignment.
func setAlignment(t testing.TB, b []byte, a uint32) {
	i := bytes.Index(b, []byte("general.alignment"))
	if i < 0 {
		t.Fatal("no general.alignment")
	}
	binary.LittleEndian.PutUint32(b[i+len("general.alignment")+4:], a)
}

// malformedYAML returns the small hostile pipeline files by name.
func malformedYAML() map[string]string {
	return map[string]string{
		"tabs.yaml":           "name: t\nstages:\n\t- id: load\n\t  uses: loader/gguf\n",
		"anchors.yaml":        "name: a\nstages:\n  - &s {id: load, uses: loader/gguf}\n  - *s\n",
		"billion-laughs.yaml": "name: &a [x, x, x, x]\nmodel: &b [*a, *a, *a, *a]\nstages: [*b, *b]\n",
		"duplicate-keys.yaml": "name: d\nname: e\nstages:\n  - id: load\n    uses: loader/gguf\n    uses: loader/gguf\n",
		"two-documents.yaml":  "name: one\nstages:\n  - {id: load, uses: loader/gguf}\n---\nname: two\n",
		"not-a-mapping.yaml":  "- just\n- a list\n",
		"deep-nesting.yaml":   "stages: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n",
	}
}

// TestMalformedGenerate rewrites testdata/malformed with -update and otherwise checks that
// the committed files are what the generator makes.
func TestMalformedGenerate(t *testing.T) {
	files := map[string][]byte{}
	for name, b := range malformedGGUFs(t) {
		files[filepath.Join("gguf", name)] = b
	}
	for name, s := range malformedYAML() {
		files[filepath.Join("yaml", name)] = []byte(s)
	}
	for name, want := range files {
		path := filepath.Join(malformedDir, name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator (%v): run with -update", path, err)
		}
	}
}

// runBounded runs the CLI and returns what runCLI does plus the bytes allocated meanwhile:
// the total allocation bounds the peak heap from above (mapped input files are not heap).
func runBounded(t *testing.T, a ...string) (stdout, stderr string, code int, alloc uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("lilims %s panicked: %v", strings.Join(a, " "), r)
		}
	}()
	stdout, stderr, code = runCLI(t, "", a...)
	runtime.ReadMemStats(&after)
	return stdout, stderr, code, after.TotalAlloc - before.TotalAlloc
}

// memBound is what a rejected input may cost: a fixed allowance for the command itself
// (cobra, the registry, error text) plus a small multiple of the input size.
func memBound(inputSize int64) uint64 { return 4<<20 + 16*uint64(inputSize) }

type malformedCase struct {
	class string
	args  []string // {FILE} is replaced by the input's path
	file  string   // under testdata/malformed, or an absolute path made by the test
	want  string   // the exact output (stdout then stderr), {FILE} replaced
}

func runMalformed(t *testing.T, cases []malformedCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.class+"/"+filepath.Base(c.file), func(t *testing.T) {
			path := c.file
			if !filepath.IsAbs(path) {
				path = filepath.Join(malformedDir, path)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			size := st.Size()
			if st.IsDir() {
				size = 1 << 16
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "{FILE}", path)
			}
			stdout, stderr, code, alloc := runBounded(t, args...)
			want := strings.ReplaceAll(c.want, "{FILE}", path)
			got := strings.TrimSpace(stdout + stderr)
			// A message that names a temporary directory of the run is checked from "…" on.
			if tail, ok := strings.CutPrefix(want, "…"); ok && strings.HasSuffix(got, tail) {
				got = want
			}
			if got != want {
				t.Errorf("lilims %s:\n got %s\nwant %s", strings.Join(args, " "), got, want)
			}
			if code != exitError {
				t.Errorf("exit status %d, want %d", code, exitError)
			}
			if c.args[0] == "run" || c.args[0] == "build" {
				size = 64 * size // these run build stages before failing: allow their working memory
			}
			if alloc > memBound(size) {
				t.Errorf("allocated %d bytes for a %d-byte input (bound %d)", alloc, size, memBound(size))
			}
		})
	}
}

// TestMalformedGGUF: every class of damaged GGUF is refused by inspect with a message naming
// the file, the byte offset and the field.
func TestMalformedGGUF(t *testing.T) {
	l := layoutOf(t, baseGGUF(t))
	insp := []string{"inspect", "{FILE}"}
	g := func(name string) string { return filepath.Join("gguf", name) }
	cases := []malformedCase{
		{"truncated", insp, g("trunc-magic.gguf"), "gguf: {FILE}: offset 0: truncated: magic needs 4 bytes, 2 left"},
		{"truncated", insp, g("trunc-version.gguf"), "gguf: {FILE}: offset 4: truncated: version needs 4 bytes, 0 left"},
		{"truncated", insp, g("trunc-tensor-count.gguf"), "gguf: {FILE}: offset 8: truncated: tensor count needs 8 bytes, 0 left"},
		{"truncated", insp, g("trunc-kv-count.gguf"), "gguf: {FILE}: offset 16: truncated: metadata count needs 8 bytes, 0 left"},
		{"truncated", insp, g("trunc-kv.gguf"), "gguf: {FILE}: offset 16: metadata count 4 cannot fit in the 12 bytes left (truncated or corrupt file)"},
		{"truncated", insp, g("trunc-tensor-index.gguf"), "gguf: {FILE}: offset 8: tensor count 2 cannot fit in the 4 bytes left (truncated or corrupt file)"},
		{"truncated", insp, g("trunc-data-start.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": tensor data [%d, +32) lies past the end of the file (data section holds 0 bytes)", l.tensorInfo, l.dataStart)},
		{"truncated", insp, g("trunc-data.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"b.weight\": tensor data [%d, +18) lies past the end of the file (data section holds %d bytes)", l.tensorInfoB, l.dataStart+32, 40)},
		{"bad magic", insp, g("bad-magic.gguf"), `gguf: {FILE}: offset 0: not a GGUF file (magic "GGML")`},
		{"bad version", insp, g("version-1.gguf"), "gguf: {FILE}: offset 4: unsupported GGUF v1, re-convert with a current llama.cpp"},
		{"bad version", insp, g("version-99.gguf"), "gguf: {FILE}: offset 4: unsupported GGUF version 99 (supported: 2, 3)"},
		{"bad version", insp, g("big-endian.gguf"), "gguf: {FILE}: offset 4: version field 0x03000000 looks byte-swapped: big-endian GGUF files are not supported"},
		{"count near 2^64", insp, g("tensor-count-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset 8: tensor count 18446744073709551615 cannot fit in the %d bytes left (truncated or corrupt file)", l.size-l.tensorInfo)},
		{"count near 2^64", insp, g("tensor-count-1e12.gguf"), fmt.Sprintf("gguf: {FILE}: offset 8: tensor count 1000000000000 cannot fit in the %d bytes left (truncated or corrupt file)", l.size-l.tensorInfo)},
		{"count near 2^64", insp, g("kv-count-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset 16: metadata count 18446744073709551614 cannot fit in the %d bytes left (truncated or corrupt file)", l.size-24)},
		{"length near 2^64", insp, g("key-length-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset 24: metadata key length 18446744073709551615 exceeds the %d bytes left in the file", l.size-32)},
		{"length near 2^64", insp, g("string-length-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: string value length 18446744073709551608 exceeds the %d bytes left in the file", l.archLen, l.size-l.archLen-8)},
		{"length near 2^64", insp, g("array-length-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"tokenizer.ggml.tokens\": array of 18446744073709551615 string elements cannot fit in the %d bytes left", l.tokArr, l.size-l.tokArr-8)},
		{"length near 2^64", insp, g("dim-2p64.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": dimension 0 is 18446744073709551615 (negative as int64)", l.tensorInfo+8+8+4)},
		{"shape overflow", insp, g("shape-overflow.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": shape overflows: element count exceeds 2^63", l.tensorInfo+8+8+4+8)},
		{"offset past end", insp, g("offset-past-end.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": tensor data [%d, +32) lies past the end of the file (data section holds %d bytes)", l.tensorInfo, uint64(l.dataStart)+1<<63, l.size-l.dataStart)},
		{"overlapping tensors", insp, g("overlapping-tensors.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"b.weight\": tensor data overlaps \"a.weight\"", l.tensorInfoB)},
		{"unknown type", insp, g("unknown-type.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": unknown ggml type id 1000", l.tensorInfo+8+8+4+16)},
		{"misaligned offset", insp, g("misaligned-offset.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"b.weight\": tensor data offset 33 is not a multiple of the alignment 32", l.tensorInfoB)},
		{"bad alignment", insp, g("alignment-not-pow2.gguf"), `gguf: {FILE}: "general.alignment": must be a non-zero power of two of type uint32, got 48 (uint32)`},
		{"duplicate tensor", insp, g("duplicate-tensor-names.gguf"), fmt.Sprintf("gguf: {FILE}: offset %d: \"a.weight\": duplicate tensor name", l.tensorInfoB)},
	}
	runMalformed(t, cases)
}

// TestMalformedYAML: hostile pipeline files are refused by validate with every problem
// positioned (file:line:col); aliases are refused outright, so an alias bomb costs nothing.
func TestMalformedYAML(t *testing.T) {
	val := []string{"validate", "{FILE}"}
	y := func(name string) string { return filepath.Join("yaml", name) }
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	// One byte over the 1 MiB limit of pipeline.LoadFile: made here, not committed.
	body := "name: big\nstages:\n  - {id: s, uses: loader/gguf}  # "
	if err := os.WriteFile(huge, []byte(body+strings.Repeat("x", 1<<20+1-len(body))), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []malformedCase{
		{"yaml tabs", val, y("tabs.yaml"), "{FILE}:3:1: tab character: YAML indents with spaces only\n1 problem"},
		{"yaml anchors", val, y("anchors.yaml"), "{FILE}:4:5: YAML aliases (*s) are not supported in pipeline files: write the value out\n" +
			"{FILE}:4:5: a stage is a mapping with id, uses and optional with\n2 problems"},
		{"yaml anchors", val, y("billion-laughs.yaml"), "{FILE}:1:1: pipeline has no stages\n" +
			"{FILE}:1:7: expected a single value\n{FILE}:2:8: expected a single value\n" +
			"{FILE}:2:12: YAML aliases (*a) are not supported in pipeline files: write the value out\n" +
			"{FILE}:2:16: YAML aliases (*a) are not supported in pipeline files: write the value out\n" +
			"{FILE}:2:20: YAML aliases (*a) are not supported in pipeline files: write the value out\n" +
			"{FILE}:2:24: YAML aliases (*a) are not supported in pipeline files: write the value out\n" +
			"{FILE}:3:10: YAML aliases (*b) are not supported in pipeline files: write the value out\n{FILE}:3:10: a stage is a mapping with id, uses and optional with\n" +
			"{FILE}:3:14: YAML aliases (*b) are not supported in pipeline files: write the value out\n{FILE}:3:14: a stage is a mapping with id, uses and optional with\n" +
			"11 problems"},
		{"yaml duplicate keys", val, y("duplicate-keys.yaml"), "{FILE}:2:1: duplicate key \"name\"\n{FILE}:6:5: duplicate key \"uses\"\n2 problems"},
		{"yaml two documents", val, y("two-documents.yaml"), "{FILE}:4:1: a pipeline file holds one YAML document; this is a second one\n1 problem"},
		{"yaml not a mapping", val, y("not-a-mapping.yaml"), "{FILE}:1:1: a pipeline is a mapping with name, model and stages\n1 problem"},
		{"yaml deep nesting", val, y("deep-nesting.yaml"), "{FILE}:1:1: pipeline has no stages\n{FILE}:1:10: a stage is a mapping with id, uses and optional with\n2 problems"},
		{"yaml huge document", val, huge, "{FILE}: 1048577 bytes or more is too large for a pipeline file (limit 1048576)\n1 problem"},
	}
	runMalformed(t, cases)
}

// damagedPackages copies the oracle's linear_fp16.mlpackage into variants with a file
// missing, renamed, truncated or a manifest pointing nowhere, and returns their paths.
func damagedPackages(t *testing.T) map[string]string {
	src := filepath.Join(oracle, "coreml", "linear_fp16.mlpackage")
	const data = "Data/com.apple.CoreML"
	edits := map[string]func(dir string) error{
		"no-manifest": func(d string) error { return os.Remove(filepath.Join(d, "Manifest.json")) },
		"no-model": func(d string) error {
			p := filepath.Join(d, data, "model.mlmodel")
			return os.Rename(p, p+".bak")
		},
		"renamed-weights": func(d string) error {
			w := filepath.Join(d, data, "weights")
			return os.Rename(filepath.Join(w, "weight.bin"), filepath.Join(w, "weights.bin"))
		},
		"truncated-weights": func(d string) error { return os.Truncate(filepath.Join(d, data, "weights", "weight.bin"), 100) },
		"bad-manifest": func(d string) error {
			return os.WriteFile(filepath.Join(d, "Manifest.json"),
				[]byte(`{"fileFormatVersion": "1.0.0", "itemInfoEntries": {}, "rootModelIdentifier": "x"}`), 0o644)
		},
	}
	out := map[string]string{}
	root := t.TempDir()
	for name, edit := range edits {
		dst := filepath.Join(root, name+".mlpackage")
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		if err := edit(dst); err != nil {
			t.Fatal(err)
		}
		out[name] = dst
	}
	return out
}

// TestMalformedPackages: predict refuses packages with missing, renamed or damaged files,
// naming the file and, for weights, the op that refers to them.
func TestMalformedPackages(t *testing.T) {
	pk := damagedPackages(t)
	pred := []string{"predict", "{FILE}", "-o", t.TempDir()}
	const root = "ca5eb9f0-7a27-4e7c-ab96-a6c186748570" // linear_fp16's root model item
	cases := []malformedCase{
		{"package missing file", pred, pk["no-manifest"], "reference: mlpackage: open {FILE}/Manifest.json: no such file or directory"},
		{"package missing file", pred, pk["no-model"], "reference: mlpackage: root model item " + root + ": open {FILE}/Data/com.apple.CoreML/model.mlmodel: no such file or directory"},
		{"package renamed file", pred, pk["renamed-weights"], "reference: mlpackage: function main (CoreML8): op const y_weight_0 attribute val: blob: open {FILE}/Data/com.apple.CoreML/weights/weight.bin: no such file or directory"},
		{"package truncated file", pred, pk["truncated-weights"], "reference: mlpackage: function main (CoreML8): op const y_weight_0 attribute val: {FILE}/Data/com.apple.CoreML/weights/weight.bin: offset 0: truncated: header claims 2 blobs, but 100 bytes hold at most 0"},
		{"package bad manifest", pred, pk["bad-manifest"], "reference: mlpackage: {FILE}/Manifest.json: rootModelIdentifier \"x\" names no item"},
	}
	runMalformed(t, cases)
}

// nanScaleModel writes a copy of stories260K-q4_0.gguf whose first Q4_0 block of
// output.weight has d = NaN (f16 0x7e00), and returns its path and that block's file offset.
func nanScaleModel(t *testing.T) (string, int64) {
	src := filepath.Join(oracle, "models", "stories260K-q4_0.gguf")
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	tn, ok := f.Tensor("output.weight")
	if !ok || tn.Type != ggml.Q4_0 {
		t.Fatalf("output.weight: %v", tn)
	}
	at := f.DataOffset + int64(tn.Offset)
	f.Close()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(raw[at:], 0x7e00) // the block's d: f16 quiet NaN
	path := filepath.Join(t.TempDir(), "nan-scale.gguf")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, at
}

// TestMalformedBuild: a Q4_0 block with a NaN scale is refused by both the lossless
// transcoding (quantize) and the fp16 export, naming the tensor and the block's offset,
// rather than exporting garbage; context and batch limits are enforced from the package.
func TestMalformedBuild(t *testing.T) {
	nan, at := nanScaleModel(t)
	stories := filepath.Join(oracle, "models", "stories260K.gguf")
	nanMsg := fmt.Sprintf("gguf: {FILE}: offset %d: \"output.weight\": Q4_0 tensor has a non-finite value (NaN) in row 0, element 0: corrupt data or block scale", at)
	out := t.TempDir()
	cases := []malformedCase{
		{"NaN scale", []string{"build", "{FILE}", "-o", out, "--no-cache", "--set", "quantize.scheme=gguf"}, nan,
			"stage \"quantize\" (quantize/int4): quantize/int4: tensor \"output.weight\" rows [0, 512): " + nanMsg},
		{"NaN scale", []string{"run", "{FILE}", "--prompt", "Once", "--no-cache"}, nan,
			"…: weights: export: nan-scale.gguf: mil: function prefill: op output_weight (const): weight output.weight: " + nanMsg},
		{"context limit", []string{"run", "{FILE}", "--prompt", "Once upon a time there was a little girl named Lily who",
			"--set", "export.context=16", "--set", "export.prefill_chunk=8"}, stories,
			"prompt of 17 tokens does not fit the exported context of 16 tokens; re-export with a larger context (--set export.context=N)"},
		{"context limit", []string{"run", "{FILE}", "--prompt", "Once", "--set", "export.context=2000000"}, stories,
			"stage \"export\" (export/mil): export: context 2000000 out of range [0, 1048576] (0: the model's)"},
		{"batch limit", []string{"run", "{FILE}", "--prompt", "Once", "--set", "export.context=16"}, stories,
			"stage \"export\" (export/mil): export: prefill chunk 64 exceeds the context length 16"},
	}
	runMalformed(t, cases)
}
