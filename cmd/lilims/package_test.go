package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// buildPackage builds stories260K through the default pipeline (fp16, context 256) and
// returns its package, moved away from the build directory: what is left of it is the
// package alone.
func buildPackage(t *testing.T, sets ...string) string {
	t.Helper()
	dir := t.TempDir()
	a := []string{"build", filepath.Join(oracle, "models", "stories260K.gguf"), "-o", dir, "--no-cache", "--set", "export.context=256"}
	for _, s := range sets {
		a = append(a, "--set", s)
	}
	if _, errOut, code := runCLI(t, "", a...); code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	src := filepath.Join(dir, "export", "model.mlpackage")
	if len(sets) > 0 && sets[0] == "export.chunks=2" {
		src = filepath.Join(dir, "export", "model.chunks")
	}
	pkg := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.Rename(src, pkg); err != nil {
		t.Fatal(err)
	}
	return pkg
}

// A built package runs without its GGUF: greedy text equal to llama.cpp's, and every
// probability `score` prints equal to the GGUF-built run's (the same package bits).
func TestRunPackageWithoutGGUF(t *testing.T) {
	var want string
	for _, p := range loadRef(t, "stories260K.gguf") {
		if p.Prompt == "Once upon a time" {
			want = p.GreedyText
		}
	}
	model := filepath.Join(oracle, "models", "stories260K.gguf")
	for _, chunks := range []string{"export.chunks=1", "export.chunks=2"} {
		t.Run(chunks, func(t *testing.T) {
			pkg := buildPackage(t, chunks)
			out, errOut, code := runCLI(t, "", "run", pkg, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24")
			if code != 0 {
				t.Fatalf("run: exit %d: %s", code, errOut)
			}
			// llama.cpp: ", there was a little girl named Lily. She loved to play outside in the p"
			if got := strings.TrimSuffix(out, "\n"); got != want {
				t.Errorf("run printed %q\nllama.cpp greedy_text %q", got, want)
			}
			score := func(path string, extra ...string) scoreDoc {
				a := append([]string{"score", path, "--prompt", "Once upon a time, there was", "--top", "512", "--json"}, extra...)
				out, errOut, code := runCLI(t, "", a...)
				if code != 0 {
					t.Fatalf("score %s: exit %d: %s", path, code, errOut)
				}
				var d scoreDoc
				if err := json.Unmarshal([]byte(out), &d); err != nil {
					t.Fatal(err)
				}
				return d
			}
			fromPkg := score(pkg)
			fromGGUF := score(model, "--no-cache", "--set", "export.context=256", "--set", chunks)
			if !slices.Equal(fromPkg.Tokens, fromGGUF.Tokens) || len(fromPkg.Steps) != len(fromGGUF.Steps) {
				t.Fatalf("tokens %v from the package, %v from the GGUF", fromPkg.Tokens, fromGGUF.Tokens)
			}
			for i := range fromPkg.Steps {
				if !slices.Equal(fromPkg.Steps[i].Top, fromGGUF.Steps[i].Top) {
					t.Fatalf("pos %d: the package's probabilities differ from the GGUF-built run's", i)
				}
			}
		})
	}
}

// The package's numbers are llama.cpp's: max |Δp| ≤ 0.005 over llama.cpp's 20 listed tokens
// at every step (stories260K is f32; tolerance of the oracle README), argmax equal where
// llama.cpp's top-1/top-2 margin > 0.02.
func TestScorePackageMatchesLlamaCpp(t *testing.T) {
	scoreMatchesLlamaCpp(t, buildPackage(t), loadRef(t, "stories260K.gguf"), 512)
}

// Build-stage overrides make no sense for a built package; a package of another contract
// version is refused in one line naming both versions; a package without its host file
// says so.
func TestRunPackageBadInput(t *testing.T) {
	pkg := buildPackage(t)
	_, errOut, code := runCLI(t, "", "run", pkg, "--prompt", "x", "--set", "export.context=16")
	if code != 2 || !strings.Contains(errOut, "--set export.context=16: "+pkg+" is already built") {
		t.Errorf("--set on a build stage: exit %d, %q", code, errOut)
	}

	spec := filepath.Join(pkg, filepath.FromSlash(mlpackage.ModelFile))
	raw, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	m := &milpb.Model{}
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	m.Description.Metadata.UserDefined[contract.KeyVersion] = "1"
	if raw, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "", "run", pkg, "--prompt", "x")
	want := "package follows lilims contract version 1, this lilims runs version 3: re-export it from its GGUF"
	if code != 1 || !strings.HasSuffix(strings.TrimSpace(errOut), want) || strings.Contains(strings.TrimSpace(errOut), "\n") {
		t.Errorf("older contract: exit %d, %q, want one line ending %q", code, errOut, want)
	}

	host, err := contract.HostPath(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(host); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, "", "run", pkg, "--prompt", "x")
	if want := pkg + ": Manifest.json lists the host file Data/ai.lilims/host.gguf, but it does not exist"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("no host file: exit %d, %q, want %q", code, errOut, want)
	}
}

