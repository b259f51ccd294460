package compile

import (
	"fmt"
	"os"
	"testing"

	"github.com/lilims/lilims/stages/export/contract"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// exported writes stories260K (n_vocab 512) as one package, context 32, prefill chunk 8.
func exported(t *testing.T) string { return exportStories(t, 1, "model.mlpackage") }

func output(m *milpb.Model, fn, name string) *milpb.ArrayFeatureType {
	for _, fd := range m.GetDescription().GetFunctions() {
		if fd.GetName() != fn {
			continue
		}
		for _, o := range fd.GetOutput() {
			if o.GetName() == name {
				return o.GetType().GetMultiArrayType()
			}
		}
	}
	panic("no output " + name)
}

// Packages that coremltools or Core ML refuse, made by breaking one rule of a good export,
// fail the validator with exactly these problems.
func TestValidateExportRules(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, pkg string) []string // returns the problems expected
	}{
		// coremltools describes each output with its program value's dtype (MIL→proto
		// conversion); the program casts logits to fp32.
		{"logits described fp16", func(t *testing.T, pkg string) []string {
			editModel(t, pkg, func(m *milpb.Model) {
				output(m, "decode", contract.Logits).DataType = milpb.ArrayFeatureType_FLOAT16
			})
			return []string{
				`function decode: output "logits": described as FLOAT16, the program declares FLOAT32`,
				`function decode: output "logits" is float16, want float32`,
			}
		}},
		{"logits not n_vocab", func(t *testing.T, pkg string) []string {
			editModel(t, pkg, func(m *milpb.Model) { output(m, "prefill", contract.Logits).Shape[2] = 500 })
			return []string{
				`function prefill: output "logits": dimension 2 is 500 in the description, 512 in the program`,
				`function prefill: logits have 500 entries per token, the model's vocabulary (lilims.vocab_size) has 512`,
				`function decode: the logits' last dimension is 512, another function declares 500`,
			}
		}},
		{"manifest item missing", func(t *testing.T, pkg string) []string {
			p, err := mlpackage.Open(pkg)
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
			host, ok := p.ItemPath(contract.HostAuthor, contract.HostName)
			if !ok {
				t.Fatal("the export lists no host file")
			}
			if err := os.Remove(host); err != nil {
				t.Fatal(err)
			}
			var id string
			for k, item := range p.Manifest.ItemInfoEntries {
				if item.Name == contract.HostName {
					id = k
				}
			}
			return []string{fmt.Sprintf("Manifest.json: item %s (Data/ai.lilims/host.gguf) does not exist", id)}
		}},
		{"older contract", func(t *testing.T, pkg string) []string {
			editModel(t, pkg, func(m *milpb.Model) { m.Description.Metadata.UserDefined[contract.KeyVersion] = "1" })
			return []string{"package follows lilims contract version 1, this lilims runs version 3: re-export it from its GGUF"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg := exported(t)
			if err := ValidateExport(pkg); err != nil {
				t.Fatalf("the good export: %v", err)
			}
			want := tt.spoil(t, pkg)
			err := ValidateExport(pkg)
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			if fmt.Sprint(ve.Problems) != fmt.Sprint(want) {
				t.Errorf("problems\n  %q\nwant\n  %q", ve.Problems, want)
			}
		})
	}
}
