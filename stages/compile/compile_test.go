package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/milpb"
)

const coremlDir = "../../testdata/oracle/coreml"

// Packages written by Apple's coremltools are valid by definition: the validator must accept
// every one.
func TestValidateCoremltoolsPackages(t *testing.T) {
	pkgs, _ := filepath.Glob(filepath.Join(coremlDir, "*.mlpackage"))
	if len(pkgs) < 6 {
		t.Fatalf("want the 6 oracle packages, found %d", len(pkgs))
	}
	for _, p := range pkgs {
		if err := Validate(p); err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
}

// copyPackage copies an oracle package so that a test can break it.
func copyPackage(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(coremlDir, name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func editModel(t *testing.T, pkg string, edit func(m *milpb.Model)) {
	t.Helper()
	path := filepath.Join(pkg, "Data", "com.apple.CoreML", "model.mlmodel")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &milpb.Model{}
	if err := proto.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if raw, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Hand-broken programs are rejected with a message naming what is wrong.
func TestValidateRejectsBrokenPrograms(t *testing.T) {
	cases := []struct {
		name string
		edit func(m *milpb.Model)
		want string
	}{
		{"renamed described input", func(m *milpb.Model) {
			m.Description.Input[0].Name = "not_x"
		}, `input "not_x" is described but not an input of the program`},
		{"shape mismatch", func(m *milpb.Model) {
			m.Description.Input[0].Type.GetMultiArrayType().Shape[1] = 65
		}, "dimension 1 is 65 in the description"},
		{"op bound to an unknown name", func(m *milpb.Model) {
			fn := m.GetMlProgram().Functions["main"]
			ops := fn.BlockSpecializations[fn.Opset].Operations
			for _, op := range ops {
				if op.Type == "linear" {
					op.Inputs["x"].Arguments[0].Binding = &milpb.Argument_Binding_Name{Name: "nowhere"}
				}
			}
		}, `"nowhere"`},
		{"unknown op", func(m *milpb.Model) {
			fn := m.GetMlProgram().Functions["main"]
			for _, op := range fn.BlockSpecializations[fn.Opset].Operations {
				if op.Type == "linear" {
					op.Type = "linear_v9"
				}
			}
		}, "linear_v9"},
	}
	for _, c := range cases {
		pkg := copyPackage(t, "linear_fp16.mlpackage")
		editModel(t, pkg, c.edit)
		err := Validate(pkg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A missing weight blob is refused when the package is opened.
	pkg := copyPackage(t, "linear_fp16.mlpackage")
	os.Remove(filepath.Join(pkg, "Data", "com.apple.CoreML", "weights", "weight.bin"))
	if err := Validate(pkg); err == nil || !strings.Contains(err.Error(), "weight.bin") {
		t.Errorf("missing weight.bin: %v", err)
	}
}

func TestCompilerArgs(t *testing.T) {
	got := strings.Join(compilerArgs("/m/x.mlpackage", "/out"), " ")
	if got != "coremlcompiler compile /m/x.mlpackage /out" {
		t.Errorf("xcrun arguments %q", got)
	}
}