// inspect --json describes a package as coremltools users read one: the contract's
// functions with their features, the metadata, the weight encodings and the host file.
func TestInspectPackage(t *testing.T) {
	for _, tc := range []struct {
		sets      []string
		format    string
		packages  int
		encodings []string
	}{
		{nil, "mlpackage", 1, []string{"fp16"}},
		// lut4 palettizes the projections and keeps norms and small tensors fp16.
		{[]string{"quantize.scheme=lut4"}, "mlpackage", 1, []string{"fp16", "lut uint4"}},
		{[]string{"export.chunks=2"}, "lilims.chunks", 2, []string{"fp16"}},
	} {
		t.Run(strings.Join(tc.sets, ","), func(t *testing.T) {
			pkg := buildPackage(t, tc.sets...)
			out, errOut, code := runCLI(t, "", "inspect", pkg, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var doc packageDoc
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Format != tc.format || len(doc.Packages) != tc.packages {
				t.Fatalf("format %s with %d packages, want %s with %d", doc.Format, len(doc.Packages), tc.format, tc.packages)
			}
			if doc.Contract.Version != "3" || len(doc.Contract.Problems) > 0 {
				t.Errorf("contract %+v, want version 3 without problems", doc.Contract)
			}
			// stories260K: n_vocab 512 (oracle README); context 256 and the default chunk 64.
			if want := (contract.Meta{ContextLength: 256, PrefillChunk: 64, VocabSize: 512}); doc.Meta == nil || *doc.Meta != want {
				t.Errorf("meta %+v, want %+v", doc.Meta, want)
			}
			first, last := doc.Packages[0], doc.Packages[len(doc.Packages)-1]
			if first.DefaultFunction != contract.Decode || len(first.Functions) != 2 {
				t.Fatalf("default function %q, %d functions", first.DefaultFunction, len(first.Functions))
			}
			for _, f := range first.Functions {
				n := int64(64)
				if f.Name == contract.Decode {
					n = 1
				}
				if in := f.Inputs[0]; in.Name != contract.InputIDs || in.Type != "int32" || !slices.Equal(in.Shape, []int64{1, n}) {
					t.Errorf("%s: first input %+v", f.Name, in)
				}
				// 5 layers over the chunks; K and V per layer, fp16 [1, n_head_kv 4, C, head_dim 8].
				for _, s := range f.States {
					if s.Type != "float16" || !slices.Equal(s.Shape, []int64{1, 4, 256, 8}) {
						t.Errorf("%s: state %+v", f.Name, s)
					}
				}
			}
			for _, f := range last.Functions {
				if o := f.Outputs[0]; o.Name != contract.Logits || o.Type != "float32" || o.Shape[2] != 512 {
					t.Errorf("%s: output %+v", f.Name, o)
				}
			}
			var encodings []string
			var states int
			for _, p := range doc.Packages {
				var sum int64
				for _, w := range p.Weights {
					if !slices.Contains(encodings, w.Encoding) {
						encodings = append(encodings, w.Encoding)
					}
					if w.Count < 1 || w.Bytes < 1 {
						t.Errorf("%s: %+v", p.Path, w)
					}
					sum += w.Bytes
				}
				if sum != p.WeightBytes {
					t.Errorf("%s: encodings sum to %d bytes, weight_bytes %d", p.Path, sum, p.WeightBytes)
				}
				states += len(p.Functions[0].States)
				if p.Metadata[contract.KeyVersion] != "3" || p.Metadata[contract.KeyVocabSize] != "512" {
					t.Errorf("%s: metadata %v", p.Path, p.Metadata)
				}
			}
			slices.Sort(encodings)
			if !slices.Equal(encodings, tc.encodings) {
				t.Errorf("encodings %v, want %v", encodings, tc.encodings)
			}
			if states != 10 {
				t.Errorf("%d KV states over the packages, want 10", states)
			}
			// The host file: llama's SPM vocabulary of 512 tokens, bos 1, eos 2 (the GGUF's keys).
			h := doc.Host
			if h == nil || h.Tokenizer != "llama" || h.Tokens != 512 || h.SpecialTokens["bos"] != 1 || h.SpecialTokens["eos"] != 2 || h.Architecture != "llama" {
				t.Errorf("host %+v", h)
			}
			// The text form names the same things.
			text, _, code := runCLI(t, "", "inspect", pkg)
			for _, w := range []string{"contract:   lilims version 3 (this lilims runs 3): ok", "input   input_ids", "float32  [1 1 512]", "tokenizer llama, 512 tokens"} {
				if code != 0 || !strings.Contains(text, w) {
					t.Errorf("inspect does not print %q:\n%s", w, text)
				}
			}
		})
	}
}
