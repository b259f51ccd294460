package contract_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
)

const stories = "../../../testdata/oracle/models/stories260K.gguf"

var (
	exportOnce sync.Map // chunks → []contract.Description
)

// described exports stories260K (5 layers, n_vocab 512, n_embd 64) at context 32 and prefill
// chunk 8 into chunks packages and returns their descriptions; tests get a deep copy.
func described(t *testing.T, chunks int) []contract.Description {
	t.Helper()
	if d, ok := exportOnce.Load(chunks); ok {
		return clone(d.([]contract.Description))
	}
	f, err := gguf.Open(stories)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(t.TempDir(), "model")
	if err := export.Export(context.Background(), f, export.Options{ContextLength: 32, PrefillChunk: 8, Chunks: chunks}, out); err != nil {
		t.Fatal(err)
	}
	pkgs, err := mlpackage.PackagesAt(out)
	if err != nil {
		t.Fatal(err)
	}
	var ds []contract.Description
	for _, p := range pkgs {
		pkg, err := mlpackage.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, contract.Describe(pkg.Model))
		pkg.Close()
	}
	exportOnce.Store(chunks, ds)
	return clone(ds)
}

func clone(ds []contract.Description) []contract.Description {
	out := make([]contract.Description, len(ds))
	for i, d := range ds {
		md := map[string]string{}
		for k, v := range d.Metadata {
			md[k] = v
		}
		out[i].Metadata = md
		for _, f := range d.Functions {
			cf := contract.Function{Name: f.Name}
			cp := func(fs []contract.Feature) []contract.Feature {
				r := make([]contract.Feature, len(fs))
				for j, x := range fs {
					r[j] = contract.Feature{Name: x.Name, Type: x.Type, Shape: append([]int(nil), x.Shape...)}
				}
				return r
			}
			cf.Inputs, cf.Outputs, cf.States = cp(f.Inputs), cp(f.Outputs), cp(f.States)
			out[i].Functions = append(out[i].Functions, cf)
		}
	}
	return out
}

func fn(d *contract.Description, name string) *contract.Function {
	for i := range d.Functions {
		if d.Functions[i].Name == name {
			return &d.Functions[i]
		}
	}
	panic("no function " + name)
}

func feature(fs []contract.Feature, name string) *contract.Feature {
	for i := range fs {
		if fs[i].Name == name {
			return &fs[i]
		}
	}
	panic("no feature " + name)
}

// A good export passes and gives the Meta it was exported with.
func TestCheckExport(t *testing.T) {
	for _, chunks := range []int{1, 2} {
		meta, errs := contract.Check(described(t, chunks))
		if len(errs) > 0 {
			t.Fatalf("%d chunks: %v", chunks, errs)
		}
		if want := (contract.Meta{ContextLength: 32, PrefillChunk: 8, VocabSize: 512}); meta != want {
			t.Errorf("%d chunks: Meta %+v, want %+v", chunks, meta, want)
		}
	}
}

