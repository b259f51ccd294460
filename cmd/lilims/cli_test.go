package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	llamacpp "github.com/lilims/lilims/internal/oracle"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

const oracle = "../../testdata/oracle"

// runCLI runs lilims in-process and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, stdin string, a ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(a)
	ctx := context.Background()
	err := execute(ctx, root)
	code := 0
	if err != nil {
		errOut.WriteString(err.Error())
		code = exitCode(ctx, err)
	}
	return out.String(), errOut.String(), code
}

type inspectOut struct {
	Version      int            `json:"version"`
	Architecture string         `json:"architecture"`
	Parameters   int64          `json:"parameters"`
	Metadata     map[string]any `json:"metadata"`
	Tensors      []struct {
		Name   string  `json:"name"`
		Shape  []int64 `json:"shape"`
		Type   string  `json:"type"`
		Offset uint64  `json:"offset"`
	} `json:"tensors"`
	KVState struct {
		DefaultContext int   `json:"default_context"`
		DefaultBytes   int64 `json:"default_bytes"`
	} `json:"kv_state"`
}

// inspect --json on every fixture: checked against facts from testdata/oracle/README.md and
// against a golden copy (reviewed once, rewritten only with -update).
func TestInspectJSON(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join(oracle, "models", "*.gguf"))
	if len(paths) == 0 {
		t.Fatal("no fixtures")
	}
	archOf := map[string]string{"stories260K": "llama", "tiny-phi2": "phi2", "tiny-llama": "llama",
		"tiny-gpt2": "gpt2", "tiny-gemma": "gemma", "tiny-qwen2": "qwen2", "tiny-qwen3": "qwen3", "tiny-phi3": "phi3",
		"tiny-gemma2": "gemma2", "tiny-gemma3": "gemma3"}
	for _, p := range paths {
		base := filepath.Base(p)
		out, errOut, code := runCLI(t, "", "inspect", "--json", p)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", base, code, errOut)
		}
		var doc inspectOut
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		wantArch, longest := "", 0 // the longest matching prefix: tiny-gemma2 is not tiny-gemma
		for prefix, a := range archOf {
			if strings.HasPrefix(base, prefix) && len(prefix) > longest {
				wantArch, longest = a, len(prefix)
			}
		}
		if doc.Version != 3 || doc.Architecture != wantArch {
			t.Errorf("%s: version %d arch %q, want 3 %q", base, doc.Version, doc.Architecture, wantArch)
		}
		toks, _ := doc.Metadata["tokenizer.ggml.tokens"].([]any)
		var params int64
		names := map[string]bool{}
		for _, tn := range doc.Tensors {
			names[tn.Name] = true
			n := int64(1)
			for _, d := range tn.Shape {
				n *= d
			}
			params += n
		}
		if params != doc.Parameters {
			t.Errorf("%s: parameters %d, tensors sum to %d", base, doc.Parameters, params)
		}
		if !names["token_embd.weight"] || !names["blk.0.attn_norm.weight"] {
			t.Errorf("%s: missing token_embd.weight or blk.0.attn_norm.weight", base)
		}
		for _, tn := range doc.Tensors {
			if tn.Name == "token_embd.weight" && (len(tn.Shape) != 2 || int(tn.Shape[1]) != len(toks)) {
				t.Errorf("%s: token_embd shape %v, want [n_embd, %d]", base, tn.Shape, len(toks))
			}
		}
		// phi2 fixtures have a fused attn_qkv (oracle README); gpt2 too.
		if (wantArch == "phi2" || wantArch == "gpt2") && !names["blk.0.attn_qkv.weight"] {
			t.Errorf("%s: missing fused blk.0.attn_qkv.weight", base)
		}
		// stories260K: K and V × 5 layers × 4 KV heads × 2048 positions × head_dim 8 × 2 bytes.
		if base == "stories260K.gguf" && (doc.KVState.DefaultContext != 2048 || doc.KVState.DefaultBytes != 2*5*4*2048*8*2) {
			t.Errorf("%s: KV state %+v, want 1310720 bytes at context 2048", base, doc.KVState)
		}
		checkGolden(t, filepath.Join("testdata", "golden", "inspect", strings.TrimSuffix(base, ".gguf")+".json"), out)
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the output; inspect the change, then go test -update", path)
	}
}

