package mlpackage_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lilims/lilims/stages/export/mil/blob"
	"github.com/lilims/lilims/stages/export/mil/milpb"
	"github.com/lilims/lilims/stages/export/mlpackage"
)

// oracleDir holds .mlpackage files written by coremltools 9.1 (see its README.txt).
const oracleDir = "../../../testdata/oracle/coreml"

func TestOpenOracle(t *testing.T) {
	tests := []struct {
		pkg     string
		files   []string // blob files the program refers to
		blobs   int      // blob count in weight.bin, from README.txt's layout
		version int32
	}{
		{"linear_fp16", []string{mlpackage.WeightRef}, 2, 9},
		{"linear_int4_blockwise", []string{mlpackage.WeightRef}, 4, 9},
		{"linear_uint4_blockwise", []string{mlpackage.WeightRef}, 4, 9},
		{"linear_lut4", []string{mlpackage.WeightRef}, 3, 9},
		{"multifunction_prefill_decode", []string{mlpackage.WeightRef}, 2, 9},
		// No blobs, and git does not keep its empty weights/ directory.
		{"kv_cache_state", nil, 0, 9},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			p, err := mlpackage.Open(filepath.Join(oracleDir, tc.pkg+".mlpackage"))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Model.GetSpecificationVersion() != tc.version {
				t.Errorf("specificationVersion %d, want %d", p.Model.GetSpecificationVersion(), tc.version)
			}
			if p.Manifest.FileFormatVersion != "1.0.0" || len(p.Manifest.ItemInfoEntries) != 2 {
				t.Errorf("manifest %+v", p.Manifest)
			}
			if got := p.WeightFiles(); !slices.Equal(got, tc.files) {
				t.Errorf("weight files %v, want %v", got, tc.files)
			}
			for _, f := range tc.files {
				r, err := p.Weights(f)
				if err != nil {
					t.Fatal(err)
				}
				if r.Count() != tc.blobs {
					t.Errorf("%s holds %d blobs, want %d", f, r.Count(), tc.blobs)
				}
			}
		})
	}
}

