package coreml

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
	"github.com/lilims/lilims/stages/loader/gguf"
	"github.com/lilims/lilims/stages/runtime"
)

const oracleDir = "../../../testdata/oracle"

var (
	exportMu  sync.Mutex
	exportDir string
	exported  = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coreml-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exportDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// exportPackage exports a fixture model once per test binary; tests must not modify it.
func exportPackage(t *testing.T, file string, contextLen, chunk int) string {
	t.Helper()
	exportMu.Lock()
	defer exportMu.Unlock()
	name := fmt.Sprintf("%s-c%d-n%d.mlpackage", strings.TrimSuffix(file, ".gguf"), contextLen, chunk)
	if p, ok := exported[name]; ok {
		return p
	}
	f, err := gguf.Open(filepath.Join(oracleDir, "models", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(exportDir, name)
	if err := export.Export(context.Background(), f, export.Options{ContextLength: contextLen, PrefillChunk: chunk}, out); err != nil {
		t.Fatal(err)
	}
	exported[name] = out
	return out
}

func readModel(t *testing.T, pkg string) *milpb.Model {
	t.Helper()
	p, err := mlpackage.Open(pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	return p.Model
}

// The exported tiny-phi2 package: context 64, prefill chunk 16, and the 1024-token
// vocabulary of the fixture (testdata/oracle/README.md: byte-level BPE, 1024 tokens);
// 3 layers, so 6 fp16 KV states [1, 4 heads, 64, 32 head dim] (n_embd 128 / 4 heads).
func TestInterfaceOf(t *testing.T) {
	it, err := ReadInterface(exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	if err != nil {
		t.Fatal(err)
	}
	if want := (runtime.Meta{ContextLength: 64, PrefillChunk: 16, VocabSize: 1024}); it.Meta != want {
		t.Errorf("Meta = %+v, want %+v", it.Meta, want)
	}
	for _, tc := range []struct {
		fn   *Function
		name string
		dt   DataType
		dims []int
	}{
		{&it.Prefill, "input_ids", Int32, []int{1, 16}},
		{&it.Prefill, "position_ids", Int32, []int{16}},
		{&it.Prefill, "causal_mask", Float16, []int{1, 1, 16, 64}},
		{&it.Prefill, "current_pos", Int32, []int{1}},
		{&it.Decode, "input_ids", Int32, []int{1, 1}},
		{&it.Decode, "causal_mask", Float16, []int{1, 1, 1, 64}},
	} {
		in, ok := tc.fn.Input(tc.name)
		if !ok || in.Type != tc.dt || !slices.Equal(in.Shape, tc.dims) {
			t.Errorf("%s %s = %+v, want %v %v", tc.fn.Name, tc.name, in, tc.dt, tc.dims)
		}
	}
	if lg, _ := it.Decode.Output("logits"); lg.Type != Float32 || !slices.Equal(lg.Shape, []int{1, 1, 1024}) {
		t.Errorf("decode logits = %+v, want float32 [1 1 1024]", lg)
	}
	if len(it.Decode.States) != 6 {
		t.Errorf("%d states, want 6", len(it.Decode.States))
	}
	for _, s := range it.Decode.States {
		if s.Type != Float16 || !slices.Equal(s.Shape, []int{1, 4, 64, 32}) {
			t.Errorf("state %s = %v %v, want float16 [1 4 64 32]", s.Name, s.Type, s.Shape)
		}
	}
}

// Descriptions that break the contract are refused with the function and feature named.
func TestInterfaceErrors(t *testing.T) {
	base := readModel(t, exportPackage(t, "tiny-phi2-f16.gguf", 64, 16))
	fn := func(m *milpb.Model, name string) *milpb.FunctionDescription {
		for _, f := range m.GetDescription().GetFunctions() {
			if f.GetName() == name {
				return f
			}
		}
		t.Fatalf("no function %s", name)
		return nil
	}
	feature := func(list []*milpb.FeatureDescription, name string) *milpb.ArrayFeatureType {
		for _, f := range list {
			if f.GetName() == name {
				if a := f.GetType().GetMultiArrayType(); a != nil {
					return a
				}
				return f.GetType().GetStateType().GetArrayType()
			}
		}
		t.Fatalf("no feature %s", name)
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func(m *milpb.Model)
		want string
	}{
		{"no functions", func(m *milpb.Model) { m.Description.Functions = nil }, `no function "prefill" (have []`},
		{"no decode", func(m *milpb.Model) { fn(m, "decode").Name = "generate" }, `no function "decode"`},
		{"mask as int32", func(m *milpb.Model) {
			feature(fn(m, "prefill").Input, "causal_mask").DataType = milpb.ArrayFeatureType_INT32
		}, `function prefill: input "causal_mask" is int32, want float16`},
		{"ids as float", func(m *milpb.Model) {
			feature(fn(m, "decode").Input, "input_ids").DataType = milpb.ArrayFeatureType_FLOAT32
		}, `function decode: input "input_ids" is float32, want int32`},
		{"positions shape", func(m *milpb.Model) {
			feature(fn(m, "prefill").Input, "position_ids").Shape = []int64{15}
		}, "position_ids has shape [15], want [16]"},
		{"logits shape", func(m *milpb.Model) {
			feature(fn(m, "decode").Output, "logits").Shape = []int64{1, 2, 1024}
		}, "logits have shape [1 2 1024], want [1, 1, V]"},
		{"vocab differs", func(m *milpb.Model) {
			feature(fn(m, "decode").Output, "logits").Shape = []int64{1, 1, 1000}
		}, "function decode: logits have 1000 entries per token, the model's vocabulary (lilims.vocab_size) has 1024"},
		{"decode of two", func(m *milpb.Model) {
			d := fn(m, "decode")
			feature(d.Input, "input_ids").Shape = []int64{1, 2}
			feature(d.Input, "position_ids").Shape = []int64{2}
			feature(d.Input, "causal_mask").Shape = []int64{1, 1, 2, 64}
			feature(d.Output, "logits").Shape = []int64{1, 2, 1024}
		}, "function decode: takes 2 tokens, want 1"},
		{"state context", func(m *milpb.Model) {
			feature(fn(m, "decode").State, fn(m, "decode").State[0].GetName()).Shape = []int64{1, 4, 32, 32}
		}, "function decode: the context (state k_cache_0's third dimension) is 32, another function declares 64"},
		{"states differ", func(m *milpb.Model) {
			fn(m, "decode").State[0].Name = "k_cache_7"
		}, "prefill and decode declare different states; one state must serve both"},
		{"negative dimension", func(m *milpb.Model) {
			feature(fn(m, "prefill").Input, "input_ids").Shape = []int64{1, -16}
		}, `input "input_ids": dimension 1 is -16`},
		{"no state", func(m *milpb.Model) {
			fn(m, "prefill").State = nil
			fn(m, "decode").State = nil
		}, "declares no KV state"},
		{"extra input", func(m *milpb.Model) {
			p := fn(m, "prefill")
			p.Input = append(p.Input, proto.Clone(p.Input[0]).(*milpb.FeatureDescription))
			p.Input[len(p.Input)-1].Name = "temperature"
		}, "has 5 inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := proto.Clone(base).(*milpb.Model)
			tc.edit(m)
			_, err := InterfaceOf(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// coremltools' own packages (testdata/oracle/coreml) are valid Core ML models but not
// lilims packages: they carry no contract version.
func TestInterfaceNotLilims(t *testing.T) {
	for _, tc := range []struct{ pkg, want string }{
		{"linear_fp16", "not a lilims package: no lilims.contract metadata (this lilims runs contract version 3)"},
		{"multifunction_prefill_decode", "not a lilims package: no lilims.contract metadata"},
		{"does_not_exist", "no such file"},
	} {
		_, err := ReadInterface(filepath.Join(oracleDir, "coreml", tc.pkg+".mlpackage"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.pkg, err, tc.want)
		}
	}
}