// tokenize equals llama.cpp's tokenize entries for every model (tokens: parse_special off,
// with_special: on; no BOS added either way).
func TestTokenizeCommand(t *testing.T) {
	ref, err := llamacpp.Load(oracle)
	if err != nil {
		t.Fatal(err)
	}
	for file, m := range ref.Models {
		path := filepath.Join(oracle, "models", file)
		for _, c := range m.Tokenize {
			for _, special := range []bool{false, true} {
				a := []string{"tokenize", path, "--json", "--text", c.Text}
				want := c.Tokens
				if special {
					a = append(a, "--special")
					want = c.WithSpecial
				}
				out, errOut, code := runCLI(t, "", a...)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", file, code, errOut)
				}
				var got struct{ Tokens []int32 }
				json.Unmarshal([]byte(out), &got)
				if !equalIDs(got.Tokens, want) {
					t.Errorf("%s special=%v %q:\n got %v\nwant %v", file, special, c.Text, got.Tokens, want)
				}
			}
		}
	}
	// stdin when --text is absent, and the detokenize round trip.
	path := filepath.Join(oracle, "models", "stories260K.gguf")
	out, _, code := runCLI(t, "Once upon a time", "tokenize", path)
	if code != 0 {
		t.Fatal("tokenize from stdin failed")
	}
	back, _, code := runCLI(t, "", append([]string{"detokenize", path}, strings.Fields(out)...)...)
	if code != 0 || strings.TrimRight(back, "\n") != " Once upon a time" && strings.TrimRight(back, "\n") != "Once upon a time" {
		t.Errorf("detokenize(tokenize) = %q", back)
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Bad input: one line on stderr naming the file and the problem, exit status 1; usage
// mistakes exit 2.
func TestBadInputExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x01\x00\x00\x00"), 0o644)
	_, errOut, code := runCLI(t, "", "inspect", bad)
	if code != 1 || !strings.Contains(errOut, "unsupported GGUF v1, re-convert with a current llama.cpp") || !strings.Contains(errOut, bad) {
		t.Errorf("v1 file: exit %d, %q", code, errOut)
	}
	_, _, code = runCLI(t, "", "inspect")
	if code != 2 {
		t.Errorf("missing argument: exit %d, want 2", code)
	}
	_, _, code = runCLI(t, "", "inspect", "--no-such-flag", bad)
	if code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	_, errOut, code = runCLI(t, "", "detokenize", filepath.Join(oracle, "models", "stories260K.gguf"), "99999")
	if code != 1 || !strings.Contains(errOut, "outside the vocabulary") {
		t.Errorf("bad id: exit %d, %q", code, errOut)
	}
}

// inspect says what a default build makes of a GGUF's weights, by source type, as the
// build itself prints it.
func TestInspectCoreMLWeights(t *testing.T) {
	for file, want := range map[string]string{
		"tiny-llama256-q4_k_m.gguf": "Core ML weights:   16 Q4_K → blockwise int4/32 (within fp16 rounding of scales and offsets); kept fp16: 5 F32 1-D",
		"tiny-llama256-q6_k.gguf":   "Q6_K → lut+blockwise uint6/16 (within fp16 rounding of the scales)",
		"stories260K.gguf":          "Core ML weights:   all kept fp16: 37 F32, 11 F32 1-D",
	} {
		out, errOut, code := runCLI(t, "", "inspect", filepath.Join(oracle, "models", file))
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d (%s), no %q in:\n%s", file, code, errOut, want, out)
		}
	}
}