// TestOracleTensor reads the fp16 bias of linear_fp16 through Package.Tensor.
func TestOracleTensor(t *testing.T) {
	p, err := mlpackage.Open(filepath.Join(oracleDir, "linear_fp16.mlpackage"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	block := p.Model.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"]
	i := slices.IndexFunc(block.GetOperations(), func(op *milpb.Operation) bool {
		return op.GetOutputs()[0].GetName() == "y_bias_0"
	})
	if i < 0 {
		t.Fatal("no y_bias_0 const")
	}
	data, err := p.Tensor(block.GetOperations()[i].GetAttributes()["val"])
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(oracleDir, "linear_fp16.ref", "extra_bias_fp16.npy"))
	if err != nil {
		t.Fatal(err)
	}
	// The bias is 32 fp16 values: 64 bytes, the tail of the .npy file.
	if len(data) != 64 || string(data) != string(want[len(want)-64:]) {
		t.Errorf("bias bytes % x, want the .npy payload", data)
	}
}

// testModel returns a one-function program y = add(x, c) whose constant c
// (16 fp16 values) lives at offset in WeightRef.
func testModel(offset uint64) *milpb.Model {
	tensor := func(dt milpb.DataType, dims ...uint64) *milpb.ValueType {
		tt := &milpb.TensorType{DataType: dt, Rank: int64(len(dims))}
		for _, d := range dims {
			tt.Dimensions = append(tt.Dimensions, &milpb.Dimension{Dimension: &milpb.Dimension_Constant{Constant: &milpb.Dimension_ConstantDimension{Size: d}}})
		}
		return &milpb.ValueType{Type: &milpb.ValueType_TensorType{TensorType: tt}}
	}
	name := func(s string) *milpb.Value {
		return &milpb.Value{
			Type: tensor(milpb.DataType_STRING),
			Value: &milpb.Value_ImmediateValue_{ImmediateValue: &milpb.Value_ImmediateValue{
				Value: &milpb.Value_ImmediateValue_Tensor{Tensor: &milpb.TensorValue{
					Value: &milpb.TensorValue_Strings{Strings: &milpb.TensorValue_RepeatedStrings{Values: []string{s}}}}}}},
		}
	}
	arg := func(n string) *milpb.Argument {
		return &milpb.Argument{Arguments: []*milpb.Argument_Binding{{Binding: &milpb.Argument_Binding_Name{Name: n}}}}
	}
	feature := func(n string) *milpb.FeatureDescription {
		return &milpb.FeatureDescription{Name: n, Type: &milpb.FeatureType{Type: &milpb.FeatureType_MultiArrayType{
			MultiArrayType: &milpb.ArrayFeatureType{Shape: []int64{16}, DataType: milpb.ArrayFeatureType_FLOAT16}}}}
	}
	return &milpb.Model{
		SpecificationVersion: 9,
		Description:          &milpb.ModelDescription{Input: []*milpb.FeatureDescription{feature("x")}, Output: []*milpb.FeatureDescription{feature("y")}},
		Type: &milpb.Model_MlProgram{MlProgram: &milpb.Program{
			Version: 1,
			Functions: map[string]*milpb.Function{"main": {
				Inputs: []*milpb.NamedValueType{{Name: "x", Type: tensor(milpb.DataType_FLOAT16, 16)}},
				Opset:  "CoreML8",
				BlockSpecializations: map[string]*milpb.Block{"CoreML8": {
					Outputs: []string{"y"},
					Operations: []*milpb.Operation{
						{
							Type:    "const",
							Outputs: []*milpb.NamedValueType{{Name: "c", Type: tensor(milpb.DataType_FLOAT16, 16)}},
							Attributes: map[string]*milpb.Value{"name": name("c"), "val": {
								Type:  tensor(milpb.DataType_FLOAT16, 16),
								Value: &milpb.Value_BlobFileValue_{BlobFileValue: &milpb.Value_BlobFileValue{FileName: mlpackage.WeightRef, Offset: offset}},
							}},
						},
						{
							Type:       "add",
							Inputs:     map[string]*milpb.Argument{"x": arg("x"), "y": arg("c")},
							Outputs:    []*milpb.NamedValueType{{Name: "y", Type: tensor(milpb.DataType_FLOAT16, 16)}},
							Attributes: map[string]*milpb.Value{"name": name("y")},
						},
					},
				}},
			}},
		}},
	}
}

// writeTestPackage writes testModel with 16 fp16 ones (0x3c00) as c.
func writeTestPackage(t *testing.T, dir string) *milpb.Model {
	t.Helper()
	model := testModel(0)
	err := mlpackage.Write(dir, model, func(w *blob.Writer) error {
		ones := make([]byte, 32)
		for i := 0; i < 16; i++ {
			binary.LittleEndian.PutUint16(ones[2*i:], 0x3c00)
		}
		off, err := w.Add(blob.Float16, ones, 16)
		if err != nil {
			return err
		}
		// Offsets are known only now: fill them in before Write marshals.
		ops := model.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"].GetOperations()
		ops[0].GetAttributes()["val"].GetBlobFileValue().Offset = off
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return model
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestWriteOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "add.mlpackage")
	model := writeTestPackage(t, dir)

	p, err := mlpackage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !proto.Equal(p.Model, model) {
		t.Error("opened model differs from the written one")
	}
	// The first blob's metadata follows the 64-byte header.
	c := p.Model.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"].GetOperations()[0].GetAttributes()["val"]
	if off := c.GetBlobFileValue().GetOffset(); off != 64 {
		t.Errorf("const offset %d, want 64", off)
	}
	data, err := p.Tensor(c)
	if err != nil || len(data) != 32 || binary.LittleEndian.Uint16(data[30:]) != 0x3c00 {
		t.Errorf("const payload % x, %v; want 16 fp16 ones", data, err)
	}

	// Manifest: version 1.0.0, two items under content-derived UUIDs, root = the model.
	man := p.Manifest
	if man.FileFormatVersion != "1.0.0" || len(man.ItemInfoEntries) != 2 {
		t.Fatalf("manifest %+v", man)
	}
	for id, item := range man.ItemInfoEntries {
		if !uuidRE.MatchString(id) {
			t.Errorf("identifier %q is not a version-8 (content-derived) UUID", id)
		}
		if item.Author != mlpackage.Author {
			t.Errorf("item %s author %q", id, item.Author)
		}
	}
	root := man.ItemInfoEntries[man.RootModelIdentifier]
	if root.Path != "com.apple.CoreML/model.mlmodel" || root.Name != "model.mlmodel" {
		t.Errorf("root item %+v", root)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "Manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"fileFormatVersion", "itemInfoEntries", "rootModelIdentifier"} {
		if _, ok := generic[key]; !ok {
			t.Errorf("Manifest.json lacks %q", key)
		}
	}

	// Writing the same model again gives the same identifiers: packages are reproducible.
	writeTestPackage(t, dir)
	p2, err := mlpackage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.Manifest.RootModelIdentifier != man.RootModelIdentifier {
		t.Error("rewriting the same model changed the root identifier")
	}
	assertNoTemp(t, filepath.Dir(dir), "add.mlpackage")
}

func TestWriteNoWeights(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty.mlpackage")
	model := &milpb.Model{SpecificationVersion: 9, Type: &milpb.Model_MlProgram{MlProgram: &milpb.Program{Version: 1}}}
	if err := mlpackage.Write(dir, model, nil); err != nil {
		t.Fatal(err)
	}
	// Like coremltools, an empty weights directory is still created.
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(mlpackage.WeightsDir)))
	if err != nil || len(entries) != 0 {
		t.Errorf("weights dir: %v entries, %v; want empty", len(entries), err)
	}
	p, err := mlpackage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// assertNoTemp checks that dir holds only the listed entries: no temporary
// directories survive a Write.
func assertNoTemp(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "bad.mlpackage")
	boom := errors.New("quantizer failed")
	err := mlpackage.Write(dir, testModel(64), func(w *blob.Writer) error {
		if _, err := w.Add(blob.Float16, make([]byte, 32), 16); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write error %v, want it to wrap the callback's", err)
	}
	assertNoTemp(t, parent)

	// A failed rewrite keeps the previous package intact.
	model := writeTestPackage(t, dir)
	if err := mlpackage.Write(dir, testModel(64), func(*blob.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Write error %v", err)
	}
	assertNoTemp(t, parent, "bad.mlpackage")
	p, err := mlpackage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !proto.Equal(p.Model, model) {
		t.Error("failed rewrite changed the package")
	}
}

// copyPackage copies an oracle package into a temporary directory.
func copyPackage(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(oracleDir, name+".mlpackage")
	dst := filepath.Join(t.TempDir(), name+".mlpackage")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
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

func TestOpenErrors(t *testing.T) {
	weights := filepath.FromSlash(mlpackage.WeightsDir)
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		mention string // the error must name this
	}{
		{"missing manifest", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "Manifest.json"))
		}, "Manifest.json"},
		{"bad manifest json", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "Manifest.json"), []byte("{"), 0o644)
		}, "Manifest.json"},
		{"newer manifest version", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["fileFormatVersion"] = "2.0.0" })
		}, "2.0.0"},
		{"unknown root", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["rootModelIdentifier"] = "nope" })
		}, "nope"},
		{"item path escapes", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) {
				root := m["rootModelIdentifier"].(string)
				m["itemInfoEntries"].(map[string]any)[root].(map[string]any)["path"] = "../../etc/passwd"
			})
		}, "leaves the package"},
		{"missing model file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, filepath.FromSlash(mlpackage.ModelFile)))
		}, "model.mlmodel"},
		{"corrupt model file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, filepath.FromSlash(mlpackage.ModelFile)), []byte{0xff, 0xff, 0xff}, 0o644)
		}, "model.mlmodel"},
		{"renamed weights", func(t *testing.T, dir string) {
			os.Rename(filepath.Join(dir, weights, "weight.bin"), filepath.Join(dir, weights, "weights.bin"))
		}, "weight.bin"},
		{"truncated weights", func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, weights, "weight.bin"), 1000)
		}, "weight.bin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyPackage(t, "linear_fp16")
			tc.damage(t, dir)
			p, err := mlpackage.Open(dir)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