// Each rule, broken in a good export, gives exactly its error.
func TestCheckRules(t *testing.T) {
	tests := []struct {
		name   string
		chunks int
		edit   func(ds []contract.Description)
		want   []string
	}{
		{"older version", 1, func(ds []contract.Description) { ds[0].Metadata[contract.KeyVersion] = "1" },
			[]string{"package follows lilims contract version 1, this lilims runs version 3: re-export it from its GGUF"}},
		{"no version", 1, func(ds []contract.Description) { delete(ds[0].Metadata, contract.KeyVersion) },
			[]string{"not a lilims package: no lilims.contract metadata (this lilims runs contract version 3)"}},
		{"version of one chunk", 2, func(ds []contract.Description) { ds[1].Metadata[contract.KeyVersion] = "4" },
			[]string{"chunk 1: package follows lilims contract version 4, this lilims runs version 3: re-export it from its GGUF"}},
		{"no decode", 1, func(ds []contract.Description) { fn(&ds[0], "decode").Name = "generate" },
			[]string{`no function "decode" (have [prefill generate]; a lilims package has prefill and decode)`}},
		{"mask as int32", 1, func(ds []contract.Description) {
			feature(fn(&ds[0], "prefill").Inputs, contract.CausalMask).Type = contract.Int32
		}, []string{`function prefill: input "causal_mask" is int32, want float16`}},
		{"positions shape", 1, func(ds []contract.Description) {
			feature(fn(&ds[0], "prefill").Inputs, contract.PositionIDs).Shape = []int{7}
		}, []string{"function prefill: position_ids has shape [7], want [8]"}},
		{"extra input", 1, func(ds []contract.Description) {
			f := fn(&ds[0], "decode")
			f.Inputs = append(f.Inputs, contract.Feature{Name: "temperature", Type: contract.Float16, Shape: []int{1}})
		}, []string{"function decode: has 5 inputs, want input_ids, position_ids, causal_mask and current_pos"}},
		{"negative dimension", 1, func(ds []contract.Description) {
			feature(fn(&ds[0], "prefill").Inputs, contract.InputIDs).Shape[1] = -8
		}, []string{`function prefill: input "input_ids": dimension 1 is -8`}},
		{"decode of two", 1, func(ds []contract.Description) {
			f := fn(&ds[0], "decode")
			feature(f.Inputs, contract.InputIDs).Shape = []int{1, 2}
			feature(f.Inputs, contract.PositionIDs).Shape = []int{2}
			feature(f.Inputs, contract.CausalMask).Shape = []int{1, 1, 2, 32}
			feature(f.Outputs, contract.Logits).Shape = []int{1, 2, 512}
		}, []string{"function decode: takes 2 tokens, want 1"}},
		// coremltools describes each output with the program's dtype; the contract's logits
		// are fp32.
		{"logits fp16", 1, func(ds []contract.Description) {
			feature(fn(&ds[0], "decode").Outputs, contract.Logits).Type = contract.Float16
		}, []string{`function decode: output "logits" is float16, want float32`}},
		{"logits not n_vocab", 1, func(ds []contract.Description) {
			for _, f := range []string{"prefill", "decode"} {
				feature(fn(&ds[0], f).Outputs, contract.Logits).Shape[2] = 511
			}
		}, []string{
			"function prefill: logits have 511 entries per token, the model's vocabulary (lilims.vocab_size) has 512",
			"function decode: logits have 511 entries per token, the model's vocabulary (lilims.vocab_size) has 512"}},
		{"logits shape", 1, func(ds []contract.Description) {
			feature(fn(&ds[0], "decode").Outputs, contract.Logits).Shape = []int{1, 512}
		}, []string{"function decode: logits have shape [1 512], want [1, 1, V]"}},
		{"state context", 1, func(ds []contract.Description) {
			fn(&ds[0], "decode").States[0].Shape[2] = 16
		}, []string{"function decode: the context (state k_cache_0's third dimension) is 16, another function declares 32",
			"prefill and decode declare different states; one state must serve both"}},
		{"state name", 1, func(ds []contract.Description) {
			fn(&ds[0], "prefill").States[0].Name = "kv0"
		}, []string{`function prefill: state "kv0" is not named k_cache_<layer> or v_cache_<layer>`,
			"prefill and decode declare different states; one state must serve both"}},
		{"state fp32", 1, func(ds []contract.Description) {
			for _, f := range []string{"prefill", "decode"} {
				fn(&ds[0], f).States[1].Type = contract.Float32
			}
		}, []string{`function prefill: state "v_cache_0" is float32 [1 4 32 8], want float16 [1, H, C, D]`,
			`function decode: state "v_cache_0" is float32 [1 4 32 8], want float16 [1, H, C, D]`}},
		{"chain dtype", 2, func(ds []contract.Description) {
			feature(fn(&ds[1], "decode").Inputs, contract.HiddenStates).Type = contract.Float32
		}, []string{"chunk 1 function decode: hidden_states is float32 [1 1 64], the previous chunk outputs float16 [1 1 64]"}},
		{"chain swapped", 2, func(ds []contract.Description) { ds[0], ds[1] = ds[1], ds[0] },
			[]string{
				`chunk 0 function prefill: no input "input_ids"`,
				`chunk 0 function prefill: output "logits" belongs to the last chunk only`,
				`chunk 0 function prefill: no output "hidden_states_out": every chunk but the last hands its hidden state on`,
				`chunk 0 function decode: no input "input_ids"`,
				`chunk 0 function decode: output "logits" belongs to the last chunk only`,
				`chunk 0 function decode: no output "hidden_states_out": every chunk but the last hands its hidden state on`,
				`chunk 1 function prefill: input "input_ids" belongs to the first chunk only`,
				`chunk 1 function prefill: no input "hidden_states": every chunk but the first takes the previous one's hidden_states_out`,
				`chunk 1 function prefill: no output "logits"`,
				`chunk 1 function decode: input "input_ids" belongs to the first chunk only`,
				`chunk 1 function decode: no input "hidden_states": every chunk but the first takes the previous one's hidden_states_out`,
				`chunk 1 function decode: no output "logits"`,
			}},
		{"last chunk without logits", 2, func(ds []contract.Description) {
			feature(fn(&ds[1], "decode").Outputs, contract.Logits).Name = contract.HiddenStatesOut
		}, []string{`chunk 1 function decode: no output "logits"`}},
		// The ANE layout splits a vocabulary over 65536: one logits output 70000 wide is refused.
		{"ane logits over 65536", 1, func(ds []contract.Description) {
			ds[0].Metadata[contract.KeyLayout] = "ane"
			ds[0].Metadata[contract.KeyVocabSize] = "70000"
			fn(&ds[0], "decode").Outputs[0].Shape = []int{1, 1, 70000}
			fn(&ds[0], "prefill").Outputs[0].Shape = []int{1, 8, 70000}
		}, []string{
			`function prefill: output "logits" has 70000 entries per token; the ane layout keeps every dimension ≤ 65536 and splits the logits into logits_0 … logits_1`,
			`function prefill: no output "logits_0"`, `function prefill: no output "logits_1"`, `function prefill: has 1 outputs, want logits_0, logits_1`,
			`function decode: output "logits" has 70000 entries per token; the ane layout keeps every dimension ≤ 65536 and splits the logits into logits_0 … logits_1`,
			`function decode: no output "logits_0"`, `function decode: no output "logits_1"`, `function decode: has 1 outputs, want logits_0, logits_1`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := described(t, tc.chunks)
			tc.edit(ds)
			_, errs := contract.Check(ds)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			for _, w := range tc.want {
				if !contains(got, w) {
					t.Errorf("errors do not include %q:\n  %s", w, strings.Join(got, "\n  "))
				}
			}
			if len(got) > len(tc.want) {
				t.Errorf("%d errors, want %d:\n  %s", len(got), len(tc.want), strings.Join(got, "\n  "))
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A host stops at the first problem; a version mismatch is one line naming both versions.
func TestCheckOneVersion(t *testing.T) {
	ds := described(t, 1)
	ds[0].Metadata[contract.KeyVersion] = "1"
	_, err := contract.CheckOne(ds)
	var ve *contract.VersionError
	if !errors.As(err, &ve) || ve.Have != "1" || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v, want a one-line VersionError naming version 1", err)
	}
}

// VocabParts cuts a vocabulary into the fewest parts of at most 65536 rows, equal and
// rounded up to 32 but for the last; JoinLogits puts each token's parts back side by side.
func TestVocabParts(t *testing.T) {
	for _, tc := range []struct {
		v    int
		want []int
	}{
		{512, []int{0, 512}}, {65536, []int{0, 65536}}, {70000, []int{0, 35008, 70000}},
		{128256, []int{0, 64128, 128256}}, {151936, []int{0, 50656, 101312, 151936}},
		{262144, []int{0, 65536, 131072, 196608, 262144}},
	} {
		if got := contract.VocabParts(tc.v); !slices.Equal(got, tc.want) {
			t.Errorf("VocabParts(%d) = %v, want %v", tc.v, got, tc.want)
		}
	}
	// Two tokens, parts of widths 2 and 1: rows [a0 a1 | b0] and [a2 a3 | b1].
	dst := make([]float32, 6)
	contract.JoinLogits(dst, 2, [][]float32{{1, 2, 3, 4}, {10, 20}})
	if want := []float32{1, 2, 10, 3, 4, 20}; !slices.Equal(dst, want) {
		t.Errorf("JoinLogits = %v, want %v", dst, want)
	}
	if got := contract.LogitsOutputs("standard", 262144); !slices.Equal(got, []string{"logits"}) {
		t.Errorf("standard layout: logits outputs %v, want [logits]", got)
	}
}
