package compile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Compile validation refuses packages with missing, renamed or truncated files, naming the
// file (and for weights, the op that refers to them) — the same checks predict makes, since
// both open packages through mlpackage.Open.
func TestValidateDamagedPackages(t *testing.T) {
	const data = "Data/com.apple.CoreML"
	cases := []struct {
		name string
		edit func(dir string) error
		want string // the exact message, with {PKG} for the package directory
	}{
		{"no manifest", func(d string) error { return os.Remove(filepath.Join(d, "Manifest.json")) },
			"mlpackage: open {PKG}/Manifest.json: no such file or directory"},
		{"no model", func(d string) error {
			p := filepath.Join(d, data, "model.mlmodel")
			return os.Rename(p, p+".bak")
		}, "mlpackage: root model item ca5eb9f0-7a27-4e7c-ab96-a6c186748570: open {PKG}/Data/com.apple.CoreML/model.mlmodel: no such file or directory"},
		{"renamed weights", func(d string) error {
			w := filepath.Join(d, data, "weights")
			return os.Rename(filepath.Join(w, "weight.bin"), filepath.Join(w, "weights.bin"))
		}, "mlpackage: function main (CoreML8): op const y_weight_0 attribute val: blob: open {PKG}/Data/com.apple.CoreML/weights/weight.bin: no such file or directory"},
		{"truncated weights", func(d string) error { return os.Truncate(filepath.Join(d, data, "weights", "weight.bin"), 100) },
			"mlpackage: function main (CoreML8): op const y_weight_0 attribute val: {PKG}/Data/com.apple.CoreML/weights/weight.bin: offset 0: truncated: header claims 2 blobs, but 100 bytes hold at most 0"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "linear_fp16.mlpackage")
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(coremlDir, "linear_fp16.mlpackage"))); err != nil {
			t.Fatal(err)
		}
		if err := c.edit(dir); err != nil {
			t.Fatal(err)
		}
		err := Validate(dir)
		want := strings.ReplaceAll(c.want, "{PKG}", dir)
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, want)
		}
	}
}