// TestOpenTypeMismatch: a program declaring fp32 for a blob that stores fp16
// is rejected at Open (Core ML rejects it at load).
func TestOpenTypeMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m.mlpackage")
	model := testModel(64)
	model.GetMlProgram().GetFunctions()["main"].GetBlockSpecializations()["CoreML8"].GetOperations()[0].
		GetAttributes()["val"].GetType().GetTensorType().DataType = milpb.DataType_FLOAT32
	err := mlpackage.Write(dir, model, func(w *blob.Writer) error {
		_, err := w.Add(blob.Float16, make([]byte, 32), 16)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := mlpackage.Open(dir); err == nil {
		p.Close()
		t.Fatal("Open accepted an fp32 const stored as an fp16 blob")
	} else if !strings.Contains(err.Error(), "op const c") || !strings.Contains(err.Error(), "offset 64") {
		t.Errorf("error %q should name the op and the blob offset", err)
	}
}

func editManifest(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "Manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// An extra item is written under Data/<author>/<name> and listed in the manifest; a listed
// item that is missing is what Core ML's package reader refuses ("Item does not exist for
// identifier", coremltools modelpackage/src/ModelPackage.cpp), and CheckItems names it.
func TestItems(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "items.mlpackage")
	item := mlpackage.Item{Author: "ai.example", Name: "notes.txt", Description: "notes", Data: []byte("hello")}
	model := &milpb.Model{SpecificationVersion: 9, Type: &milpb.Model_MlProgram{MlProgram: &milpb.Program{Version: 1}}}
	if err := mlpackage.Write(dir, model, nil, item); err != nil {
		t.Fatal(err)
	}
	p, err := mlpackage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	where, ok := p.ItemPath("ai.example", "notes.txt")
	if !ok || where != filepath.Join(dir, "Data", "ai.example", "notes.txt") {
		t.Fatalf("ItemPath = %q, %v", where, ok)
	}
	if data, err := os.ReadFile(where); err != nil || string(data) != "hello" {
		t.Errorf("item holds %q, %v", data, err)
	}
	if len(p.Manifest.ItemInfoEntries) != 3 {
		t.Errorf("%d manifest items, want model, weights and the extra one", len(p.Manifest.ItemInfoEntries))
	}
	if errs := p.CheckItems(); len(errs) != 0 {
		t.Errorf("CheckItems on a whole package: %v", errs)
	}
	if err := os.Remove(where); err != nil {
		t.Fatal(err)
	}
	var id string
	for k, it := range p.Manifest.ItemInfoEntries {
		if it.Name == "notes.txt" {
			id = k
		}
	}
	errs := p.CheckItems()
	if want := "Manifest.json: item " + id + " (Data/ai.example/notes.txt) does not exist"; len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("CheckItems = %v, want [%s]", errs, want)
	}
	// An item name that would leave its author's directory is refused before anything is written.
	bad := mlpackage.Item{Author: "ai.example", Name: "../escape", Data: []byte("x")}
	if err := mlpackage.Write(filepath.Join(t.TempDir(), "bad.mlpackage"), model, nil, bad); err == nil || !strings.Contains(err.Error(), `item "ai.example/../escape" is not a file name under an author directory`) {
		t.Errorf("escaping item: %v", err)
	}
}
